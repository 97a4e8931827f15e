"""One "machine" of the shared-state tests: a process with its own AIRFLOW_HOME (as a
separate container or Celery worker has) that fires safeload's callbacks when told to.

Run as ``python alert_worker.py JOB.json`` with the environment of that machine. The job:

.. code-block:: json

    {"name": "w1", "dir": "/tmp/...", "phases": [[{"callback": "failure", "task_id": "extract_a",
                                                   "run_id": "r1"}], ...]}

The worker imports Airflow and safeload, writes ``<dir>/<name>.ready``, and for each phase
``i`` waits (bounded) for ``<dir>/go.<i>``, fires its callbacks at once, appends one JSON
line per callback to ``<dir>/<name>.results`` and writes ``<dir>/<name>.done.<i>``. The
callbacks get the contexts Airflow hands them in a worker: the real DAG and task, a task
instance, and a real chained exception.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

from airflow.sdk import DAG, Asset, task
from safeload.alerts.notifiers import send_failure_alert, send_recovery_alert

T0 = datetime(2024, 5, 2, 1, 0, tzinfo=timezone.utc)
DAG_ID = "safeload_shared_state"
TASKS = ("extract_a", "extract_b", "load_c", "load_d")
WAIT_SECONDS = 120

with DAG(DAG_ID, schedule=None, start_date=T0, default_args={"owner": "data-platform", "retries": 0}) as dag:
    steps = []
    for name in TASKS:

        @task(task_id=name)
        def step():
            return None

        steps.append(step())

    @task(task_id="publish", outlets=[Asset("warehouse.orders")])
    def publish():
        return None

    steps >> publish()


def connect_to_warehouse(task_id: str) -> None:
    raise ConnectionRefusedError(f"db:5432 refused the connection of {task_id}")


def failing(task_id: str) -> BaseException:
    """A real exception with a cause, raised here (its location is this file)."""
    try:
        try:
            connect_to_warehouse(task_id)
        except ConnectionRefusedError as e:
            raise RuntimeError(f"{task_id}: load of orders failed for partition 2024-05-01") from e
    except RuntimeError as error:
        return error
    raise AssertionError("unreachable")


def context(call: dict, state: str) -> dict:
    task_id, run_id = call["task_id"], call["run_id"]
    ti = SimpleNamespace(
        dag_id=DAG_ID, task_id=task_id, run_id=run_id, try_number=call.get("try_number", 1), max_tries=0,
        state=state, start_date=T0, end_date=T0 + timedelta(seconds=42), map_index=-1,
        log_url=f"https://airflow.example.com/dags/{DAG_ID}/runs/{run_id}/tasks/{task_id}?try_number=1",
    )
    ctx = {"dag": dag, "task": dag.task_dict[task_id], "ti": ti, "task_instance": ti, "run_id": run_id,
           "logical_date": T0 - timedelta(days=1)}
    if state == "failed":
        ctx["exception"] = failing(task_id)
    return ctx


def fire(call: dict) -> dict:
    if call["callback"] == "failure":
        notifier = send_failure_alert()
        notifier(context(call, "failed"))
    else:
        notifier = send_recovery_alert()
        notifier(context(call, "success"))
    result = notifier.last_result
    return {"call": call, "sent": result is not None, "ok": bool(result and result.ok),
            "ts": result.ts if result else None}


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not path.exists():  # bounded by the deadline
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} never appeared")
        time.sleep(0.005)


def main(job_file: str) -> None:
    job = json.loads(Path(job_file).read_text())
    where, name = Path(job["dir"]), job["name"]
    (where / f"{name}.ready").write_text("ready")
    for i, calls in enumerate(job["phases"]):
        wait_for(where / f"go.{i}")
        results = [fire(call) for call in calls]
        with open(where / f"{name}.results", "a") as out:
            out.writelines(json.dumps(r) + "\n" for r in results)
        (where / f"{name}.done.{i}").write_text("done")


if __name__ == "__main__":
    main(sys.argv[1])
