"""The notifiers inside real Airflow runs (``dag.test()``) against the local Slack server.

What is posted (blocks, fallback, thread), how often (storm control across runs, one
message for a run with many failed tasks), retries quiet by default, "resolved" in the
failure's thread, the file fallback, and above all: with Slack down, the task ends
failed with its own exception and the run finishes.
"""

from __future__ import annotations

import json

import pytest
from slack_server import Status

pytestmark = pytest.mark.timeout(240)


def run(dag, **conf):
    dag_run = dag.test(run_conf=conf or None)
    return dag_run


def ti_states(dag_run) -> dict[str, str]:
    return {
        ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()
    }


@pytest.mark.parametrize("outage", ["http_500", "refused"])
def test_slack_down_leaves_the_task_failed_with_its_own_exception(
    outage, alert_dags, slack_server, monkeypatch, closed_port, no_secrets, caplog
):
    if outage == "http_500":
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack_server.webhook_conn())
        slack_server.always(Status(500), times=20)
    else:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SLACK_ALERTS",
            slack_server.web_api_conn().replace(str(slack_server.port), str(closed_port)),
        )
    dag_run = run(alert_dags.single)

    assert str(getattr(dag_run.state, "value", dag_run.state)) == "failed"  # the run finished
    assert ti_states(dag_run) == {"load": "failed"}
    [seen] = alert_dags.SEEN  # the callback after safeload's saw the task's own outcome
    assert seen["state"] == "failed"
    assert type(seen["exception"]) is ValueError and str(seen["exception"]) == alert_dags.ERROR
    # bounded: 1 + 2 retries with short backoffs, then given up and logged
    if outage == "http_500":
        assert [r.response_status for r in slack_server.requests] == [500, 500, 500]
    else:
        assert slack_server.requests == []
        assert caplog.text.count("Connection refused") >= 3
    assert "Slack alert not delivered" in caplog.text
    no_secrets(slack_server)


def test_failure_then_repeat_in_thread_then_resolved(alert_dags, web_api_conn, no_secrets):
    run(alert_dags.single)
    [first] = web_api_conn.posts()
    blocks = first.blocks
    assert blocks[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "🔴 Failed: safeload_alerts_single.load",
            "emoji": True,
        },
    }
    text = first.all_text()
    for expected in (
        "*DAG*\n`safeload_alerts_single`",
        "*Task*\n`load`",
        "*Try*\n1 of 1, final: no retries left",
        "*Owner*\ndata-platform",
        f"ValueError: {alert_dags.ERROR}",
        "/dags/safeload_alerts_single/runs/",
        "|Open the task log>",
        "first failure in the last hour",
    ):
        assert expected in text, expected
    assert first.text.startswith(
        "Failed: safeload_alerts_single.load (final, try 1 of 1): ValueError: the source"
    )
    assert first.thread_ts is None and first.body["channel"] == "#data-alerts"

    run(alert_dags.single)  # the same task fails again in a new run: one line, in the thread
    _, again = web_api_conn.posts()
    assert again.thread_ts == "1700000000.000001"
    assert "safeload_alerts_single.load failed again, 2nd time in the last hour" in again.text

    dag_run = run(alert_dags.single, fail=False)  # recovers: "resolved", in the thread
    assert ti_states(dag_run) == {"load": "success"}
    *_, resolved = web_api_conn.posts()
    assert resolved.thread_ts == "1700000000.000001"
    assert resolved.text.startswith(
        "Resolved: safeload_alerts_single.load succeeded on try 1 of 1 after 2 failures"
    )

    run(alert_dags.single, fail=False)  # success after success: silent
    assert len(web_api_conn.posts()) == 3
    no_secrets(web_api_conn)


def test_a_run_with_many_failed_tasks_gets_one_task_alert_and_one_dag_message(
    alert_dags, webhook_conn
):
    dag_run = run(alert_dags.many)
    assert ti_states(dag_run) == {"extract": "failed", "load": "failed", "check": "failed"}
    posts = webhook_conn.posts()
    assert len(posts) == 2
    task_alert, dag_message = posts
    assert task_alert.blocks[0]["text"]["text"].startswith("🔴 Failed: safeload_alerts_many.")
    assert dag_message.blocks[0]["text"]["text"] == "🔴 DAG run failed: safeload_alerts_many"
    text = dag_message.all_text()
    assert "*Failed tasks* (3)" in text
    assert text.count("(no separate alert)") == 2
    assert "a task failed" in text


def test_retry_alerts_are_quiet_by_default(alert_dags, webhook_conn, caplog):
    dag_run = run(alert_dags.retrying, succeed_on_try=2)
    assert ti_states(dag_run) == {"flaky": "success"}
    assert webhook_conn.requests == []  # no retry post, so no "resolved" either
    assert "not posted: retry alerts are off" in caplog.text


def test_retry_alert_when_enabled_and_resolved_in_its_thread(alert_dags, web_api_conn, monkeypatch):
    monkeypatch.setenv("SAFELOAD_ALERT_RETRIES", "1")
    dag_run = run(alert_dags.retrying, succeed_on_try=2)
    assert ti_states(dag_run) == {"flaky": "success"}
    retry, resolved = web_api_conn.posts()
    assert retry.text.startswith(
        "Retrying safeload_alerts_retry.flaky: try 1 of 2 failed: TimeoutError: lock on"
    )
    assert retry.thread_ts is None
    assert resolved.thread_ts == "1700000000.000001"
    assert resolved.text.startswith(
        "Resolved: safeload_alerts_retry.flaky succeeded on try 2 of 2 after 1 failure"
    )


def test_final_failure_after_retries_reads_final(alert_dags, webhook_conn):
    dag_run = run(alert_dags.retrying)
    assert ti_states(dag_run) == {"flaky": "failed"}
    [post] = webhook_conn.posts()  # the retry was quiet; the final failure is posted once
    assert post.blocks[0]["text"]["text"] == "🔴 Failed: safeload_alerts_retry.flaky"
    assert "*Try*\n2 of 2, final: no retries left" in post.all_text()
    assert [s["try_number"] for s in alert_dags.SEEN] == [2]


def test_without_a_connection_alerts_go_to_the_log_and_a_file(alert_dags, alert_env, caplog):
    dag_run = run(alert_dags.single)
    assert ti_states(dag_run) == {"load": "failed"}
    path = alert_env / "alerts.jsonl"
    [record] = [json.loads(line) for line in path.read_text().splitlines()]
    assert (
        record["label"]
        == f"[slack not configured (no connection 'slack_alerts'): alert written to {path}]"
    )
    assert record["text"].startswith("Failed: safeload_alerts_single.load")
    assert record["label"] in caplog.text


def test_the_3am_message_of_a_real_run_and_its_recovery(alert_dags, slack_server, monkeypatch):
    contacts = {"owners": {"data-platform": "S0DATAPLT"}}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack_server.web_api_conn(channel="#data-alerts",
                                                                              contacts=contacts))
    monkeypatch.setenv("AIRFLOW__SAFELOAD__DEPLOYMENT_NAME", "staging")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    dag_run = run(alert_dags.three_am)
    assert ti_states(dag_run) == {"extract_orders": "failed", "extract_payments": "failed",
                                  "load_day": "upstream_failed", "publish_day": "upstream_failed"}
    first, second = slack_server.posts()
    assert first.thread_ts is None and second.thread_ts == "1700000000.000001"  # one message, one thread
    assert first.blocks[0]["text"]["text"] == "🔴 Failed: safeload_alerts_3am.extract_orders"
    text = first.all_text()
    for expected in (
        "<!subteam^S0DATAPLT> root cause `ConnectionRefusedError: db:5432 refused`",
        "↳ `OSError: connection to server at db, port 5432 failed`",
        "↳ `ConnectionRefusedError: db:5432 refused` (root cause)",
        "alert_dags.py:",
        " in open_warehouse`",
        "*Blocks* 2 downstream tasks: `load_day`, `publish_day`",
        "*Assets not updated* (1): `warehouse.orders`",
        "<https://wiki.example.com/runbooks/3am|Runbook>",
        "*Deployment*\nstaging",
        "https://airflow.example.com/dags/safeload_alerts_3am/runs/",
    ):
        assert expected in text, expected
    assert "Failed tasks of this run so far (2): `extract_orders`, `extract_payments`" in second.all_text()
    assert first.text.startswith("[staging] Failed: safeload_alerts_3am.extract_orders (final, try 1 of 1)")

    dag_run = run(alert_dags.three_am, fail=False)
    assert set(ti_states(dag_run).values()) == {"success"}
    [resolved] = slack_server.posts()[2:]  # one summary for both, in the thread
    assert resolved.thread_ts == "1700000000.000001"
    assert "Resolves: `extract_orders` (1), `extract_payments` (1)" in resolved.all_text()
