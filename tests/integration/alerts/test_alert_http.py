"""Both Slack transports over real HTTP against the local server: what is sent, how often,
retries on 5xx / 429 / slow / dropped / refused, no retry on errors that will not pass,
the no-connection fallback, and no secret in any log line or result."""

from __future__ import annotations

import json

import pytest
from safeload.alerts.messages import TaskEvent, failure_message
from safeload.alerts.transport import (
    FileTransport,
    RetryPolicy,
    WebApiTransport,
    WebhookTransport,
    resolve_transport,
)
from slack_server import Close, RateLimited, Slow, Status

CONN = "slack_alerts"
MESSAGE = failure_message(
    TaskEvent(
        dag_id="orders_daily",
        task_id="load",
        try_number=1,
        max_tries=0,
        exception="ValueError: bad row",
    )
)
# generous per-attempt timeout: a loaded 2-core machine must not turn a normal reply into a timeout
FAST = RetryPolicy(
    max_retries=2, backoff=0.05, max_backoff=0.2, retry_after_cap=2, timeout=5, budget=10
)


def transport(policy: RetryPolicy = FAST, **kwargs):
    return resolve_transport(CONN, policy=policy, **kwargs)


def test_webhook_posts_blocks_and_fallback_text(webhook_conn, no_secrets):
    t = transport()
    assert isinstance(t, WebhookTransport)
    result = t.send(MESSAGE)
    assert (result.ok, result.attempts, result.status) == (True, 1, 200)
    [post] = webhook_conn.posts("webhook")
    assert post.path == webhook_conn.webhook_path
    assert post.headers["Content-Type"].startswith("application/json")
    assert post.body["blocks"] == MESSAGE.blocks
    assert post.body["text"] == MESSAGE.text
    assert post.body["unfurl_links"] is False
    no_secrets(webhook_conn, repr(result))


def test_web_api_posts_to_the_channel_and_replies_in_threads(web_api_conn, no_secrets):
    t = transport()
    assert isinstance(t, WebApiTransport) and t.channel == "#data-alerts"
    first = t.send(MESSAGE)
    reply = t.send(MESSAGE, thread_ts=first.ts, channel=first.channel, broadcast=True)
    assert (first.ok, first.ts, first.channel) == (
        True,
        "1700000000.000001",
        web_api_conn.channel_id,
    )
    assert reply.ok and reply.ts == "1700000000.000002"
    top, threaded = web_api_conn.posts("chat.postMessage")
    assert top.headers["Authorization"] == f"Bearer {web_api_conn.token}"
    assert (top.body["channel"], top.thread_ts, top.body["blocks"]) == (
        "#data-alerts",
        None,
        MESSAGE.blocks,
    )
    assert (threaded.body["channel"], threaded.thread_ts, threaded.body["reply_broadcast"]) == (
        web_api_conn.channel_id,
        first.ts,
        True,
    )
    no_secrets(web_api_conn, repr(first), repr(reply))


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_then_delivered(webhook_conn, status):
    webhook_conn.script(Status(status), Status(status))
    result = transport().send(MESSAGE)
    assert (result.ok, result.attempts) == (True, 3)
    assert [r.response_status for r in webhook_conn.requests] == [status, status, 200]


def test_persistent_500_gives_up_after_the_retries_and_logs(web_api_conn, no_secrets, caplog):
    web_api_conn.always(Status(500), times=10)
    result = transport().send(MESSAGE)
    assert (result.ok, result.attempts, result.status) == (False, 3, 500)
    assert result.retry_waits < 3  # the sleeps the transport chose: short backoffs, never a long wait
    assert result.error.startswith("HTTP 500; no retries left (2 max)")
    assert len(web_api_conn.requests) == 3
    assert "Slack alert not delivered (web_api, 3 attempt(s)" in caplog.text
    assert "The task's own state is unchanged" in caplog.text
    no_secrets(web_api_conn, repr(result))


@pytest.mark.parametrize("conn", ["webhook_conn", "web_api_conn"])
def test_429_waits_for_retry_after(conn, request):
    server = request.getfixturevalue(conn)
    server.script(RateLimited(retry_after=1))
    result = transport().send(MESSAGE)
    assert (result.ok, result.attempts) == (True, 2)
    first, second = server.requests
    assert (first.response_status, second.response_status) == (429, 200)
    assert result.retry_waits == 1.0  # Retry-After as given
    assert second.at - first.at >= 0.95  # and taken


def test_429_retry_after_is_capped(webhook_conn):
    webhook_conn.script(RateLimited(retry_after=120))
    policy = RetryPolicy(max_retries=2, backoff=0.05, retry_after_cap=0.3, timeout=5, budget=10)
    result = transport(policy).send(MESSAGE)
    assert result.ok
    first, second = webhook_conn.requests
    assert result.retry_waits == 0.3  # the cap, not 120 s
    assert second.at - first.at >= 0.28


def test_429_without_retry_after_backs_off(webhook_conn):
    webhook_conn.script(RateLimited(retry_after=None))
    policy = RetryPolicy(max_retries=1, backoff=0.05, retry_after_cap=1.5, timeout=5, budget=10)
    result = transport(policy).send(MESSAGE)
    assert result.ok
    first, second = webhook_conn.requests
    assert 1.0 <= result.retry_waits <= 1.5  # 1 s + the backoff, capped at 1.5
    assert second.at - first.at >= 1.0


def test_wait_beyond_the_budget_is_not_taken(webhook_conn):
    webhook_conn.script(RateLimited(retry_after=5))
    policy = RetryPolicy(max_retries=3, retry_after_cap=5, timeout=0.5, budget=1)
    result = transport(policy).send(MESSAGE)
    assert not result.ok and len(webhook_conn.requests) == 1
    assert result.retry_waits == 0  # the 5 s wait was not taken
    assert "a 5.0 s wait and a 0.5 s attempt would pass the 1 s budget" in result.error


@pytest.mark.parametrize("conn", ["webhook_conn", "web_api_conn"])
def test_slow_response_times_out_and_is_retried(conn, request):
    server = request.getfixturevalue(conn)
    server.script(Slow(8))
    policy = RetryPolicy(max_retries=2, backoff=0.05, timeout=1.5, budget=20)
    result = transport(policy).send(MESSAGE)
    # two attempts: the first was abandoned at its 1.5 s timeout (waiting out the 8 s reply
    # would have delivered it in one attempt), the second delivered
    assert result.ok and result.attempts == 2
    assert len(server.requests) == 2
    assert server.requests[1].at - server.requests[0].at >= 1.5


def test_dropped_connection_is_retried(webhook_conn):
    webhook_conn.script(Close())
    result = transport().send(MESSAGE)
    assert (result.ok, result.attempts) == (True, 2)


def test_refused_connection_is_retried_then_given_up(monkeypatch, alert_env, closed_port, caplog):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        json.dumps(
            {
                "conn_type": "slackwebhook",
                "host": f"http://127.0.0.1:{closed_port}",
                "password": "services/T1/B2/refusedSECRET1",
            }
        ),
    )
    result = transport().send(MESSAGE)
    assert (result.ok, result.attempts, result.status) == (False, 3, None)
    assert result.retry_waits < 3  # short backoffs between the attempts
    assert "Connection refused" in result.error
    assert caplog.text.count("Connection refused") >= 3  # two retries and the final error
    assert "refusedSECRET1" not in caplog.text + repr(result)


def test_bad_token_is_not_retried(slack_server, alert_env, monkeypatch, no_secrets):
    wrong = "xoxb-999999999999-wrongTokenValue77"
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack_server.web_api_conn(token=wrong))
    result = transport().send(MESSAGE)
    assert (result.ok, result.attempts) == (False, 1)
    assert result.error == "Slack API error invalid_auth (HTTP 200)"
    assert len(slack_server.requests) == 1 and slack_server.posts() == []
    no_secrets(slack_server, wrong)


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [
        pytest.param(None, 404, id="unknown-hook-404"),
        pytest.param(Status(403, "invalid_token"), 403, id="403"),
    ],
)
def test_webhook_client_errors_are_not_retried(
    slack_server, alert_env, monkeypatch, behaviour, status, caplog
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        slack_server.webhook_conn(path="/services/T9/B9/revokedSECRET9"),
    )
    if behaviour:
        slack_server.script(behaviour)
    result = transport().send(MESSAGE)
    assert (result.ok, result.attempts, result.status) == (False, 1, status)
    assert len(slack_server.requests) == 1
    assert "not delivered" in caplog.text
    assert "revokedSECRET9" not in caplog.text + repr(result)


def test_web_api_channel_from_connection_extra_and_parameter(slack_server, alert_env, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS", slack_server.web_api_conn(channel="#from-extra")
    )
    assert transport().channel == "#from-extra"
    assert transport(channel="#from-param").channel == "#from-param"
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack_server.web_api_conn())
    assert transport().channel == "#data-alerts"


def test_no_connection_writes_a_labelled_file(alert_env, caplog):
    t = transport()
    assert isinstance(t, FileTransport)
    result = t.send(MESSAGE)
    path = alert_env / "alerts.jsonl"
    assert (result.ok, result.transport, result.path) == (True, "file", str(path))
    [line] = [json.loads(x) for x in path.read_text().splitlines()]
    label = f"[slack not configured (no connection 'slack_alerts'): alert written to {path}]"
    assert (
        line["label"] == label and line["text"] == MESSAGE.text and line["blocks"] == MESSAGE.blocks
    )
    assert label in caplog.text


def test_connection_of_another_type_falls_back_to_the_file(alert_env, monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", "http://user:pw-SECRET-42@example.invalid")
    t = transport()
    assert isinstance(t, FileTransport)
    assert t.send(MESSAGE).ok
    assert "has conn_type 'http'; expected 'slackwebhook' or 'slack'" in caplog.text
    assert "pw-SECRET-42" not in caplog.text
