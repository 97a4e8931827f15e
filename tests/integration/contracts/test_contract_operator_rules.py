"""SchemaContractCheckOperator holds the source's values to the contract's rules under
dag.test(): ``rule_policy="fail"`` stops the run naming the column and the line,
``"warn"`` lets it through and reports; either way the history keeps the broken rules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest
from dagrun import dag_from_file

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = ROOT / "include/contracts/orders.yaml"
HEADER = "order_id,order_date,customer_id,amount,currency,status,created_at\n"
GOOD = "1,2025-05-01,7,10.00,EUR,paid,2025-05-01T10:00:00Z\n"

DAG_FILE = """
import datetime as dt
from airflow.sdk import DAG
from safeload.operators.contract import SchemaContractCheckOperator

with DAG({dag_id!r}, schedule=None, start_date=dt.datetime(2025, 1, 1)) as dag:
    SchemaContractCheckOperator(task_id="check_orders", contract={contract!r}, source={source!r},
                                rule_policy={rule_policy!r})
"""


def _run(tmp_path, monkeypatch, dag_id: str, source: Path, rule_policy: str):
    text = DAG_FILE.format(dag_id=dag_id, contract=str(CONTRACT), source=str(source), rule_policy=rule_policy)
    dag = dag_from_file(tmp_path, monkeypatch, dag_id, text)
    return dag.test(logical_date=dt.datetime(2025, 5, 1, tzinfo=dt.timezone.utc))


@pytest.mark.parametrize(("rule_policy", "state", "decision"), [
    pytest.param("fail", "failed", "fail", id="fail-stops-the-run"),
    pytest.param("warn", "success", "warn", id="warn-reports-and-goes-on"),
])
def test_broken_value_rules_follow_the_rule_policy(rule_policy, state, decision, pg_uri, airflow_db, tmp_path,
                                                    monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_uri)
    src = tmp_path / "orders.csv"
    # line 3: currency XXX is not allowed; line 4: a duplicate order_id and a negative amount
    src.write_text(HEADER + GOOD + "2,2025-05-01,7,10.00,XXX,paid,2025-05-01T10:00:00Z\n"
                   + "1,2025-05-01,7,-12.50,EUR,paid,2025-05-01T10:00:00Z\n")
    dr = _run(tmp_path, monkeypatch, f"rules_{rule_policy}", src, rule_policy)
    assert dr.state == state
    with psycopg.connect(pg_uri) as conn:
        (decided, passed, changes), = conn.execute(
            "select decision, passed, changes from safeload.contract_checks").fetchall()
    assert (decided, passed) == (decision, rule_policy == "warn")
    broken = {(c["column"], c.get("rule")): c for c in changes if c["kind"] == "rule_broken"}
    assert {("currency", "allowed_values"), ("amount", "minimum")} <= set(broken), changes
    assert any(k[0] == "order_id" for k in broken), changes  # unique / primary key
    assert broken[("currency", "allowed_values")]["examples"][0] == {"line": 3, "value": "XXX"}
    assert broken[("amount", "minimum")]["examples"][0]["line"] == 4
    expected_class = "breaking" if rule_policy == "fail" else "warning"
    assert {c["class"] for c in broken.values()} == {expected_class}


def test_a_conforming_file_passes_with_every_rule_checked(pg_uri, airflow_db, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_uri)
    src = tmp_path / "orders.csv"
    src.write_text(HEADER + GOOD + "2,2025-05-01,8,99.99,USD,shipped,2025-05-01T11:00:00Z\n")
    dr = _run(tmp_path, monkeypatch, "rules_clean", src, "fail")
    assert dr.state == "success"
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id="rules_clean", run_id=dr.run_id, task_id="check_orders",
                                                 key="return_value").one()
        report = XComModel.deserialize_value(row)
    statuses = {r["status"] for r in report["rules"]}
    assert statuses == {"passed"}, report["rules"]
    assert report["rules_count"]["passed"] == len(report["rules"]) == 12
