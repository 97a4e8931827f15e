"""Results history (safeload.quality_results) and the volume check (safeload.load_history)."""

from __future__ import annotations

import pytest

from safeload.errors import QualityGateError
from safeload.metadata import ensure_metadata
from safeload.quality.gate import GateError, run_gate, volume_check

STORE = {"target": "public.orders", "partition_value": "2024-05-01", "dag_id": "orders_daily",
         "run_id": "scheduled__2024-05-01", "task_id": "audit", "run_key": "orders_daily/scheduled__2024-05-01"}


@pytest.fixture
def orders(pg, pg_uri):
    pg.execute("create table public.orders (order_id int, amount numeric(10,2));"
               "insert into public.orders values (1, 10), (2, null), (3, -1)")
    return pg_uri


def test_every_result_is_written(orders, pg):
    suite = {"name": "orders", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}, "severity": "warning"},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "missing"}, "severity": "info"},
    ]}
    result = run_gate(orders, table="public.orders", suite=suite, store=STORE)
    rows = pg.execute(
        "select run_key, dag_id, run_id, task_id, target, partition_value, suite, expectation_type, column_name,"
        " kwargs, severity, success, observed_value, engine from safeload.quality_results order by id").fetchall()
    assert len(rows) == 4
    assert {r[:7] for r in rows} == {("orders_daily/scheduled__2024-05-01", "orders_daily", "scheduled__2024-05-01",
                                      "audit", "public.orders", "2024-05-01", "orders")}
    assert [(r[7], r[8], r[10], r[11], r[13]) for r in rows] == [
        ("expect_column_values_to_not_be_null", "amount", "warning", False, "sql"),
        ("expect_column_values_to_be_between", "amount", "critical", False, "sql"),
        ("expect_table_row_count_to_be_between", None, "critical", True, "sql"),
        ("expect_column_values_to_not_be_null", "missing", "info", False, "sql"),
    ]
    assert rows[1][9] == {"column": "amount", "min_value": 0}
    assert rows[1][12] == {"element_count": 3, "unexpected_count": 1, "unexpected_percent": 50.0, "missing_count": 1}
    assert rows[2][12] == 3
    assert "does not exist" in rows[3][12]["exception"]
    assert result.location == "safeload.quality_results where run_key = 'orders_daily/scheduled__2024-05-01'"
    with pytest.raises(QualityGateError, match=r"full result: safeload.quality_results where run_key = "):
        result.raise_for_critical()


def test_store_rejects_unknown_keys(orders):
    with pytest.raises(GateError, match=r"store has unknown keys \['dag'\]"):
        run_gate(orders, table="public.orders", suite=[], store={"dag": "x"})


def _history(pg, target, counts, status="published"):
    ensure_metadata(pg)
    for i, n in enumerate(counts):
        pg.execute("insert into safeload.load_history (target, partition_value, status, rows_loaded)"
                   " values (%s, %s, %s, %s)", (target, f"2024-04-{i + 1:02d}", status, n))


@pytest.mark.parametrize(
    ("rows", "success", "verdict"),
    [
        pytest.param(1000, True, "normal", id="normal"),
        pytest.param(1380, True, "normal", id="within-band"),
        pytest.param(5000, False, "spike", id="spike"),
        pytest.param(300, False, "drop", id="drop"),
    ],
)
def test_volume_check(pg, pg_uri, rows, success, verdict):
    _history(pg, "public.orders", [1000, 1010, 990, 1005, 995, 1020, 980])
    _history(pg, "public.orders", [10, 10, 10], status="refused")  # not published: ignored
    _history(pg, "public.other", [5, 5, 5])
    r = volume_check(pg_uri, target="public.orders", rows=rows)
    assert r.success is success
    assert r.severity == "warning"
    assert r.observed_value["median"] == 1000 and r.observed_value["history"] == 7
    # MAD 10, floored at 10% of the median: 1000 ± 4·100
    assert r.expected == "between 600 and 1,400 rows (median 1,000 ± 4·MAD 100 of the last 7 loads)"
    assert r.observed_value["verdict"] == verdict


def test_volume_check_last_n_and_severity(pg, pg_uri):
    _history(pg, "public.orders", [10] * 5 + [1000] * 3)  # the recent loads are the last ones
    r = volume_check(pg_uri, target="public.orders", rows=1000, last_n=3, severity="critical")
    assert r.success and r.observed_value["history"] == 3
    assert not volume_check(pg_uri, target="public.orders", rows=1000, last_n=8, k=1).success


@pytest.mark.parametrize("counts", [pytest.param([], id="none"), pytest.param([100, 100], id="two")])
def test_volume_check_short_history_passes_and_says_so(pg, pg_uri, counts):
    if counts:
        _history(pg, "public.orders", counts)
    r = volume_check(pg_uri, target="public.orders", rows=5)
    assert r.success
    assert f"only {len(counts)} published load(s) of public.orders" in r.observed_value


def test_volume_check_without_metadata_tables(pg_uri):
    assert "only 0 published load(s)" in volume_check(pg_uri, target="public.orders", rows=5).observed_value


def test_volume_result_joins_the_gate(orders, pg):
    _history(pg, "public.orders", [1000] * 5)
    gate = run_gate(orders, table="public.orders",
                    suite=[{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}])
    gate.add(volume_check(orders, target="public.orders", rows=3, severity="critical"))
    assert gate.success is False
    assert "volume_check: observed 3 rows, a drop (history median 1,000, 5 loads)" in gate.summary()
