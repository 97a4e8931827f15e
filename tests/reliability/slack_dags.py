"""The DAG of test_slack_down.py, run with ``dag.test()`` (not collected by pytest).

``load`` fails with the task's own error and alerts on failure; ``report`` succeeds and
alerts on recovery (which posts nothing without an open failure). :data:`SEEN` records
what a plain callback attached *after* safeload's notifier saw.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task
from safeload.alerts.notifiers import send_failure_alert, send_recovery_alert

SEEN: list[dict] = []
ERROR = "orders/2024-05-01.csv line 1042, column 'amount': '12,5O' is not a numeric(12,2)"


def record(context) -> None:
    ti = context["ti"]
    SEEN.append({"task_id": ti.task_id, "state": str(getattr(ti.state, "value", ti.state)),
                 "exception": context.get("exception")})


with DAG("safeload_reliability_slack_down", schedule=None, start_date=datetime(2024, 5, 1),
         tags=["reliability"], default_args={"owner": "data-platform", "retries": 0}) as slack_down:

    @task(on_failure_callback=[send_failure_alert(), record])
    def load():
        raise ValueError(ERROR)

    @task(on_success_callback=[send_recovery_alert(), record])
    def report():
        return "reported"

    load()
    report()
