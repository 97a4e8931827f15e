"""The operators' side of the page, under dag.test(): the contract check keeps its report,
the "safeload report" extra link is computed and kept when the task ends."""

from __future__ import annotations

import csv
from pathlib import Path

import psycopg
import pytest
from dagrun import dag_from_file
from safeload.ui.links import report_path

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "include/contracts/orders.yaml"


DAG_FILE = """
import datetime as dt
from airflow.sdk import DAG
from safeload.operators.contract import SchemaContractCheckOperator

with DAG({dag_id!r}, schedule=None, start_date=dt.datetime(2025, 1, 1)) as dag:
    SchemaContractCheckOperator(task_id="check_orders", contract={contract!r}, source={source!r},
                                history_conn_id={conn!r}, partition_value={partition!r}, retries=0)
"""


def _dag(tmp_path, monkeypatch, dag_id: str, source: Path, conn: str = "warehouse", partition: str | None = None):
    """A one-task DAG in a DAG folder of its own (dag.test() syncs the DAG's bundle)."""
    return dag_from_file(tmp_path, monkeypatch, dag_id, DAG_FILE.format(
        dag_id=dag_id, contract=str(CONTRACT), source=str(source), conn=conn, partition=partition))


def test_contract_check_keeps_its_report_and_links_to_it(pg_uri, airflow_db, tmp_path, monkeypatch):
    import datetime as dt

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_uri)
    src = tmp_path / "orders.csv"
    with open(src, "w", newline="") as fh:  # the producer added a column: additive drift, policy warn
        w = csv.writer(fh)
        w.writerow(["order_id", "order_date", "customer_id", "amount", "currency", "status", "created_at", "coupon"])
        w.writerow([1, "2025-05-01", 7, "10.00", "EUR", "paid", "2025-05-01T10:00:00Z", "SPRING"])

    dag = _dag(tmp_path, monkeypatch, "ui_contract_history", src)
    dr = dag.test(logical_date=dt.datetime(2025, 5, 1, tzinfo=dt.timezone.utc))
    assert dr.state == "success"

    with psycopg.connect(pg_uri) as conn:
        rows = conn.execute("select target, decision, passed, changes, dag_id, run_id, task_id, try_number"
                            " from safeload.contract_checks").fetchall()
    assert len(rows) == 1
    target, decision, passed, changes, dag_id, run_id, task_id, try_number = rows[0]
    assert (target, decision, passed, dag_id, task_id) == ("public.orders", "warn", True, "ui_contract_history",
                                                           "check_orders")
    assert run_id == dr.run_id and try_number >= 1
    assert [(c["kind"], c["column"], c["class"]) for c in changes] == [("added", "coupon", "additive")]

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id="ui_contract_history", run_id=dr.run_id,
                                                 task_id="check_orders", key="_link_SafeloadReportLink").one()
        link = XComModel.deserialize_value(row)
    assert link.endswith(report_path(dag_id="ui_contract_history", run_id=dr.run_id, task_id="check_orders",
                                     try_number=try_number))


def test_contract_check_without_a_warehouse_still_decides(airflow_db, tmp_path, monkeypatch):
    """The report is evidence, not a gate: no warehouse connection, same outcome, a warning."""
    import datetime as dt

    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE", raising=False)
    src = tmp_path / "orders.csv"
    src.write_text("order_id,order_date,customer_id,amount,currency,status,created_at\n"
                   "1,2025-05-01,7,10.00,EUR,paid,2025-05-01T10:00:00Z\n")
    dag = _dag(tmp_path, monkeypatch, "ui_contract_no_history", src, conn="no_such_connection")
    assert dag.test(logical_date=dt.datetime(2025, 5, 1, tzinfo=dt.timezone.utc)).state == "success"


#: what a producer delivered, what the refusal says, whether the check kept a report
DELIVERIES = {
    "breaking": ("order_id,order_date,customer_id,currency,status,created_at\n"  # the amount column dropped
                 "1,2025-05-01,7,EUR,paid,2025-05-01T10:00:00Z\n", "amount", True),
    "empty": ("order_id,order_date,customer_id,amount,currency,status,created_at\n", "no rows", False),
}


@pytest.mark.parametrize(("partition", "delivery"), [
    pytest.param("{{ ds }}", "breaking", id="breaking-drift"),
    pytest.param("{{ ds }}", "empty", id="header-only"),
    pytest.param(None, "breaking", id="no-day"),
])
def test_a_failed_contract_check_leaves_its_day_in_the_history(partition, delivery, pg_uri, airflow_db, tmp_path,
                                                               monkeypatch):
    """A check that stops the day before a row moves (breaking drift, a delivery with no
    rows) writes it as refused where the page lists days, when the check says which day
    it speaks for."""
    import datetime as dt

    from safeload.ui import queries

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_uri)
    text, says, reported = DELIVERIES[delivery]
    src = tmp_path / "orders.csv"
    src.write_text(text)
    dag_id = f"ui_contract_refused_{delivery}_{'day' if partition else 'window'}"
    dr = _dag(tmp_path, monkeypatch, dag_id, src, partition=partition).test(
        logical_date=dt.datetime(2025, 5, 1, tzinfo=dt.timezone.utc))
    assert dr.state == "failed"
    with psycopg.connect(pg_uri) as conn:
        rows = conn.execute("select target, partition_value, status, dag_id, run_id, task_id, source, message "
                            "from safeload.load_history").fetchall()
        listed = queries.recent_partitions(conn, "public.orders")
        checks = conn.execute("select passed from safeload.contract_checks").fetchall()
    assert checks == ([(False,)] if reported else [])  # a report is kept either way, where there is one
    if partition is None:
        assert rows == [] and listed == []
        return
    assert [r[:6] for r in rows] == [("public.orders", "2025-05-01", "refused", dag_id, dr.run_id, "check_orders")]
    assert rows[0][6] == (str(src) if reported else None)
    assert "check_orders:" in rows[0][7] and says in rows[0][7], rows[0][7]
    assert listed == ["2025-05-01"]


LOAD_DAG_FILE = """
import datetime as dt
from airflow.sdk import DAG
from safeload.operators.load import PartitionOverwriteOperator

with DAG({dag_id!r}, schedule=None, start_date=dt.datetime(2025, 1, 1)) as dag:
    PartitionOverwriteOperator(task_id="load_orders", contract={contract!r}, source={source!r},
                               partition_value="2025-05-01", retries=0)
"""


@pytest.mark.parametrize(("case", "lines", "status", "says"), [
    pytest.param("missing source", None, "refused", "orders.csv", id="source-missing"),
    pytest.param("bad rows", ["x,2025-05-01,7,10.00,EUR,paid,2025-05-01T10:00:00Z"], "refused", "quarantin",
                 id="bad-rows-the-loader-recorded"),
])
def test_a_load_that_does_not_publish_leaves_its_day_in_the_history(case, lines, status, says, pg_uri, airflow_db,
                                                                    tmp_path, monkeypatch):
    """Whatever stops the load, the day is in safeload.load_history once (the page lists days from it)."""
    import datetime as dt

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_uri)
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute((ROOT / "include/sql/orders.sql").read_text())
    src = tmp_path / "orders.csv"
    if lines is not None:
        src.write_text("order_id,order_date,customer_id,amount,currency,status,created_at\n" + "\n".join(lines) + "\n")
    dag_id = f"ui_unpublished_{case.replace(' ', '_')}"
    dag = dag_from_file(tmp_path, monkeypatch, dag_id,
                        LOAD_DAG_FILE.format(dag_id=dag_id, contract=str(CONTRACT), source=str(src)))
    dr = dag.test(logical_date=dt.datetime(2025, 5, 1, tzinfo=dt.timezone.utc))
    assert dr.state == "failed"
    with psycopg.connect(pg_uri) as conn:
        rows = conn.execute("select target, partition_value, status, task_id, message from safeload.load_history"
                            ).fetchall()
        assert conn.execute("select count(*) from public.orders").fetchone()[0] == 0
    assert [r[:4] for r in rows] == [("public.orders", "2025-05-01", status, "load_orders")]
    assert says in rows[0][4], rows[0][4]
