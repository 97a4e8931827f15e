"""DAGs for the alert tests, run with ``dag.test()`` (not collected by pytest).

``conftest.alert_dags`` copies this file into a DAG bundle of its own. What a run does is
chosen with ``run_conf``: ``{"fail": False}`` makes ``safeload_alerts_single`` succeed,
``{"succeed_on_try": 2}`` makes ``safeload_alerts_retry`` recover on its second try,
``{"fail": False}`` makes ``safeload_alerts_3am`` recover.
:data:`SEEN` records what a plain callback attached *after* safeload's notifier saw: the
task's state and exception must be the task's own, whatever Slack did.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, get_current_context, task
from safeload.alerts.notifiers import send_failure_alert, send_recovery_alert, send_retry_alert

SEEN: list[dict] = []
START = datetime(2024, 5, 1)
ERROR = "the source file orders/2024-05-01.csv has 3 columns; the contract include/contracts/orders.yaml has 4"


def record(context) -> None:
    ti = context["ti"]
    SEEN.append(
        {
            "task_id": ti.task_id,
            "state": str(getattr(ti.state, "value", ti.state)),
            "exception": context.get("exception"),
            "try_number": ti.try_number,
        }
    )


def conf(key, default=None):
    return (get_current_context()["dag_run"].conf or {}).get(key, default)


with DAG(
    "safeload_alerts_single",
    schedule=None,
    start_date=START,
    tags=["alerts-test"],
    default_args={"owner": "data-platform", "retries": 0},
) as single:

    @task(
        on_failure_callback=[send_failure_alert(), record],
        on_success_callback=send_recovery_alert(),
    )
    def load():
        if conf("fail", True):
            raise ValueError(ERROR)
        return "loaded"

    load()


with DAG(
    "safeload_alerts_many",
    schedule=None,
    start_date=START,
    tags=["alerts-test"],
    default_args={
        "owner": "data-platform",
        "retries": 0,
        "on_failure_callback": send_failure_alert(),
    },
    on_failure_callback=send_failure_alert(),
) as many:
    for name in ("extract", "load", "check"):

        @task(task_id=name)
        def failing(name=name):
            raise RuntimeError(f"{name}: the warehouse refused the connection")

        failing()


with DAG(
    "safeload_alerts_retry",
    schedule=None,
    start_date=START,
    tags=["alerts-test"],
    default_args={"owner": "data-platform", "retries": 1, "retry_delay": timedelta(0)},
) as retrying:

    @task(
        on_retry_callback=send_retry_alert(),
        on_failure_callback=[send_failure_alert(), record],
        on_success_callback=send_recovery_alert(),
    )
    def flaky():
        if get_current_context()["ti"].try_number < conf("succeed_on_try", 99):
            raise TimeoutError("lock on public.orders not granted within 30 s")
        return "ok"

    flaky()


with DAG(
    "safeload_alerts_listened", schedule=None, start_date=START, tags=["alerts-listener"]
) as listened:

    @task(retries=0)
    def unguarded():
        raise KeyError("no callbacks here: the listener must see this")

    unguarded()


with DAG(
    "safeload_alerts_unlistened", schedule=None, start_date=START, tags=["other-team"]
) as unlistened:

    @task(retries=0)
    def unguarded_too():
        raise KeyError("no callbacks and the wrong tag: nothing is posted")

    unguarded_too()


def open_warehouse():
    raise ConnectionRefusedError("db:5432 refused")


def load_orders():
    """Raises RuntimeError from OSError from ConnectionRefusedError: a 3-deep chain."""
    try:
        try:
            open_warehouse()
        except ConnectionRefusedError as refused:
            raise OSError("connection to server at db, port 5432 failed") from refused
    except OSError as failed:
        raise RuntimeError("load of orders failed for partition 2024-01-02") from failed


with DAG(
    "safeload_alerts_3am",
    schedule=None,
    start_date=START,
    tags=["alerts-test"],
    doc_md="Loads the day's orders and payments.\n\nOn failure: [Runbook](https://wiki.example.com/runbooks/3am)",
    default_args={
        "owner": "data-platform",
        "retries": 0,
        "on_failure_callback": send_failure_alert(),
        "on_success_callback": send_recovery_alert(),
    },
) as three_am:

    @task
    def extract_orders():
        if conf("fail", True):
            load_orders()
        return "ok"

    @task(trigger_rule="all_done")  # runs after extract_orders, whatever it did: a fixed order
    def extract_payments():
        if conf("fail", True):
            raise ValueError("payments/2024-01-02.csv has 3 columns; the contract has 4")
        return "ok"

    @task(outlets=[Asset("warehouse.orders")])
    def load_day():
        return "loaded"

    @task
    def publish_day():
        return "published"

    orders, payments = extract_orders(), extract_payments()
    orders >> payments
    [orders, payments] >> load_day() >> publish_day()
