"""CsvReader: errors name the right line; fields as long as PostgreSQL takes are read.

Regressions found by tests/reliability/test_fuzz_csv.py.
"""

from __future__ import annotations

import pytest

from safeload.contracts.introspect import CsvReader, introspect_csv
from safeload.errors import SourceError


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param('a,b\n1,2\n"3"x,4\n5,6\n', 3, id="stray-quote"),
        pytest.param('a,b\n"multi\nline",2\n"3"x,4\n', 4, id="after-a-multi-line-field"),
    ],
)
def test_malformed_csv_names_the_offending_line(tmp_path, text, line):
    p = tmp_path / "s.csv"
    p.write_text(text)
    with pytest.raises(SourceError, match=rf"s.csv line {line}: malformed CSV"):
        with CsvReader(p) as r:
            list(r)


def test_field_over_128_kib_is_read(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("a,b\n1," + "x" * 300_000 + "\n")
    schema = introspect_csv(p)
    assert schema.rows == 1
