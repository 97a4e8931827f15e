"""The vectorised spelling tests clear exactly the values they promise, on every path.

Each test is held to the exact checker (``make_checker``): a value cleared must be one
the checker accepts (the property decision 013 rests on), and the common spellings must
be cleared, or the scan would send millions of values to Python one by one.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from safeload.contracts.types import fast_filter, make_checker, parse_type
from safeload.contracts.vector_filters import arrow_clear, clear_decimal, clear_temporal


def cleared(values, type_text):
    ok = arrow_clear(pa.array(values, pa.string()), fast_filter(parse_type(type_text)))
    return [v for v, k in zip(values, ok.to_pylist()) if k]


@pytest.mark.parametrize(("type_text", "clear", "leave"), [
    pytest.param("numeric(12,2)", ["0", "12.50", "-12.50", "+7", "5.", ".5", "-.05", "9999999999.99"],
                 ["", ".", "-", "+-5", "1.2.3", "12,50", "1e5", " 1", "12.505", "99999999999", "٣", "NaN"],
                 id="numeric(12,2)"),
    pytest.param("numeric(5,0)", ["12345", "-1", "7."], ["123456", "1.5", ".5"], id="numeric(5,0)"),
    pytest.param("numeric", ["1" * 40 + "." + "2" * 40, "-3"], ["1-", "--1", "1..2"], id="numeric"),
    pytest.param("double precision", ["1.5", "-2", "." + "1" * 300], ["1e3", "inf", "1" * 301],
                 id="double"),
    pytest.param("date", ["2024-05-01", "2024-02-29", "2000-02-29", "2024-01-31", "0001-01-01", "9999-12-31"],
                 ["2023-02-29", "1900-02-29", "2024-04-31", "2024-13-01", "2024-00-10", "2024-05-00", "0000-01-01",
                  "2024-5-01", "2024/05/01", "20240501", "2024-05-01 "], id="date"),
    pytest.param("timestamp", ["2024-05-01T23:59:59", "2024-05-01 00:00:00.123", "2024-02-29T12:00:00.123456"],
                 ["2024-05-01T24:00:00", "2024-05-01T12:60:00", "2024-05-01T12:00:60", "2024-05-01T12:00:00.1",
                  "2024-05-01x12:00:00", "2024-05-01T12:00:00+00:00"], id="timestamp"),
    pytest.param("timestamptz", ["2024-05-01T18:41:08+00:00", "2024-05-31 23:59:59.999-23:59",
                                 "2024-12-31T00:00:00.000001+05:30"],
                 ["2024-05-01T18:41:08", "2024-05-01T18:41:08+24:00", "2024-05-01T18:41:08+00:60",
                  "2024-05-01T18:41:08*00:00", "2024-06-31T00:00:00+00:00"], id="timestamptz"),
])
def test_each_filter_clears_the_common_spellings_and_leaves_the_rest(type_text, clear, leave):
    check = make_checker(parse_type(type_text))
    assert cleared(clear, type_text) == clear
    assert all(check(v) is None for v in clear)  # what is cleared fits, by the checker's word
    assert cleared(leave, type_text) == []


def test_zulu_timestamps_are_cleared_only_where_python_reads_them():
    value = "2024-05-01T18:41:08Z"
    reads_z = make_checker(parse_type("timestamptz"))(value) is None
    assert cleared([value, "2024-05-01T18:41:08.123Z"], "timestamptz") == (
        [value, "2024-05-01T18:41:08.123Z"] if reads_z else [])


def test_temporal_values_of_several_lengths_in_one_column():
    # a column mixes the shapes: each length is taken out and tested on its own
    values = ["2024-05-01T10:00:00+00:00", "2024-05-01T10:00:00.123+00:00", "bad", None, "",
              "2024-05-01T10:00:00.123456+02:00", "2024-02-30T10:00:00+00:00"]
    ok = clear_temporal(pa.array(values, pa.string()), "timestamptz").to_pylist()
    assert ok == [True, True, False, False, False, True, False]


def test_decimal_with_one_odd_value_still_clears_the_others():
    # one count over the whole column proves a clean column at once; a value with other
    # characters sends the column to the per-value count, which must find only that one
    values = [f"{i}.{i % 100:02d}" for i in range(1000)]
    values[500] = "12a.00"
    values[501] = "1.2.3"
    ok = clear_decimal(pa.array(values, pa.string()), 10, 2).to_pylist()
    assert [i for i, k in enumerate(ok) if not k] == [500, 501]


def test_filters_on_a_slice_and_with_nulls():
    # Arrow arrays are often views into a larger buffer (an offset) and may hold nulls
    values = pa.array(["x", "2024-05-01", None, "2024-02-29", "2023-02-29", "1.5"], pa.string()).slice(1, 4)
    assert clear_temporal(values, "date").to_pylist() == [True, False, True, False]
    numbers = pa.array(["x", "1.5", None, "-2", "1e3"], pa.string()).slice(1)
    assert clear_decimal(numbers, 10, 2).to_pylist() == [True, False, True, False]


def test_the_calendar_against_python_for_four_centuries():
    day, days = dt.date(1900, 1, 1), []
    while day.year < 2301:
        days.append(day.isoformat())
        day += dt.timedelta(days=1)
    # every real date is cleared; every day 29-31 of a month that lacks it is not
    assert all(clear_temporal(pa.array(days), "date").to_pylist())
    wrong = [f"{y:04d}-{m:02d}-{d}" for y in range(1900, 2301, 7) for m in range(1, 13) for d in (29, 30, 31)]
    real = set(days)
    wrong = [w for w in wrong if w not in real]
    assert wrong and not any(clear_temporal(pa.array(wrong), "date").to_pylist())
