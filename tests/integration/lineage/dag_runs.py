"""Run DAGs under dag.test() in a process of their own, with the OpenLineage provider on.

The provider reads its configuration once per process, when Airflow loads its plugins;
a fresh process with ``AIRFLOW__OPENLINEAGE__TRANSPORT`` set (the file transport) is an
Airflow with lineage on, as a deployment would configure it: the real provider, its
listener and its transport, nothing replaced.

``python dag_runs.py PLAN.json``: PLAN is a list of steps; each may prepare data
(``orders``, ``customers``: a day's file; ``payments``: a day of the application's rows)
and runs one DAG for a logical date. One JSON line per run goes to stdout: the DAG run's
state, its task states, and the lines of the events file that run appended.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _events() -> int:
    path = Path(os.environ["SAFELOAD_TEST_EVENTS"])
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
        assert not bag.import_errors, bag.import_errors
        before = _events()
        dr = bag.dags[step["dag"]].test(logical_date=pendulum.parse(step["date"]), run_conf=step.get("conf"))
        print(json.dumps({"dag": step["dag"], "date": step["date"], "state": str(dr.state),
                          "tasks": {ti.task_id: str(ti.state) for ti in dr.get_task_instances()},
                          "events": [before, _events()]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
