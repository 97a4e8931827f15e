"""Secrets never leave through log lines or error texts; retry settings are validated."""

from __future__ import annotations

import logging

import pytest
from safeload.alerts import transport as tr


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        pytest.param("token xoxb-1234-5678-AbCdEf is bad", "xoxb-1234-5678-AbCdEf", id="bot-token"),
        pytest.param("user token xoxp-99-88-77-abc", "xoxp-99-88-77-abc", id="user-token"),
        pytest.param("app xoxa-2-abc", "xoxa-2-abc", id="app-token"),
        pytest.param(
            "POST https://hooks.slack.com/services/T000/B000/XXXXSECRET failed",
            "T000/B000/XXXXSECRET",
            id="webhook-url",
        ),
        pytest.param(
            "POST http://127.0.0.1:5/services/T1A/B2B/sEcReT99 failed",
            "sEcReT99",
            id="webhook-path",
        ),
        pytest.param("Authorization: Bearer abc.def.ghi", "abc.def.ghi", id="bearer"),
        pytest.param('{"token": "s3cr3t-value"}', "s3cr3t-value", id="json-token"),
        pytest.param("postgresql://user:hunter2pass@db:5432/x", "hunter2pass", id="uri-password"),
    ],
)
def test_scrub_redacts(text, secret):
    out = tr.scrub(text)
    assert secret not in out
    assert "***" in out


def test_scrub_redacts_registered_connection_passwords():
    tr.register_secret("plain-password-without-shape")
    assert tr.scrub("it was plain-password-without-shape!") == "it was ***!"
    assert tr.scrub("one-off secret here", extra=["one-off secret"]) == "*** here"


def test_scrub_keeps_ordinary_text():
    text = (
        "Slack web_api: HTTP 500; retry 1 of 3 in 0.5 s; password authentication failed for user x"
    )
    assert tr.scrub(text) == text


def test_sdk_logger_is_quiet_and_scrubbed(caplog):
    assert tr.sdk_logger.level == logging.CRITICAL
    with caplog.at_level(logging.CRITICAL, logger="safeload.alerts.slack_sdk"):
        tr.sdk_logger.critical(
            "Going to retry the same request: POST %s",
            "https://hooks.slack.com/services/T/B/SECRETX",
        )
    assert "SECRETX" not in caplog.text
    assert "hooks.slack.com/***" in caplog.text


def test_retry_policy_from_env():
    policy = tr.RetryPolicy.from_env(
        {
            "SAFELOAD_ALERT_MAX_RETRIES": "5",
            "SAFELOAD_ALERT_BACKOFF": "0.1",
            "SAFELOAD_ALERT_RETRY_AFTER_CAP": "2",
            "SAFELOAD_ALERT_TIMEOUT": "3",
            "SAFELOAD_ALERT_BUDGET": "20",
            "SAFELOAD_ALERT_MAX_BACKOFF": "",
        }
    )
    assert policy == tr.RetryPolicy(
        max_retries=5, backoff=0.1, retry_after_cap=2, timeout=3, budget=20
    )
    assert tr.RetryPolicy.from_env({}) == tr.RetryPolicy()


@pytest.mark.parametrize(
    ("env", "match"),
    [
        pytest.param(
            {"SAFELOAD_ALERT_MAX_RETRIES": "three"},
            "SAFELOAD_ALERT_MAX_RETRIES='three' is not a number",
            id="nan",
        ),
        pytest.param(
            {"SAFELOAD_ALERT_TIMEOUT": "0"}, "timeout=0.0: must be > 0 seconds", id="zero-timeout"
        ),
        pytest.param(
            {"SAFELOAD_ALERT_BACKOFF": "-1"}, "backoff=-1.0: must be a number >= 0", id="negative"
        ),
    ],
)
def test_retry_policy_refuses_bad_values(env, match):
    with pytest.raises(ValueError, match=match):
        tr.RetryPolicy.from_env(env)


def test_retry_budget_counts_the_wait_and_the_next_attempt():
    attempts = tr._Attempts(tr.RetryPolicy(max_retries=10, timeout=0.5, budget=1.5), "webhook")
    assert attempts.allow(0.5, "HTTP 500")  # 0.5 s wait + a 0.5 s attempt end within 1.5 s
    assert not attempts.allow(1.0, "HTTP 429 rate limited")
    assert attempts.gave_up == (
        "HTTP 429 rate limited; a 1.0 s wait and a 0.5 s attempt would pass the 1.5 s budget"
    )


def test_default_policy_bounds_one_send_to_ten_seconds():
    policy = tr.RetryPolicy()
    assert (policy.timeout, policy.budget, policy.max_retries) == (4.0, 10.0, 2)
    # a Slack that hangs: the first attempt times out at 4 s; a retry fits (4 + wait + 4 <= 10)
    attempts = tr._Attempts(policy, "web_api")
    attempts.started -= policy.timeout
    assert attempts.allow(policy.backoff, "ReadTimeout")
    attempts.retries, attempts.started = 1, attempts.started - policy.backoff - policy.timeout
    assert not attempts.allow(policy.backoff * 2, "ReadTimeout")  # a third would end after 10 s


def test_retry_count_is_bounded():
    attempts = tr._Attempts(tr.RetryPolicy(max_retries=1, backoff=0), "webhook")
    assert attempts.allow(0, "HTTP 500")
    attempts.wait(0, "HTTP 500")
    assert not attempts.allow(0, "HTTP 500")
    assert attempts.gave_up == "HTTP 500; no retries left (1 max)"


def test_default_fallback_path():
    assert tr.default_fallback_path({"AIRFLOW_HOME": "/af"}) == tr.Path("/af/safeload/alerts.jsonl")
    assert tr.default_fallback_path({"SAFELOAD_ALERT_FILE": "/x/a.jsonl"}) == tr.Path("/x/a.jsonl")


def test_file_transport_appends_labelled_json_lines(tmp_path, caplog):
    from safeload.alerts.messages import Message

    path = tmp_path / "deep" / "alerts.jsonl"
    transport = tr.FileTransport(path)
    with caplog.at_level(logging.WARNING, logger="safeload.alerts.transport"):
        first = transport.send(
            Message(text="one xoxb-1-2-secret", blocks=[{"type": "divider"}], kind="failure")
        )
        transport.send(Message(text="two"))
    assert first.ok and first.transport == "file" and first.path == str(path)
    lines = [tr.json.loads(line) for line in path.read_text().splitlines()]
    assert [r["text"] for r in lines] == ["one xoxb-***", "two"]
    assert lines[0]["label"] == f"[slack not configured: alert written to {path}]"
    assert f"[slack not configured: alert written to {path}] two" in caplog.text
    assert "xoxb-1-2-secret" not in path.read_text() + caplog.text
