"""The notifiers with the contexts Airflow hands them (built by hand here, so every shape
is covered quickly: task callbacks, DAG callbacks with and without ``ti``, DAG-processor
callbacks without exception), real HTTP to the local server, and never raising."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from safeload.alerts import messages
from safeload.alerts import notifiers as n
from safeload.alerts.transport import RetryPolicy
from slack_server import Status

T0 = datetime(2024, 5, 2, 1, 0, tzinfo=timezone.utc)
BAD_ROW = ValueError("bad row 1042")


def make_dag(dag_id):
    from airflow.sdk import DAG

    return DAG(dag_id, schedule=None, start_date=T0)


def task_context(
    task_id="load",
    run_id="scheduled__2024-05-01",
    try_number=1,
    max_tries=0,
    state="failed",
    exception=BAD_ROW,
    dag_id="orders_daily",
    **extra,
):
    dag = make_dag(dag_id)
    task = SimpleNamespace(task_id=task_id, owner="ops-team", retries=max_tries, dag=dag)
    ti = SimpleNamespace(
        dag_id=dag_id,
        task_id=task_id,
        run_id=run_id,
        try_number=try_number,
        max_tries=max_tries,
        state=state,
        start_date=T0,
        end_date=T0 + timedelta(seconds=95),
        map_index=-1,
        log_url=f"http://airflow.local/dags/{dag_id}/runs/{run_id}/tasks/{task_id}?try_number={try_number}",
    )
    dag_run = SimpleNamespace(
        dag_id=dag_id,
        run_id=run_id,
        logical_date=T0 - timedelta(days=1),
        start_date=T0,
        end_date=None,
        run_after=T0,
    )
    context = {
        "dag": dag,
        "task": task,
        "ti": ti,
        "task_instance": ti,
        "dag_run": dag_run,
        "run_id": run_id,
        "logical_date": dag_run.logical_date,
        "exception": exception,
    }
    context.update(extra)
    return context


def dag_context(
    run_id="scheduled__2024-05-01", reason="task_failure", with_ti=True, dag_id="orders_daily"
):
    if with_ti:
        context = task_context(run_id=run_id, dag_id=dag_id, exception=None)
        context.pop("exception")
    else:
        context = {"dag": make_dag(dag_id), "run_id": run_id}
    context["reason"] = reason
    return context


def test_aliases_defaults_and_templated_fields():
    assert n.send_failure_alert is n.SafeloadFailureNotifier
    assert n.send_retry_alert is n.SafeloadRetryNotifier
    assert n.send_recovery_alert is n.SafeloadRecoveryNotifier
    notifier = n.send_failure_alert()
    assert notifier.slack_conn_id == "slack_alerts" and notifier.channel is None
    assert tuple(notifier.template_fields) == ("slack_conn_id", "channel")


def test_task_failure_alert_content(web_api_conn):
    notifier = n.send_failure_alert(channel="#oncall")
    notifier(task_context())
    [post] = web_api_conn.posts()
    assert post.body["channel"] == "#oncall"
    text = post.all_text()
    for expected in (
        "*Task*\n`load`",
        "*Logical date*\n2024-05-01T01:00:00+00:00",
        "*Try*\n1 of 1, final",
        "*Duration*\n1 min 35 s",
        "*Owner*\nops-team",
        "ValueError: bad row 1042",
        "<http://airflow.local/dags/orders_daily/runs/scheduled__2024-05-01/tasks/load?try_number=1|",
    ):
        assert expected in text, expected
    assert notifier.last_result.ok and notifier.last_result.ts == "1700000000.000001"


def test_failure_callback_while_retries_remain_reads_will_retry(webhook_conn, monkeypatch):
    # Airflow 3 runs a killed worker's callbacks in the DAG processor: no exception, no end
    # date (apache/airflow#65400); with retry alerts on, it is posted as "will retry"
    monkeypatch.setenv("SAFELOAD_ALERT_RETRIES", "1")
    context = task_context(try_number=1, max_tries=2, state=None, exception=None)
    context.pop("exception")
    context["ti"].end_date = None
    n.send_failure_alert()(context)
    [post] = webhook_conn.posts()
    assert post.blocks[0]["text"]["text"] == "🟠 Failed, will retry: orders_daily.load"
    assert "*Try*\n1 of 3, will be retried" in post.all_text()
    assert "No exception was recorded (the worker may have been killed)" in post.all_text()


def test_dag_callback_without_ti(webhook_conn):
    n.send_failure_alert()(dag_context(reason="timed_out", with_ti=False))
    [post] = webhook_conn.posts()
    assert post.text == ("DAG run failed: orders_daily (the run timed out (dagrun_timeout)) — Log: "
                         "http://localhost:8080/dags/orders_daily/runs/scheduled__2024-05-01")
    assert "<http://localhost:8080/dags/orders_daily/runs/scheduled__2024-05-01|Open the DAG run>" in post.all_text()
    assert post.blocks[0]["text"]["text"] == "🔴 DAG run failed: orders_daily"


def test_dag_callback_is_skipped_when_the_task_alert_said_it_all(webhook_conn, caplog):
    n.send_failure_alert()(task_context())
    n.send_failure_alert()(dag_context())
    assert len(webhook_conn.posts()) == 1
    assert "not posted (skip): the run's task alerts said it all" in caplog.text


def test_dag_callback_names_the_causing_task_when_no_task_alert_ran(webhook_conn):
    n.send_failure_alert()(dag_context())
    [post] = webhook_conn.posts()
    assert "*Failed tasks* (1)\n• `load`" in post.all_text()


def test_storm_of_failures_across_runs(webhook_conn):
    notifier = n.send_failure_alert()
    for i in range(12):
        notifier(task_context(run_id=f"run_{i}"))
    posts = webhook_conn.posts()
    # the first in full; "failed again" at the 2nd, 3rd, 5th and 10th; webhooks cannot thread
    assert len(posts) == 5
    assert [p.text.split(" (")[0] for p in posts[1:]] == [
        f"orders_daily.load failed again, {k} time in the last hour"
        for k in ("2nd", "3rd", "5th", "10th")
    ]
    assert all(p.thread_ts is None for p in posts)


@pytest.mark.parametrize(
    ("enabled", "env"),
    [pytest.param(None, None, id="default-off"), pytest.param(False, "1", id="retry-notifier-off")],
)
def test_failure_callback_while_retries_remain_follows_the_retry_notifier(
    webhook_conn, monkeypatch, caplog, enabled, env
):
    if env:
        monkeypatch.setenv("SAFELOAD_ALERT_RETRIES", env)
    context = task_context(try_number=1, max_tries=2, state=None, exception=None)
    context["task"].on_retry_callback = [n.send_retry_alert(enabled=enabled)]
    notifier = n.send_failure_alert()
    notifier(context)
    assert webhook_conn.requests == [] and notifier.last_result is None
    assert "while Airflow will retry it not posted: retry alerts are off" in caplog.text
    context["ti"].try_number, context["ti"].state = 3, "failed"  # the final failure is posted
    notifier(context)
    [post] = webhook_conn.posts()
    assert post.blocks[0]["text"]["text"] == "🔴 Failed: orders_daily.load"


def test_final_failure_after_will_retry_is_broadcast_from_the_thread(web_api_conn, monkeypatch):
    monkeypatch.setenv("SAFELOAD_ALERT_RETRIES", "1")
    notifier = n.send_failure_alert()
    notifier(task_context(try_number=1, max_tries=1, state="up_for_retry"))
    notifier(task_context(try_number=2, max_tries=1, state="failed"))
    first, final = web_api_conn.posts()
    assert first.blocks[0]["text"]["text"].startswith("🟠 Failed, will retry")
    assert (final.thread_ts, final.body.get("reply_broadcast")) == (
        first_ts := "1700000000.000001",
        True,
    )
    assert "try 2 of 2, final" in final.text and first_ts


def test_recovery_via_webhook_is_a_top_level_message(webhook_conn):
    n.send_failure_alert()(task_context())
    n.send_recovery_alert()(task_context(state="success", exception=None))
    n.send_recovery_alert()(task_context(state="success", exception=None))  # nothing open: silent
    _failure, resolved = webhook_conn.posts()
    assert resolved.text.startswith(
        "Resolved: orders_daily.load succeeded on try 1 of 1 after 1 failure since"
    )
    assert resolved.thread_ts is None


def test_dag_level_recovery_resolves_the_tasks_in_one_message(web_api_conn):
    n.send_failure_alert()(task_context(task_id="extract"))
    n.send_recovery_alert()(dag_context(reason="success"))
    _failure, resolved = web_api_conn.posts()
    assert resolved.thread_ts == "1700000000.000001"
    assert "Resolves: `extract`" in resolved.all_text()


def test_undelivered_resolved_is_tried_again_on_the_next_success(web_api_conn):
    n.send_failure_alert()(task_context())
    web_api_conn.always(Status(503), times=3)
    n.send_recovery_alert()(task_context(state="success"))
    n.send_recovery_alert()(task_context(state="success"))
    assert [p.text.split(":")[0] for p in web_api_conn.posts()] == ["Failed", "Resolved"]


@pytest.mark.parametrize(
    ("enabled", "env", "posted"),
    [
        pytest.param(None, None, 0, id="default-off"),
        pytest.param(None, "1", 1, id="env-on"),
        pytest.param(True, None, 1, id="param-on"),
        pytest.param(False, "1", 0, id="param-off-wins"),
    ],
)
def test_retry_notifier_is_quiet_unless_enabled(webhook_conn, monkeypatch, enabled, env, posted):
    if env:
        monkeypatch.setenv("SAFELOAD_ALERT_RETRIES", env)
    n.send_retry_alert(enabled=enabled)(
        task_context(try_number=1, max_tries=2, state="up_for_retry")
    )
    posts = webhook_conn.posts()
    assert len(posts) == posted
    if posted:
        assert posts[0].text.startswith(
            "Retrying orders_daily.load: try 1 of 3 failed: ValueError: bad row 1042"
        )


@pytest.mark.parametrize(
    "context",
    [
        pytest.param({}, id="empty"),
        pytest.param({"ti": object(), "exception": "x"}, id="opaque-ti"),
        pytest.param({"reason": "task_failure"}, id="dag-level-bare"),
    ],
)
def test_odd_contexts_still_alert_and_never_raise(webhook_conn, context):
    n.send_failure_alert()(context)
    assert len(webhook_conn.posts()) == 1


def test_notify_never_raises(webhook_conn, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("bug with xoxb-1111-2222-leakedtoken inside")

    monkeypatch.setattr(messages, "failure_message", explode)  # notifiers imports it at send time
    notifier = n.send_failure_alert()
    notifier(task_context())  # no exception escapes
    assert notifier.last_result is None
    assert "safeload alert failed; the task's own state is unchanged" in caplog.text
    assert "leakedtoken" not in caplog.text


def test_template_errors_do_not_stop_the_alert(webhook_conn, caplog):
    n.send_failure_alert(slack_conn_id="{{ this_is_not_defined() }}")(task_context())
    assert "templated fields could not be rendered" in caplog.text
    assert len(webhook_conn.posts()) == 0  # the unrendered connection id does not exist ...
    assert "no connection '{{ this_is_not_defined() }}'" in caplog.text  # ... so the file got it


def test_slow_slack_is_bounded_inside_a_callback(webhook_conn, monkeypatch):
    monkeypatch.setenv("SAFELOAD_ALERT_TIMEOUT", "0.5")
    from slack_server import Slow

    webhook_conn.always(Slow(10), times=5)
    notifier = n.send_failure_alert()
    notifier(task_context())
    result = notifier.last_result
    # 3 attempts that each ended at the 0.5 s timeout (a 10 s timeout would have got the
    # slow reply on the first) with short backoffs between them
    assert (result.ok, result.attempts) == (False, 3)
    assert len(webhook_conn.requests) == 3 and result.retry_waits < 3


def test_quality_summary_is_posted(webhook_conn):
    summary = json.loads(json.dumps(QUALITY_SUMMARY))
    result = n.send_quality_summary(
        summary, context=task_context(task_id="summary", exception=None)
    )
    assert result.ok
    [post] = webhook_conn.posts()
    text = post.all_text()
    assert post.blocks[0]["text"]["text"] == "⚠️ Load summary: public.orders 2024-05-01"
    for expected in (
        "*Rows loaded*\n998 of 1,000",
        "*Rows quarantined*\n2 (0.20%)",
        "⚠️ `expect_column_values_to_not_be_null` on `amount` (warning): observed `3`, expected `0 nulls`",
        "• added `coupon` (additive)",
        "decision `warn`",
        "<http://airflow.local/dags/orders_daily/runs/scheduled__2024-05-01/tasks/summary?try_number=1|",
    ):
        assert expected in text, expected


def test_quality_summary_never_raises(alert_env, monkeypatch):
    monkeypatch.setattr(messages, "quality_summary_message", lambda s: 1 / 0)
    result = n.send_quality_summary({})
    assert (result.ok, result.transport) == (False, "none")
    assert result.error == "ZeroDivisionError: division by zero"


def test_quality_summary_without_connection_goes_to_the_file(alert_env):
    result = n.send_quality_summary({"table": "public.orders"}, retry_policy=RetryPolicy())
    assert result.transport == "file"
    assert "Load summary public.orders" in (alert_env / "alerts.jsonl").read_text()


QUALITY_SUMMARY = {
    "dag_id": "orders_daily",
    "table": "public.orders",
    "partition": "2024-05-01",
    "load": {
        "rows_source": 1000,
        "rows_loaded": 998,
        "rows_quarantined": 2,
        "rows_replaced": 1000,
        "status": "published",
    },
    "drift": {
        "decision": "warn",
        "policy": "warn",
        "changes": [
            {
                "kind": "added",
                "column": "coupon",
                "class": "additive",
                "detail": "text, nullable",
                "action": "loaded without it",
            }
        ],
    },
    "quality": {
        "success": True,
        "results": [
            {
                "type": "expect_column_values_to_not_be_null",
                "column": "amount",
                "success": False,
                "severity": "warning",
                "observed_value": 3,
                "expected": "0 nulls",
            }
        ],
    },
}
