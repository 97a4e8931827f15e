"""The opt-in listener in real runs: it alerts on failures of DAGs with a matching tag,
whatever callbacks they have, and stays silent for the others."""

from __future__ import annotations

import pytest
from safeload.alerts import listener

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def registered_listener(monkeypatch):
    """safeload's listener in the task runner's listener manager, for this test only."""
    from airflow.sdk.listener import get_listener_manager

    manager = get_listener_manager()
    manager.add_listener(listener.safeload_listener)
    try:
        yield listener.safeload_listener
    finally:
        manager.pm.unregister(listener.safeload_listener)


def test_enabled_listeners_follows_the_environment(monkeypatch):
    monkeypatch.delenv(listener.TAGS_ENV, raising=False)
    assert listener.enabled_listeners() == []
    monkeypatch.setenv(listener.TAGS_ENV, " , ")
    assert listener.enabled_listeners() == []
    monkeypatch.setenv(listener.TAGS_ENV, "warehouse, finance")
    assert listener.enabled_listeners() == [listener.safeload_listener]
    assert listener.listener_tags() == frozenset({"warehouse", "finance"})


def test_listener_hook_matches_airflow_spec():
    import inspect

    from airflow.sdk._shared.listeners.spec import taskinstance as spec

    assert inspect.signature(listener.on_task_instance_failed).parameters.keys() == (
        inspect.signature(spec.on_task_instance_failed).parameters.keys()
    )


def test_listener_alerts_on_tagged_dags_only(
    alert_dags, webhook_conn, monkeypatch, registered_listener, no_secrets
):
    monkeypatch.setenv(listener.TAGS_ENV, "alerts-listener")
    alert_dags.unlistened.test()
    assert webhook_conn.requests == []
    alert_dags.listened.test()
    [post] = webhook_conn.posts()
    assert post.blocks[0]["text"]["text"] == "🔴 Failed: safeload_alerts_listened.unguarded"
    assert "KeyError: 'no callbacks here: the listener must see this'" in post.all_text()
    no_secrets(webhook_conn)


def test_listener_and_callback_do_not_post_the_same_failure_twice(
    alert_dags, webhook_conn, monkeypatch, registered_listener
):
    monkeypatch.setenv(listener.TAGS_ENV, "*")
    alert_dags.single.test()  # has send_failure_alert() as callback and is matched by "*"
    assert len(webhook_conn.posts()) == 1


def test_a_broken_listener_context_never_raises(alert_env, monkeypatch, caplog):
    monkeypatch.setenv(listener.TAGS_ENV, "*")

    class Hostile:
        task_id = "t"

        def __getattr__(self, name):
            raise RuntimeError("xoxb-4444-5555-hostiletoken")

    listener.on_task_instance_failed(
        previous_state=None, task_instance=Hostile(), error=ValueError("x")
    )
    assert "hostiletoken" not in caplog.text
