"""``PartitionOverwriteOperator`` into a plain table, under ``dag.test()``: the gate checks
the day's rows inside the direct load's open transaction (on its connection), a critical
failure rolls the load back and keeps the old rows, and a suite the sql engine cannot
check there sends the load through staging."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

DAY = "2025-05-01"
PLAIN = """create table public.orders (order_id bigint not null, order_date date not null,
           amount numeric(12,2) not null, currency char(3) not null)"""

DAG_FILE = """
import datetime as dt
from airflow.sdk import DAG
from safeload.operators.load import PartitionOverwriteOperator

with DAG({dag_id!r}, schedule=None, start_date=dt.datetime(2025, 1, 1)) as dag:
    PartitionOverwriteOperator(task_id="load", table="public.orders", partition_column="order_date",
                               partition_value={day!r}, source={source!r}, quality_suite={suite!r},
                               quality_engine={engine!r}, retries=0)
"""


def run_dag(tmp_path, monkeypatch, dag_id, source, suite, engine="sql"):
    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path / f"dags_{dag_id}"
    folder.mkdir()
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([{
        "name": f"b-{dag_id}", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(folder), "refresh_interval": 0}}]))
    (folder / f"{dag_id}.py").write_text(DAG_FILE.format(dag_id=dag_id, day=DAY, source=str(source),
                                                         suite=str(suite), engine=engine))
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id].test(logical_date=dt.datetime(2025, 5, 1, tzinfo=dt.timezone.utc))


def csv_of(path, n, start=1, currency="EUR"):
    path.write_text("order_id,order_date,amount,currency\n" +
                    "".join(f"{i},{DAY},{i % 90 + 10}.00,{currency}\n" for i in range(start, start + n)))
    return path


def suite_of(path, engine_only_gx=False):
    expectations = [{"type": "expect_column_values_to_match_regex", "kwargs": {"column": "currency",
                                                                               "regex": "^[A-Z]{3}$"},
                     "severity": "critical"},
                    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]
    if engine_only_gx:  # a type the sql engine hands to GX
        expectations.append({"type": "expect_column_values_to_be_dateutil_parseable",
                             "kwargs": {"column": "currency", "mostly": 0}, "severity": "warning"})
    path.write_text(json.dumps({"name": "orders", "expectations": expectations}))
    return path


@pytest.fixture
def warehouse(pg_uri, airflow_db, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_uri)
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(PLAIN)
    return pg_uri


def published(uri):
    with psycopg.connect(uri) as conn:
        return (conn.execute("select count(*), min(order_id) from public.orders").fetchone(),
                conn.execute("select status, message from safeload.load_history order by id").fetchall(),
                conn.execute("select count(*) from safeload.quality_results").fetchone()[0])


def test_the_gate_checks_the_open_transaction_and_a_failure_keeps_the_old_rows(warehouse, tmp_path, monkeypatch):
    suite = suite_of(tmp_path / "suite.json")
    assert run_dag(tmp_path, monkeypatch, "direct_gate_ok", csv_of(tmp_path / "a.csv", 50), suite).state == "success"
    rows, hist, results = published(warehouse)
    assert rows == (50, 1) and hist == [("published", "replaced 0 row(s) by direct COPY")] and results == 2

    bad = csv_of(tmp_path / "b.csv", 30, start=100, currency="eu1")  # breaks the critical regex
    assert run_dag(tmp_path, monkeypatch, "direct_gate_bad", bad, suite).state == "failed"
    rows, hist, results = published(warehouse)
    assert rows == (50, 1)  # the old day, untouched
    assert hist[-1][0] == "refused" and "quality gate" in hist[-1][1]
    with psycopg.connect(warehouse) as conn:
        observed = conn.execute("select success, observed_value from safeload.quality_results "
                                "where expectation_type = 'expect_column_values_to_match_regex' order by id"
                                ).fetchall()
    # what the gate saw was the new rows, inside the load's transaction (30 of them, all unexpected)
    assert observed[-1][0] is False and "30" in json.dumps(observed[-1][1])


def test_a_suite_the_sql_engine_cannot_check_in_the_transaction_goes_through_staging(warehouse, tmp_path,
                                                                                   monkeypatch):
    suite = suite_of(tmp_path / "suite.json", engine_only_gx=True)
    assert run_dag(tmp_path, monkeypatch, "staged_gate", csv_of(tmp_path / "a.csv", 20), suite).state == "success"
    rows, hist, _ = published(warehouse)
    assert rows == (20, 1) and hist == [("published", "replaced 0 row(s) by DELETE + INSERT")]
