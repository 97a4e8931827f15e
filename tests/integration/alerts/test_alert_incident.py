"""What the 3 AM message says, over real HTTP to the local Slack: the cause chain and
where it was raised, who to ping and the runbook, what the failure blocks, the run's
other failures, the deployment, honest webhook wording, the localhost warning, a send
budget that frees the worker, and one recovery summary per message."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import alert_dags
import pytest
from safeload.alerts import notifiers as n
from slack_server import Slow

T0 = datetime(2024, 5, 2, 1, 0, tzinfo=timezone.utc)
CONTACTS = {
    "owners": {"data-platform": "S0DATAPLT", "payments-team": {"mention": "U0PAYMENT1",
                                                              "runbook": "https://wiki.example.com/payments"}},
    "dags": {"finance_daily": {"mention": "<!subteam^S0FINANCE|@finance-oncall>"}},
}
DOC = "Loads orders.\n\nOn failure: [Runbook](https://wiki.example.com/runbooks/orders)."


def make_dag(dag_id="orders_daily", owner="data-platform", doc_md=DOC, dag_callback=False, params=None):
    """extract_orders, extract_payments -> load (outlet warehouse.orders) -> publish -> report;
    cleanup (all_done) after load."""
    from airflow.sdk import DAG, Asset, task

    callbacks = [n.send_failure_alert()] if dag_callback else None
    with DAG(dag_id, schedule=None, start_date=T0, doc_md=doc_md, params=params or {},
             on_failure_callback=callbacks, default_args={"owner": owner, "retries": 0}) as dag:

        @task(task_id="extract_orders")
        def extract_orders():
            return None

        @task(task_id="extract_payments", owner="payments-team")
        def extract_payments():
            return None

        @task(task_id="load", outlets=[Asset("warehouse.orders")])
        def load():
            return None

        @task(task_id="publish", outlets=[Asset("warehouse.orders_published")])
        def publish():
            return None

        @task(task_id="report")
        def report():
            return None

        @task(task_id="cleanup", trigger_rule="all_done")
        def cleanup():
            return None

        loaded = load()
        [extract_orders(), extract_payments()] >> loaded
        loaded >> publish() >> report()
        loaded >> cleanup()
    return dag


def three_deep() -> BaseException:
    """RuntimeError from OSError from ConnectionRefusedError, raised in alert_dags.py."""
    try:
        alert_dags.load_orders()
    except RuntimeError as error:
        return error
    raise AssertionError("unreachable")


def context(dag, task_id, *, run_id="scheduled__2024-05-01", state="failed", exception=None, try_number=1,
            log_url=None):
    ti = SimpleNamespace(
        dag_id=dag.dag_id, task_id=task_id, run_id=run_id, try_number=try_number, max_tries=0, state=state,
        start_date=T0, end_date=T0 + timedelta(seconds=14), map_index=-1,
        log_url=log_url or f"https://airflow.example.com/dags/{dag.dag_id}/runs/{run_id}/tasks/{task_id}",
    )
    ctx = {"dag": dag, "task": dag.task_dict[task_id], "ti": ti, "task_instance": ti, "run_id": run_id,
           "logical_date": T0 - timedelta(days=1)}
    if state == "failed":
        ctx["exception"] = exception if exception is not None else ValueError(f"{task_id} broke")
    return ctx


def dag_context(dag, *, run_id="scheduled__2024-05-01", reason="task_failure"):
    dag_run = SimpleNamespace(dag_id=dag.dag_id, run_id=run_id, logical_date=T0 - timedelta(days=1),
                              start_date=T0, end_date=T0 + timedelta(minutes=3), run_after=T0)
    return {"dag": dag, "dag_run": dag_run, "run_id": run_id, "reason": reason}


@pytest.fixture
def contacts_conn(slack_server, alert_env, monkeypatch):
    """The Web API connection with the team's contact mapping in its extra."""
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack_server.web_api_conn(channel="#data-alerts",
                                                                              contacts=CONTACTS))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    return slack_server


# ---------------------------------------------------------------------------- the cause


def test_root_cause_of_a_three_deep_chain_and_where_it_was_raised(contacts_conn):
    n.send_failure_alert()(context(make_dag(), "load", exception=three_deep()))
    [post] = contacts_conn.posts()
    text = post.all_text()
    assert "```RuntimeError: load of orders failed for partition 2024-01-02```" in text
    assert ("*Caused by*\n↳ `OSError: connection to server at db, port 5432 failed`\n"
            "↳ `ConnectionRefusedError: db:5432 refused` (root cause)") in text
    top = post.blocks[1]["text"]["text"]
    assert top.startswith("<!subteam^S0DATAPLT> root cause `ConnectionRefusedError: db:5432 refused` raised at `")
    assert "alert_dags.py:" in top and top.endswith(" in open_warehouse`")
    # the phone notification has it too
    assert "root cause: ConnectionRefusedError: db:5432 refused · raised at " in post.text


# ---------------------------------------------------------------------------- who and how


def test_mention_is_resolved_from_the_task_owner(contacts_conn):
    n.send_failure_alert()(context(make_dag(), "load", exception=three_deep()))
    n.send_failure_alert()(context(make_dag(dag_id="payments_daily", doc_md=None), "extract_payments"))
    orders, payments = contacts_conn.posts()
    assert orders.blocks[1]["text"]["text"].startswith("<!subteam^S0DATAPLT> root cause")
    assert "*Owner*\ndata-platform · <!subteam^S0DATAPLT>" in orders.all_text()
    assert "<!subteam^S0DATAPLT>" in orders.text
    assert payments.blocks[1]["text"]["text"].startswith("<@U0PAYMENT1> ")
    assert "<https://wiki.example.com/payments|Runbook>" in payments.all_text()  # the owner's runbook


def test_the_dag_entry_overrides_the_owner_and_a_config_mapping_works_too(slack_server, alert_env, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack_server.web_api_conn())
    monkeypatch.setenv("AIRFLOW__SAFELOAD__ALERT_CONTACTS", json.dumps(CONTACTS))
    n.send_failure_alert()(context(make_dag(dag_id="finance_daily"), "load"))
    [post] = slack_server.posts()
    assert post.blocks[1]["text"]["text"].startswith("<!subteam^S0FINANCE|@finance-oncall> ")


def test_runbook_from_the_doc_then_a_dag_param(contacts_conn):
    n.send_failure_alert()(context(make_dag(), "load"))
    n.send_failure_alert()(context(make_dag(dag_id="other", params={"runbook": "https://wiki.example.com/p"}),
                                   "load"))
    from_doc, from_param = contacts_conn.posts()
    assert "<https://wiki.example.com/runbooks/orders|Runbook>" in from_doc.all_text()
    assert "Runbook: https://wiki.example.com/runbooks/orders" in from_doc.text
    assert "<https://wiki.example.com/p|Runbook>" in from_param.all_text()


def test_a_broken_mapping_still_alerts_and_says_why(slack_server, alert_env, monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack_server.web_api_conn())
    monkeypatch.setenv("AIRFLOW__SAFELOAD__ALERT_CONTACTS", json.dumps({"owners": {"data-platform": "@data"}}))
    n.send_failure_alert()(context(make_dag(), "load"))
    [post] = slack_server.posts()
    assert "contact mapping not used: [safeload] alert_contacts.owners.data-platform: '@data' is not a Slack " \
           "mention" in post.all_text()
    assert "Alert contacts not used: [safeload] alert_contacts.owners.data-platform" in caplog.text


# ---------------------------------------------------------------------------- what it blocks


def test_the_downstream_tasks_and_assets_it_blocks(contacts_conn):
    n.send_failure_alert()(context(make_dag(), "extract_orders"))
    [post] = contacts_conn.posts()
    text = post.all_text()
    assert "*Blocks* 3 downstream tasks: `load`, `publish`, `report`" in text  # cleanup runs anyway
    assert "*Assets not updated* (2): `warehouse.orders`, `warehouse.orders_published`" in text
    assert "blocks 3 task(s) and 2 asset(s): load, publish, report" in post.text


def test_two_failing_tasks_of_one_run_are_named_in_one_message(contacts_conn):
    dag = make_dag()  # no DAG-level callback: the task callbacks alone
    n.send_failure_alert()(context(dag, "extract_orders"))
    n.send_failure_alert()(context(dag, "extract_payments"))
    first, also = contacts_conn.posts()
    assert first.thread_ts is None and also.thread_ts == "1700000000.000001"
    assert ("Failed tasks of this run so far (2): `extract_orders`, `extract_payments`" in also.all_text())
    assert "*orders_daily.extract_payments* also failed in this run" in also.all_text()
    assert also.text.endswith("Failed tasks of this run so far: extract_orders, extract_payments. Log: "
                              "https://airflow.example.com/dags/orders_daily/runs/scheduled__2024-05-01/tasks/"
                              "extract_payments")


def test_through_a_webhook_the_second_task_is_a_top_level_line_that_names_the_run(webhook_conn):
    dag = make_dag()
    n.send_failure_alert()(context(dag, "extract_orders"))
    n.send_failure_alert()(context(dag, "extract_payments"))
    first, also = webhook_conn.posts()
    text = also.all_text()
    assert "*orders_daily.extract_payments* also failed in run `scheduled__2024-05-01`" in text
    assert "Failed tasks of this run so far (2): `extract_orders`, `extract_payments`" in text
    assert "The run's first alert: `extract_orders`" in text


def test_with_a_dag_callback_the_run_message_names_both(webhook_conn, monkeypatch):
    dag = make_dag(dag_callback=True)
    for task_id in ("extract_orders", "extract_payments"):
        n.send_failure_alert()(context(dag, task_id))
    n.send_failure_alert()(dag_context(dag))
    task_message, run_message = webhook_conn.posts()  # the second task waited for the run message
    assert "*Failed tasks* (2)\n• `extract_orders`\n• `extract_payments` (no separate alert)" in run_message.all_text()
    assert "*Blocks* 3 downstream tasks: `load`, `publish`, `report`" in run_message.all_text()


# ---------------------------------------------------------------------------- where


@pytest.mark.parametrize(
    ("variable", "value"),
    [pytest.param("AIRFLOW__API__INSTANCE_NAME", "production", id="instance-name"),
     pytest.param("AIRFLOW__SAFELOAD__DEPLOYMENT_NAME", "production", id="setting")],
)
def test_the_deployment_is_named(contacts_conn, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    n.send_failure_alert()(context(make_dag(), "load"))
    [post] = contacts_conn.posts()
    assert post.text.startswith("[production] Failed: orders_daily.load")
    assert "*Deployment*\nproduction" in post.all_text()


# ---------------------------------------------------------------------------- what misled


def test_webhook_messages_do_not_promise_a_thread(webhook_conn, monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    n.send_failure_alert()(context(make_dag(), "load"))
    n.send_failure_alert()(context(make_dag(), "extract_orders", run_id="r2"))
    first, also = webhook_conn.posts()
    assert "folded into this message's thread" not in first.all_text()
    assert "a webhook cannot reply in a thread" in first.all_text()
    assert "also failed in run `r2`" not in also.all_text()  # r2's first failure: its own message
    assert also.blocks[0]["text"]["text"].startswith("🔴 Failed: orders_daily.extract_orders")


def test_links_to_localhost_are_warned_about_in_the_log_and_once_in_slack(webhook_conn, monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    local = "http://localhost:8080/dags/orders_daily/runs/r/tasks/load"
    for run_id in ("r1", "r2"):
        n.send_failure_alert()(context(make_dag(), "load", run_id=run_id, log_url=local))
    first, second = webhook_conn.posts()
    notice = "links point at localhost because [api] base_url is not set"
    assert notice in first.all_text() and notice not in second.all_text()
    assert caplog.text.count("Alert links point at http://localhost:8080 because [api] base_url is not set") == 2


def test_the_default_send_budget_frees_a_worker_from_a_hanging_slack(webhook_conn, monkeypatch):
    for name in ("SAFELOAD_ALERT_MAX_RETRIES", "SAFELOAD_ALERT_BACKOFF", "SAFELOAD_ALERT_MAX_BACKOFF",
                 "SAFELOAD_ALERT_TIMEOUT", "SAFELOAD_ALERT_BUDGET", "SAFELOAD_ALERT_RETRY_AFTER_CAP"):
        monkeypatch.delenv(name)  # the defaults
    webhook_conn.always(Slow(10), times=5)
    notifier = n.send_failure_alert()
    notifier(context(make_dag(), "load"))
    result = notifier.last_result
    # two 4 s attempts; a third could not end within the 10 s budget, so it is not started
    assert (result.ok, result.attempts, len(webhook_conn.requests)) == (False, 2, 2)
    assert "attempt would pass the 10 s budget" in result.error
    print(f"hanging Slack, default policy: the callback returned after {result.elapsed:.1f} s")


# ---------------------------------------------------------------------------- recovery


def test_recovery_of_a_run_with_eight_failed_tasks_is_one_summary_per_message(web_api_conn):
    from airflow.sdk import DAG, task

    with DAG("wide_daily", schedule=None, start_date=T0, on_failure_callback=[n.send_failure_alert()],
             default_args={"owner": "data-platform"}) as dag:
        for i in range(8):
            task(task_id=f"part_{i}")(lambda: None)()
    for i in range(8):
        n.send_failure_alert()(context(dag, f"part_{i}"))
    n.send_failure_alert()(dag_context(dag))
    task_message, run_message = web_api_conn.posts()
    assert "*Failed tasks* (8)" in run_message.all_text()
    for i in range(8):  # the next run: every task succeeds, then the run
        n.send_recovery_alert()(context(dag, f"part_{i}", run_id="r2", state="success"))
    n.send_recovery_alert()(dag_context(dag, run_id="r2", reason="success"))
    resolved = web_api_conn.posts()[2:]
    assert [p.thread_ts for p in resolved] == ["1700000000.000001", "1700000000.000002"]  # none top-level
    assert resolved[0].text.startswith("Resolved: wide_daily.part_0 succeeded on try 1 of 1 after 1 failure")
    assert "all 7 failed tasks this message announced have succeeded" in resolved[1].all_text()


def test_contexts_without_a_real_dag_still_alert(contacts_conn, caplog):
    caplog.set_level(logging.INFO)
    n.send_failure_alert()({"ti": SimpleNamespace(task_id="t", dag_id="d", state="failed"),
                            "exception": three_deep()})
    [post] = contacts_conn.posts()
    assert "root cause" in post.text
