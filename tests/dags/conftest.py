"""Fixtures for running reference DAGs with dag.test() against a real PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def warehouse(pg_uri, monkeypatch, tmp_path, airflow_db):
    """A warehouse with the reference DDL applied, wired to the DAGs through the environment."""
    import psycopg

    with psycopg.connect(pg_uri, autocommit=True) as conn:
        for ddl in sorted((ROOT / "include" / "sql").glob("*.sql")):
            conn.execute(ddl.read_text())
    data = tmp_path / "data"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_uri)
    monkeypatch.setenv("SAFELOAD_DATA_DIR", str(data))
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "False")
    alerts = tmp_path / "alerts.jsonl"
    monkeypatch.setenv("SAFELOAD_ALERT_FILE", str(alerts))
    monkeypatch.setenv("SAFELOAD_ALERT_STATE_DIR", str(tmp_path / "alert-state"))
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_ALERTS", raising=False)
    sys.path.insert(0, str(ROOT / "include"))
    try:
        yield {"uri": pg_uri, "data": data, "alerts": alerts}
    finally:
        sys.path.remove(str(ROOT / "include"))


def load_dag(dag_id: str):
    """Parse dags/ now (the environment of the test applies) and return one DAG."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]
