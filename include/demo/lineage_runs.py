"""The reference DAGs under dag.test() with the OpenLineage provider on, and their events.

:func:`run_dags` runs a plan in a fresh Airflow process configured with the provider's
file transport (``AIRFLOW__OPENLINEAGE__TRANSPORT``), as a deployment configures lineage:
the provider reads that configuration once per process, when Airflow loads its plugins.
The real provider, its listener and its transport; nothing replaced. The tests
(tests/integration/lineage) and the examples of docs/lineage.md
(include/demo/lineage_examples.py) both run :data:`PLAN` through it.

``python lineage_runs.py PLAN.json`` is that process: each step may prepare data
(``orders``, ``customers``: a day's file; ``payments``: a day of the application's rows)
and runs one DAG for a logical date. One JSON line per run goes to stdout: the DAG run's
state, its task states, and the lines of the events file that run appended.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLEAN, BAD, DRIFT, OVERWRITE_BAD = "2024-05-02", "2024-05-03", "2024-05-04", "2024-05-05"
#: a clean day, a day the gate stops, a breaking drift, a refused one-task overwrite, an SCD2
#: rebuild, and an incremental reload (the interval [2024-05-01, 2024-05-02): a run at midnight after it)
PLAN = [
    {"orders": {"date": CLEAN, "rows": 300}, "dag": "orders_daily", "date": CLEAN},
    {"orders": {"date": BAD, "rows": 300, "faults": ["duplicates", "out_of_range"]}, "dag": "orders_daily",
     "date": BAD},
    {"orders": {"date": DRIFT, "rows": 100, "faults": ["drift_rename"]}, "dag": "orders_daily", "date": DRIFT},
    {"orders": {"date": OVERWRITE_BAD, "rows": 300, "faults": ["duplicates"]}, "dag": "orders_overwrite",
     "date": OVERWRITE_BAD},
    {"customers": {"date": "2024-05-01", "rows": 120}, "dag": "customers_scd2", "date": "2024-05-01"},
    {"payments": {"create": True, "date": "2024-05-01", "rows": 150}, "dag": "payments_incremental",
     "date": "2024-05-02T00:00:00+00:00"},
]
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


def run_dags(pg_uri: str, tmp: Path, plan: list[dict], env: dict[str, str] | None = None) -> list[dict]:
    """Run ``plan`` in a fresh Airflow process with lineage on, against the warehouse at
    ``pg_uri`` (also the payments application's database); each run comes back with its
    state, task states and the OpenLineage events it emitted.

    :param tmp: an empty directory for the DAG folder, the data and the events file
    :param env: the environment (default: this process's); Airflow's home must be migrated
    """
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
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "AIRFLOW_CONN_SLACK_ALERTS"}
    env.update({
        "AIRFLOW_CONN_WAREHOUSE": pg_uri, "AIRFLOW_CONN_APP_SOURCE": pg_uri, "SAFELOAD_DATA_DIR": str(tmp / "data"),
        "SAFELOAD_HOME": str(ROOT), "GX_ANALYTICS_ENABLED": "False", "SAFELOAD_ALERT_FILE": str(tmp / "alerts.jsonl"),
        "SAFELOAD_ALERT_STATE_DIR": str(tmp / "alert-state"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events),
                                                       "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "safeload", "SAFELOAD_LINEAGE_EVENTS": str(events),
    })
    (tmp / "plan.json").write_text(json.dumps(plan))
    proc = subprocess.run([sys.executable, __file__, str(tmp / "plan.json")], env=env, capture_output=True,
                          text=True, timeout=900, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"the DAG runs failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    lines = events.read_text().splitlines() if events.exists() else []
    runs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"dag": ')]
    if len(runs) != len(plan):
        raise RuntimeError(f"{len(runs)} of {len(plan)} runs reported:\n{proc.stdout[-3000:]}")
    for run in runs:
        first, last = run["events"]
        run["events"] = [json.loads(line) for line in lines[first:last]]
    return runs


def _events() -> int:
    path = Path(os.environ["SAFELOAD_LINEAGE_EVENTS"])
    return len(path.read_text().splitlines()) if path.exists() else 0


def _prepare(step: dict) -> None:
    import psycopg

    data = Path(os.environ["SAFELOAD_DATA_DIR"])
    if "orders" in step:
        import generate_orders

        o = step["orders"]
        generate_orders.write(data, dt.date.fromisoformat(o["date"]), o["rows"], set(o.get("faults", [])))
    if "customers" in step:
        import generate_customers

        c = step["customers"]
        generate_customers.write(data, dt.date.fromisoformat(c["date"]), c["rows"])
    if "payments" in step:
        import generate_payments

        p = step["payments"]
        with psycopg.connect(os.environ["AIRFLOW_CONN_APP_SOURCE"], autocommit=True) as conn:
            if p.get("create"):
                generate_payments.create_source(conn)
            generate_payments.write_day(conn, dt.date.fromisoformat(p["date"]), p["rows"])


def main(plan_path: str) -> int:
    import pendulum
    from airflow.dag_processing.dagbag import DagBag

    sys.path.insert(0, str(ROOT / "include"))
    for step in json.loads(Path(plan_path).read_text()):
        _prepare(step)
        bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        if bag.import_errors:
            raise RuntimeError(f"DAG import errors: {bag.import_errors}")
        before = _events()
        dr = bag.dags[step["dag"]].test(logical_date=pendulum.parse(step["date"]), run_conf=step.get("conf"))
        print(json.dumps({"dag": step["dag"], "date": step["date"], "state": str(dr.state),
                          "tasks": {ti.task_id: str(ti.state) for ti in dr.get_task_instances()},
                          "events": [before, _events()]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
