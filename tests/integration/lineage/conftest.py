"""The reference DAGs run once per module with the OpenLineage provider's file transport."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
RUNNER = Path(__file__).with_name("dag_runs.py")
#: a one-task load that the reference DAGs do not have: stage, gate and publish in one task
OVERWRITE_DAG = '''
import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from safeload.operators.load import PartitionOverwriteOperator

INCLUDE = Path(os.environ["SAFELOAD_HOME"]) / "include"
with DAG("orders_overwrite", schedule="@daily", start_date=pendulum.datetime(2024, 5, 1, tz="UTC"), catchup=False,
         default_args={"owner": "data-platform", "retries": 0}):
    PartitionOverwriteOperator(
        task_id="load_orders", contract=str(INCLUDE / "contracts" / "orders.yaml"),
        source=os.environ["SAFELOAD_DATA_DIR"] + "/orders/{{ ds }}.csv",
        quality_suite=str(INCLUDE / "expectations" / "orders.json"), max_bad_rows=None, max_bad_fraction=0.005)
'''


def run_dags(pg_uri: str, tmp: Path, plan: list[dict]) -> list[dict]:
    """Run ``plan`` (see dag_runs.py) in a fresh Airflow process with lineage on; each run
    comes back with its state, task states and the OpenLineage events it emitted."""
    import psycopg

    with psycopg.connect(pg_uri, autocommit=True) as conn:
        for ddl in sorted((ROOT / "include" / "sql").glob("*.sql")):
            conn.execute(ddl.read_text())
    dags = tmp / "dags"
    dags.mkdir()
    for dag in (ROOT / "dags").glob("*.py"):
        (dags / dag.name).symlink_to(dag)
    (dags / "orders_overwrite.py").write_text(OVERWRITE_DAG)
    events = tmp / "events.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_CONN_SLACK_ALERTS"}
    env.update({
        "AIRFLOW_CONN_WAREHOUSE": pg_uri, "AIRFLOW_CONN_APP_SOURCE": pg_uri, "SAFELOAD_DATA_DIR": str(tmp / "data"),
        "GX_ANALYTICS_ENABLED": "False", "SAFELOAD_ALERT_FILE": str(tmp / "alerts.jsonl"),
        "SAFELOAD_ALERT_STATE_DIR": str(tmp / "alert-state"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events),
                                                       "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "safeload-test", "SAFELOAD_TEST_EVENTS": str(events),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    (tmp / "plan.json").write_text(json.dumps(plan))
    proc = subprocess.run([sys.executable, str(RUNNER), str(tmp / "plan.json")], env=env, capture_output=True,
                          text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = events.read_text().splitlines() if events.exists() else []
    runs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"dag": ')]
    assert len(runs) == len(plan), proc.stdout[-3000:]
    for run in runs:
        first, last = run["events"]
        run["events"] = [json.loads(line) for line in lines[first:last]]
    return runs


@pytest.fixture(scope="session")
def ol_validator():
    """Validates events against the OpenLineage JSON schemas (see tests/olschema.py)."""
    from olschema import validator

    return validator()
