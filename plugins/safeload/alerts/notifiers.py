"""Slack notifiers for task and DAG callbacks, in the Slack provider's ``BaseNotifier`` shape.

.. code-block:: python

    from safeload.alerts.notifiers import send_failure_alert, send_recovery_alert, send_retry_alert

    default_args = {
        "on_failure_callback": send_failure_alert(),  # connection "slack_alerts"
        "on_retry_callback": send_retry_alert(),  # quiet unless enabled=True
        "on_success_callback": send_recovery_alert(),  # "resolved", only after a failure
    }
    with DAG(..., default_args=default_args, on_failure_callback=send_failure_alert()):
        ...

Thin glue: read the context, ask :mod:`safeload.alerts.throttle` whether the alert is
news, build the message with :mod:`safeload.alerts.messages`, send it with
:mod:`safeload.alerts.transport`, remember the outcome. A notifier never raises: a Slack
outage (or a bug here) is logged and the task keeps its own state and exception.

Every notifier works as a task callback (the context has ``ti`` and ``task``) and as a
DAG callback (the context has ``dag_run`` and ``reason``, and ``ti`` only for the task
that ended the run). Callbacks that Airflow 3 runs in the DAG processor (a killed
worker's) carry no exception; the message says so.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

# messages, throttle and transport are imported where an alert is sent, not here: every
# DAG file that names a notifier imports this module at each parse (about 10 ms saved).
if TYPE_CHECKING:
    from safeload.alerts.messages import TaskEvent
    from safeload.alerts.throttle import AlertState
    from safeload.alerts.transport import RetryPolicy, SendResult, Transport

# stdlib logging: it reaches the task log in a worker and the DAG processor's log alike
log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "slack_alerts"
WINDOW_ENV = "SAFELOAD_ALERT_WINDOW"
TASK_POSTS_ENV = "SAFELOAD_ALERT_TASK_POSTS_PER_RUN"
RETRIES_ENV = "SAFELOAD_ALERT_RETRIES"

_TRUE = {"1", "true", "yes", "on"}


# ---------------------------------------------------------------------------- context


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` or ``obj[name]``; ``default`` when missing, ``None`` or failing."""
    if obj is None:
        return default
    try:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    except Exception:  # properties of half-built objects (DAG-processor callbacks) may raise
        return default
    return default if value is None else value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(getattr(value, "value", value))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def is_dag_level(context: Mapping[str, Any]) -> bool:
    """DAG callbacks (scheduler, DAG processor and ``dag.test()``) put ``reason`` in the context."""
    return "reason" in context


def exception_text(error: Any) -> str | None:
    """``"ValueError: bad row"`` for an exception, the text itself for a string."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        message = str(error).strip()
        return f"{type(error).__name__}: {message}" if message else type(error).__name__
    return str(error)


def is_final(ti: Any) -> bool:
    """Whether Airflow is done with this task instance (no retry coming).

    The state says it when it is set; a failure callback can also fire while retries
    remain (Airflow 3: the DAG processor runs a killed worker's callbacks), so without
    a state the try number decides.
    """
    state = (_text(_get(ti, "state")) or "").lower()
    if state == "failed":
        return True
    if state == "up_for_retry":
        return False
    try_number, max_tries = _int(_get(ti, "try_number")), _int(_get(ti, "max_tries"))
    if try_number is not None and max_tries is not None:
        return try_number > max_tries
    return True


def event_from_context(context: Mapping[str, Any], *, final: bool | None = None) -> TaskEvent:
    """A :class:`TaskEvent` from an Airflow callback context (task- or DAG-level)."""
    from safeload.alerts.messages import TaskEvent
    from safeload.alerts.transport import scrub

    ti = _get(context, "ti") or _get(context, "task_instance")
    task = _get(context, "task") or _get(ti, "task")
    dag = _get(context, "dag") or _get(task, "dag")
    dag_run = _get(context, "dag_run")
    dag_level = is_dag_level(context)

    dag_id = _get(dag, "dag_id") or _get(dag_run, "dag_id") or _get(ti, "dag_id") or "unknown_dag"
    run_id = _get(context, "run_id") or _get(dag_run, "run_id") or _get(ti, "run_id")
    logical = _get(context, "logical_date") or _get(dag_run, "logical_date")
    if logical is None and dag_run is not None:
        after = _get(dag_run, "run_after")
        logical = f"none (run after {_text(after)})" if after is not None else None

    owner = _get(task, "owner")
    if dag_level or not owner:
        owner = _get(dag, "owner") or owner
    if isinstance(owner, (list, tuple, set)):
        owner = ", ".join(map(str, owner))

    if dag_level:
        start, end = _get(dag_run, "start_date"), _get(dag_run, "end_date")
    else:
        start, end = _get(ti, "start_date"), _get(ti, "end_date")
    duration = None
    if isinstance(start, datetime):
        try:
            end_time = end if isinstance(end, datetime) else datetime.now(start.tzinfo)
            duration = (end_time - start).total_seconds()
        except (TypeError, ValueError):
            duration = None
    if duration is None and isinstance(_get(ti, "duration"), (int, float)) and not dag_level:
        duration = float(_get(ti, "duration"))

    log_url = None
    try:
        log_url = getattr(ti, "log_url", None) if ti is not None else None
    except Exception:
        log_url = None
    error = context.get("exception") if isinstance(context, Mapping) else None

    return TaskEvent(
        dag_id=str(dag_id),
        task_id=None if dag_level else (_get(ti, "task_id") or _get(task, "task_id")),
        run_id=_text(run_id),
        logical_date=_text(logical),
        try_number=_int(_get(ti, "try_number")),
        max_tries=_int(_get(ti, "max_tries"))
        if _int(_get(ti, "max_tries")) is not None
        else _int(_get(task, "retries")),
        duration=duration,
        exception=scrub(exception_text(error)) if error is not None else None,
        log_url=str(log_url) if log_url else None,
        owner=str(owner) if owner else None,
        map_index=_int(_get(ti, "map_index")),
        final=is_final(ti) if final is None else final,
        reason=_text(context.get("reason")) if isinstance(context, Mapping) else None,
    )


# ---------------------------------------------------------------------------- notifiers


class _SafeloadNotifier(BaseNotifier):
    """What the safeload notifiers share: connection, storm-control state, never raising.

    :param slack_conn_id: Airflow connection: ``slackwebhook`` type for an incoming
        webhook, ``slack`` type for the Web API; missing means log + local file.
        (templated)
    :param channel: Web API channel; default the connection extra ``channel``, else
        ``#data-alerts``. Ignored by webhooks. (templated)
    :param window: storm-control window in seconds; default ``SAFELOAD_ALERT_WINDOW``
        or 3600.
    :param task_posts_per_run: task failure messages per DAG run before further ones
        are folded into the DAG-level message; default ``SAFELOAD_ALERT_TASK_POSTS_PER_RUN``
        or 1.
    :param state_path: the storm-control state file; default
        ``$SAFELOAD_ALERT_STATE_DIR/alerts-state.json`` or
        ``$AIRFLOW_HOME/safeload/alerts-state.json``.
    :param fallback_path: where alerts go without a connection; default
        ``$SAFELOAD_ALERT_FILE`` or ``$AIRFLOW_HOME/safeload/alerts.jsonl``.
    :param retry_policy: retries and timeouts of one send; default
        :meth:`RetryPolicy.from_env`.
    """

    template_fields: Sequence[str] = ("slack_conn_id", "channel")

    def __init__(
        self,
        *,
        slack_conn_id: str = DEFAULT_CONN_ID,
        channel: str | None = None,
        window: float | None = None,
        task_posts_per_run: int | None = None,
        state_path: str | os.PathLike[str] | None = None,
        fallback_path: str | os.PathLike[str] | None = None,
        retry_policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.slack_conn_id = slack_conn_id
        self.channel = channel
        self.window = window
        self.task_posts_per_run = task_posts_per_run
        self.state_path = state_path
        self.fallback_path = fallback_path
        self.retry_policy = retry_policy
        #: the outcome of the last send (``None``: nothing was sent); for tests and debugging
        self.last_result: SendResult | None = None
        self._notified = False

    # Resolved at each alert, not cached: a callback in the long-lived DAG processor
    # must see a connection created after the DAG was parsed.
    def state(self) -> AlertState:
        from safeload.alerts.throttle import DEFAULT_TASK_POSTS_PER_RUN, DEFAULT_WINDOW, AlertState

        window = (
            self.window
            if self.window is not None
            else float(os.environ.get(WINDOW_ENV) or DEFAULT_WINDOW)
        )
        posts = self.task_posts_per_run
        if posts is None:
            posts = int(os.environ.get(TASK_POSTS_ENV) or DEFAULT_TASK_POSTS_PER_RUN)
        return AlertState(self.state_path, window=window, task_posts_per_run=posts)

    def transport(self) -> Transport:
        from safeload.alerts.transport import RetryPolicy, resolve_transport

        return resolve_transport(
            self.slack_conn_id,
            channel=self.channel,
            policy=self.retry_policy or RetryPolicy.from_env(),
            fallback_path=self.fallback_path,
        )

    def __call__(self, *args: Any) -> None:
        # BaseNotifier.__call__ renders the templated fields, then calls notify() and
        # re-raises what it raised. notify() never raises, so an exception here comes from
        # rendering: the alert still goes out, with the fields as given.
        from safeload.alerts.transport import scrub

        self._notified = False
        try:
            super().__call__(*args)
            return
        except Exception as e:
            if self._notified:
                return
            log.warning(
                "safeload alert: templated fields could not be rendered (%s); sending with them as given",
                scrub(exception_text(e)),
            )
        try:
            context = args[0] if len(args) == 1 else {"dag": args[0] if args else None}
            self.notify(context)
        except Exception as e:
            log.error(
                "safeload alert failed; the task's own state is unchanged: %s",
                scrub(exception_text(e)),
            )

    def notify(self, context: Any) -> None:
        from safeload.alerts.transport import scrub

        self._notified = True
        self.last_result = None
        try:
            self.last_result = self._notify(context)
        except Exception as e:
            log.error(
                "safeload alert failed; the task's own state is unchanged: %s",
                scrub("".join(traceback.format_exception(type(e), e, e.__traceback__))),
            )

    def _notify(self, context: Any) -> SendResult | None:
        raise NotImplementedError

    def _report(self, what: str, event: TaskEvent, result: SendResult) -> None:
        where = result.path if result.transport == "file" else (result.channel or result.transport)
        if result.ok:
            log.info(
                "Posted %s alert for %s via %s (%s)", what, event.name, result.transport, where
            )


class SafeloadFailureNotifier(_SafeloadNotifier):
    """Failure alert, as a task's or a DAG's ``on_failure_callback``.

    A task failure gets: DAG, task, logical date, try n of m (a failure that Airflow will
    retry reads differently from the final one), duration, a short exception, the log
    link and the owner. Repeats, and further failing tasks of the same run, are folded
    (see :mod:`safeload.alerts.throttle`). As a DAG callback it posts one message per
    failed run listing the failed tasks, unless the task alerts already said it all.

    Parameters: see :class:`_SafeloadNotifier`.

    .. code-block:: python

        @task(on_failure_callback=send_failure_alert(slack_conn_id="slack_alerts"))
        def load(): ...
    """

    def _notify(self, context: Any) -> SendResult | None:
        from safeload.alerts.messages import dag_failure_message, failure_message, repeat_message
        from safeload.alerts.throttle import POST

        event = event_from_context(context)
        state = self.state()
        if is_dag_level(context):
            decision = state.record_dag_failure(
                dag_id=event.dag_id, run_id=event.run_id, reason=event.reason
            )
        else:
            decision = state.record_failure(
                dag_id=event.dag_id,
                task_id=event.task_id or "unknown_task",
                run_id=event.run_id,
                try_number=event.try_number,
                map_index=event.map_index,
                final=event.final,
            )
        if not decision.send:
            log.info(
                "Slack alert for %s not posted (%s): %s",
                event.name,
                decision.action,
                decision.reason,
            )
            return None
        if decision.action != POST:
            message = repeat_message(event, count=decision.count, window=decision.window)
        elif is_dag_level(context):
            causing = _get(_get(context, "ti"), "task_id")
            message = dag_failure_message(
                event,
                failed_tasks=decision.failed_tasks or ([causing] if causing else []),
                folded=decision.folded,
                count=decision.count,
                window=decision.window,
            )
        else:
            message = failure_message(
                event,
                count=decision.count,
                window=decision.window,
                incident_count=decision.incident_count,
                incident_start=decision.incident_start,
            )
        transport = self.transport()
        threaded = transport.supports_threads and decision.thread_ts
        result = transport.send(
            message,
            thread_ts=decision.thread_ts if threaded else None,
            channel=decision.channel if threaded else None,
            broadcast=decision.broadcast,
        )
        state.commit(decision, ok=result.ok, thread_ts=result.ts, channel=result.channel)
        self._report(f"{decision.kind} ({decision.action})", event, result)
        return result


class SafeloadRetryNotifier(_SafeloadNotifier):
    """Alert for a failed try that Airflow will retry; quiet unless enabled.

    :param enabled: post retry alerts; default ``SAFELOAD_ALERT_RETRIES`` (``1``/``true``),
        else off: most retries heal themselves and the final failure alerts anyway.

    Other parameters: see :class:`_SafeloadNotifier`. At most one retry message per task
    and window is posted; a later "resolved" answers in its thread.
    """

    def __init__(self, *, enabled: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.enabled = enabled

    def is_enabled(self) -> bool:
        if self.enabled is not None:
            return bool(self.enabled)
        return (os.environ.get(RETRIES_ENV) or "").strip().lower() in _TRUE

    def _notify(self, context: Any) -> SendResult | None:
        from safeload.alerts.messages import retry_message

        event = event_from_context(context, final=False)
        if not self.is_enabled():
            log.info(
                "Retry of %s (try %s) not posted: retry alerts are off (enabled=True or %s=1 turns them on)",
                event.name,
                event.tries or "?",
                RETRIES_ENV,
            )
            return None
        state = self.state()
        decision = state.record_retry(
            dag_id=event.dag_id,
            task_id=event.task_id or "unknown_task",
            run_id=event.run_id,
            try_number=event.try_number,
            map_index=event.map_index,
        )
        if not decision.send:
            log.info(
                "Retry alert for %s not posted (%s): %s",
                event.name,
                decision.action,
                decision.reason,
            )
            return None
        result = self.transport().send(retry_message(event))
        state.commit(decision, ok=result.ok, thread_ts=result.ts, channel=result.channel)
        self._report("retry", event, result)
        return result


class SafeloadRecoveryNotifier(_SafeloadNotifier):
    """ "Resolved" alert, as a task's or a DAG's ``on_success_callback``.

    Posts only when this task (a DAG callback: any task of this DAG, or the DAG run
    itself) had failed since its last success and that failure was announced; in the
    failure message's thread where the Web API is used. Silent otherwise, so it can be
    attached to every task.

    Parameters: see :class:`_SafeloadNotifier`.
    """

    def _notify(self, context: Any) -> SendResult | None:
        from safeload.alerts.messages import recovery_message

        event = event_from_context(context)
        state = self.state()
        resolution = state.resolve(dag_id=event.dag_id, task_id=event.task_id)
        if resolution is None:
            return None
        message = recovery_message(
            event,
            failures=resolution.failures,
            since=resolution.since,
            now=time.time(),
            tasks=resolution.tasks,
        )
        transport = self.transport()
        threaded = transport.supports_threads and resolution.thread_ts
        result = transport.send(
            message,
            thread_ts=resolution.thread_ts if threaded else None,
            channel=resolution.channel if threaded else None,
        )
        if not result.ok:
            state.reopen(resolution)  # the next success tries again
        self._report("recovery", event, result)
        return result


#: ``on_failure_callback=send_failure_alert(slack_conn_id="slack_alerts")``
send_failure_alert = SafeloadFailureNotifier
#: ``on_retry_callback=send_retry_alert(enabled=True)``
send_retry_alert = SafeloadRetryNotifier
#: ``on_success_callback=send_recovery_alert()``
send_recovery_alert = SafeloadRecoveryNotifier


def send_quality_summary(
    summary: Mapping[str, Any],
    *,
    slack_conn_id: str = DEFAULT_CONN_ID,
    channel: str | None = None,
    context: Mapping[str, Any] | None = None,
    retry_policy: RetryPolicy | None = None,
    fallback_path: str | os.PathLike[str] | None = None,
) -> SendResult:
    """Post a load's quality summary (rows, checks, schema drift). Never raises.

    :param summary: the summary dict of the DAG's summary task; missing keys are fine
        (see :func:`safeload.alerts.messages.quality_summary_message` for the shape).
    :param slack_conn_id: the Slack connection (webhook or Web API); missing: local file.
    :param channel: Web API channel; default the connection extra ``channel`` or ``#data-alerts``.
    :param context: the task's Airflow context; fills ``dag_id``, ``run_id``,
        ``logical_date`` and ``log_url`` when the summary lacks them.
    :param retry_policy: default :meth:`RetryPolicy.from_env`.
    :param fallback_path: file for the no-connection case.
    :return: how the send went.

    .. code-block:: python

        @task
        def summarize(**context):
            summary = {...}
            send_quality_summary(summary, context=context)
    """
    from safeload.alerts.messages import quality_summary_message
    from safeload.alerts.transport import RetryPolicy, SendResult, resolve_transport, scrub

    try:
        data: dict[str, Any] = dict(summary) if isinstance(summary, Mapping) else {}
        if context:
            event = event_from_context({k: v for k, v in context.items() if k != "reason"})
            data.setdefault("dag_id", event.dag_id)
            data.setdefault("run_id", event.run_id)
            data.setdefault("logical_date", event.logical_date)
            data.setdefault("log_url", event.log_url)
        message = quality_summary_message(data)
        transport = resolve_transport(
            slack_conn_id,
            channel=channel,
            policy=retry_policy or RetryPolicy.from_env(),
            fallback_path=fallback_path,
        )
        return transport.send(message)
    except Exception as e:
        error = scrub(exception_text(e))
        log.error("Quality summary not sent: %s", error)
        return SendResult(ok=False, transport="none", error=error)
