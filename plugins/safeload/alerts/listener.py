"""An opt-in Airflow listener: Slack alerts for task failures in any DAG, filtered by tag.

For DAGs whose authors did not attach safeload's notifiers. Turn it on for the
deployment with an environment variable read when the plugin loads:

.. code-block:: bash

    SAFELOAD_ALERT_LISTENER_TAGS="warehouse,finance"   # DAGs with any of these tags
    SAFELOAD_ALERT_LISTENER_TAGS="*"                   # every DAG
    SAFELOAD_ALERT_LISTENER_CONN_ID=slack_alerts       # optional, the default
    SAFELOAD_ALERT_LISTENER_CHANNEL="#data-alerts"     # optional, Web API only

A final failure goes through :class:`~safeload.alerts.notifiers.SafeloadFailureNotifier`
(storm control included); a failure that Airflow will retry through the retry notifier,
quiet unless ``SAFELOAD_ALERT_RETRIES=1``. A failure that a DAG's own safeload callback
already reported is recognised (same task instance and try) and not posted twice.

The plugin (``safeload.plugin``) registers :func:`enabled_listeners`; the hook runs in the
task's process after the task's callbacks, and in the API server when a task is marked
failed by hand. It never raises.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

TAGS_ENV = "SAFELOAD_ALERT_LISTENER_TAGS"
CONN_ENV = "SAFELOAD_ALERT_LISTENER_CONN_ID"
CHANNEL_ENV = "SAFELOAD_ALERT_LISTENER_CHANNEL"


def listener_tags(environ: dict[str, str] | None = None) -> frozenset[str] | None:
    """The tags to alert on; ``frozenset({"*"})`` for all DAGs; ``None`` when off."""
    raw = (os.environ if environ is None else environ).get(TAGS_ENV, "")
    tags = frozenset(t.strip() for t in raw.split(",") if t.strip())
    return tags or None


def enabled_listeners() -> list[Any]:
    """``[this module]`` when ``SAFELOAD_ALERT_LISTENER_TAGS`` is set, else ``[]``."""
    return [safeload_listener] if listener_tags() else []


def _dag_tags(task_instance: Any) -> set[str] | None:
    """The DAG's tags, from the task's DAG (worker) or the DAG model (API server)."""
    try:
        dag = getattr(getattr(task_instance, "task", None), "dag", None)
        if dag is not None and getattr(dag, "tags", None) is not None:
            return {str(t) for t in dag.tags}
    except Exception:
        pass
    try:
        model = getattr(task_instance, "dag_model", None)
        if model is not None:
            return {str(getattr(t, "name", t)) for t in (model.tags or [])}
    except Exception:
        pass
    return None


def matches(task_instance: Any, tags: frozenset[str]) -> bool:
    if "*" in tags:
        return True
    dag_tags = _dag_tags(task_instance)
    return bool(dag_tags and dag_tags & tags)


def _context(task_instance: Any, error: Any) -> dict[str, Any]:
    context: dict[str, Any] = {}
    get_context = getattr(task_instance, "get_template_context", None)
    if callable(get_context):
        try:
            context = dict(get_context())
        except Exception:
            context = {}
    context.setdefault("ti", task_instance)
    context.setdefault("run_id", getattr(task_instance, "run_id", None))
    context["exception"] = error
    context.pop("reason", None)  # task-level, always
    return context


@hookimpl
def on_task_instance_failed(
    previous_state: Any, task_instance: Any, error: None | str | BaseException
) -> None:
    """Alert on a failed task instance of a DAG with a matching tag."""
    try:
        tags = listener_tags()
        if not tags or not matches(task_instance, tags):
            return
        from safeload.alerts.notifiers import (
            SafeloadFailureNotifier,
            SafeloadRetryNotifier,
            is_final,
        )

        conn_id = os.environ.get(CONN_ENV) or "slack_alerts"
        channel = os.environ.get(CHANNEL_ENV) or None
        context = _context(task_instance, error)
        if is_final(task_instance):
            notifier: Any = SafeloadFailureNotifier(slack_conn_id=conn_id, channel=channel)
        else:
            notifier = SafeloadRetryNotifier(slack_conn_id=conn_id, channel=channel)
        notifier.notify(context)
    except Exception as e:  # a listener must not break the task runner
        from safeload.alerts.transport import scrub

        log.error(
            "safeload listener failed; the task's own state is unchanged: %s",
            scrub(f"{type(e).__name__}: {e}"),
        )


#: The module itself is the listener object Airflow registers.
safeload_listener = sys.modules[__name__]
