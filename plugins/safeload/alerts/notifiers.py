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

Thin glue: read the context (:mod:`safeload.alerts.context`), ask the storm control
(:mod:`safeload.alerts.throttle`, on the state every worker shares) whether the alert is
news, build the message (:mod:`safeload.alerts.messages`), send it
(:mod:`safeload.alerts.transport`), remember the outcome. A notifier never raises: a
Slack outage (or a bug here) is logged and the task keeps its own state and exception.

Every notifier works as a task callback (the context has ``ti`` and ``task``) and as a
DAG callback (the context has ``dag_run`` and ``reason``, and ``ti`` only for the task
that ended the run). Callbacks that Airflow 3 runs in the DAG processor (a killed
worker's) carry no exception; the message says so.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

# everything else is imported where an alert is sent, not here: every DAG file that
# names a notifier imports this module at each parse.
if TYPE_CHECKING:
    from safeload.alerts.messages import TaskEvent
    from safeload.alerts.rules import Decision
    from safeload.alerts.throttle import AlertState
    from safeload.alerts.transport import RetryPolicy, SendResult, Transport

# stdlib logging: it reaches the task log in a worker and the DAG processor's log alike
log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "slack_alerts"
WINDOW_ENV = "SAFELOAD_ALERT_WINDOW"
TASK_POSTS_ENV = "SAFELOAD_ALERT_TASK_POSTS_PER_RUN"
RETRIES_ENV = "SAFELOAD_ALERT_RETRIES"
#: Links that only open on the sending machine are said in an alert once a day.
LOCALHOST_NOTICE_PERIOD = 86400.0

_TRUE = {"1", "true", "yes", "on"}


def is_final(ti: Any) -> bool:
    """Whether Airflow is done with this task instance (see :func:`safeload.alerts.context.is_final`)."""
    from safeload.alerts.context import is_final as final

    return final(ti)


def event_from_context(context: Mapping[str, Any], *, final: bool | None = None) -> TaskEvent:
    """A :class:`TaskEvent` from an Airflow callback context (task- or DAG-level)."""
    from safeload.alerts.context import event_from_context as build
    from safeload.alerts.settings import base_url, dags_folder

    return build(context, final=final, roots=[d for d in (dags_folder(),) if d],
                 base_url=base_url() or "http://localhost:8080")


def retries_enabled(enabled: bool | None = None) -> bool:
    """Retry alerts: ``enabled`` when given, else ``SAFELOAD_ALERT_RETRIES`` (``1``/``true``)."""
    if enabled is not None:
        return bool(enabled)
    return (os.environ.get(RETRIES_ENV) or "").strip().lower() in _TRUE


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
        are folded; default ``SAFELOAD_ALERT_TASK_POSTS_PER_RUN`` or 1.
    :param state_conn_id: the PostgreSQL connection of the alert state every worker
        shares; default ``[safeload] alert_state_conn_id``, else ``warehouse`` when it
        exists, else a file on this machine.
    :param state_path: keep the state in this JSON file instead (one machine).
    :param fallback_path: where alerts go without a connection; default
        ``$SAFELOAD_ALERT_FILE`` or ``$AIRFLOW_HOME/safeload/alerts.jsonl``.
    :param retry_policy: retries and timeouts of one send; default
        :meth:`RetryPolicy.from_env`.
    :param mention: who to ping, overriding the contact mapping (a Slack member or
        group ID, ``@here``, or ``<@U…>``/``<!subteam^S…>``).
    :param runbook: the runbook link, overriding the DAG's and the mapping's.
    """

    template_fields: Sequence[str] = ("slack_conn_id", "channel")
    #: the notifier's clock (epoch seconds)
    clock = staticmethod(time.time)

    def __init__(
        self,
        *,
        slack_conn_id: str = DEFAULT_CONN_ID,
        channel: str | None = None,
        window: float | None = None,
        task_posts_per_run: int | None = None,
        state_conn_id: str | None = None,
        state_path: str | os.PathLike[str] | None = None,
        fallback_path: str | os.PathLike[str] | None = None,
        retry_policy: RetryPolicy | None = None,
        mention: str | None = None,
        runbook: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.slack_conn_id = slack_conn_id
        self.channel = channel
        self.window = window
        self.task_posts_per_run = task_posts_per_run
        self.state_conn_id = state_conn_id
        self.state_path = state_path
        self.fallback_path = fallback_path
        self.retry_policy = retry_policy
        self.mention = mention
        self.runbook = runbook
        #: the outcome of the last send (``None``: nothing was sent); for tests and debugging
        self.last_result: SendResult | None = None
        self._notified = False
        self._states: list[AlertState] = []  # opened by this alert, closed when it is done

    # Resolved at each alert, not cached: a callback in the long-lived DAG processor
    # must see a connection created after the DAG was parsed.
    def state(self) -> AlertState:
        from safeload.alerts.settings import state_store
        from safeload.alerts.throttle import (
            DEFAULT_TASK_POSTS_PER_RUN,
            DEFAULT_WINDOW,
            AlertState,
            FileStore,
        )

        window = self.window if self.window is not None else float(os.environ.get(WINDOW_ENV) or DEFAULT_WINDOW)
        posts = self.task_posts_per_run
        if posts is None:
            posts = int(os.environ.get(TASK_POSTS_ENV) or DEFAULT_TASK_POSTS_PER_RUN)
        store = state_store(conn_id=self.state_conn_id, path=self.state_path)
        fallback = FileStore() if store.name != FileStore.name else None
        state = AlertState(store=store, fallback=fallback, window=window, task_posts_per_run=posts,
                           clock=self.clock)
        self._states.append(state)
        return state

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
                scrub(f"{type(e).__name__}: {e}"),
            )
        try:
            context = args[0] if len(args) == 1 else {"dag": args[0] if args else None}
            self.notify(context)
        except Exception as e:
            log.error("safeload alert failed; the task's own state is unchanged: %s", scrub(f"{type(e).__name__}: {e}"))

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
        finally:
            while self._states:
                self._states.pop().close()

    def _notify(self, context: Any) -> SendResult | None:
        raise NotImplementedError

    def _event(self, context: Mapping[str, Any], transport: Transport, state: AlertState,
               *, final: bool | None = None, people: bool = True) -> TaskEvent:
        """The event with the deployment, who to ping and the runbook, and set-up notices."""
        from safeload.alerts import context as ctx
        from safeload.alerts import settings

        event = event_from_context(context, final=final)
        notices = []
        contact = None
        if people:
            mapping, problem = settings.contacts(transport.contacts)
            contact, override_problem = ctx.contact(context, event, mapping, mention=self.mention,
                                                    runbook=self.runbook)
            for issue in (problem, override_problem):
                if issue:
                    log.error("Alert contacts: %s", issue)
                    notices.append(f"contact mapping not used: {issue}")
        if settings.points_at_localhost(event.log_url) and not settings.base_url():
            log.warning("Alert links point at %s because [api] base_url is not set: they open only on "
                        "the machine that sent them. Set AIRFLOW__API__BASE_URL to Airflow's address.",
                        event.log_url.split("/dags/")[0])
            if state.once("localhost-links", LOCALHOST_NOTICE_PERIOD):
                notices.append("links point at localhost because [api] base_url is not set; set "
                               "AIRFLOW__API__BASE_URL to the address people open Airflow at "
                               "(said once a day)")
        return dataclasses.replace(
            event,
            deployment=settings.deployment_name(),
            mention=contact.mention if contact else None,
            runbook=contact.runbook if contact else None,
            notices=tuple(notices),
        )

    def _send(self, transport: Transport, message: Any, decision: Decision | None = None, *,
              thread_ts: str | None = None, channel: str | None = None, broadcast: bool = False) -> SendResult:
        threaded = transport.supports_threads and thread_ts
        return transport.send(message, thread_ts=thread_ts if threaded else None,
                              channel=channel if threaded else None, broadcast=broadcast and bool(threaded))

    def _send_queued(self, transport: Transport, state: AlertState, event: TaskEvent,
                     queued: list[dict[str, Any]], result: SendResult) -> None:
        """The replies that waited for this message's thread, as one reply in it."""
        if not queued or not result.ok:
            return
        from safeload.alerts.messages import digest_message

        message = digest_message(event.dag_id, queued, window=state.window, deployment=event.deployment)
        self._send(transport, message, thread_ts=result.ts, channel=result.channel)

    def _report(self, what: str, event: TaskEvent, result: SendResult) -> None:
        where = result.path if result.transport == "file" else (result.channel or result.transport)
        if result.ok:
            log.info("Posted %s alert for %s via %s (%s)", what, event.name, result.transport, where)


class SafeloadFailureNotifier(_SafeloadNotifier):
    """Failure alert, as a task's or a DAG's ``on_failure_callback``.

    A task failure gets: what failed and whether Airflow retries it, the error with its
    cause chain and where it was raised, who to ping and the runbook, the downstream
    tasks and assets it blocks, the run's other failed tasks, the deployment, and the
    log link. Repeats and further failing tasks of the same run are folded (see
    :mod:`safeload.alerts.rules`). As a DAG callback it posts one message per failed
    run naming the failed tasks, unless the task alerts already named them all.

    A failure callback that fires while retries remain (Airflow 3 runs a killed worker's
    callbacks so, apache/airflow#65400) follows the retry notifier's setting: quiet
    unless retry alerts are on.

    Parameters: see :class:`_SafeloadNotifier`.

    .. code-block:: python

        @task(on_failure_callback=send_failure_alert(slack_conn_id="slack_alerts"))
        def load(): ...
    """

    #: attached to a DAG, it names the run's folded tasks (see context.has_dag_failure_alert)
    names_folded_tasks = True

    def _retries_on(self, context: Mapping[str, Any]) -> bool:
        """The setting of the task's own safeload retry notifier, else the environment's."""
        from safeload.alerts.context import get

        task = get(context, "task") or get(get(context, "ti"), "task")
        callbacks = get(task, "on_retry_callback") or []
        for cb in callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]:
            if isinstance(cb, SafeloadRetryNotifier):
                return cb.is_enabled()
        return retries_enabled()

    def _notify(self, context: Any) -> SendResult | None:
        from safeload.alerts import context as ctx
        from safeload.alerts import messages as m
        from safeload.alerts.throttle import ALSO, POST

        dag_level = ctx.is_dag_level(context)
        transport, state = self.transport(), self.state()
        event = self._event(context, transport, state)
        if not dag_level and not event.final and not self._retries_on(context):
            log.info("Failure of %s (try %s) while Airflow will retry it not posted: retry alerts are off "
                     "(send_retry_alert(enabled=True) or %s=1 turns them on)", event.name, event.tries or "?",
                     RETRIES_ENV)
            return None
        dag = ctx.dag_of(context)
        if dag_level:
            causing = ctx.get(ctx.get(context, "ti"), "task_id")
            decision = state.record_dag_failure(dag_id=event.dag_id, run_id=event.run_id, reason=event.reason,
                                                causing_task=causing)
            effect = ctx.impact(dag, decision.failed_tasks)
            event = dataclasses.replace(event, blocked_tasks=tuple(effect.tasks),
                                        blocked_assets=tuple(effect.assets))
        else:
            decision = state.record_failure(
                dag_id=event.dag_id, task_id=event.task_id or "unknown_task", run_id=event.run_id,
                try_number=event.try_number, map_index=event.map_index, final=event.final,
                dag_alert=ctx.has_dag_failure_alert(dag),
                detail={"error": m.crux(event) if event.exception else None, "tries": event.tries,
                        "log_url": event.log_url},
            )
            event = dataclasses.replace(event, other_failed=tuple(decision.others))
        if not decision.send:
            log.info("Slack alert for %s not posted (%s): %s", event.name, decision.action, decision.reason)
            return None
        threads = transport.supports_threads
        if decision.action == ALSO:
            message = m.also_message(event, first=(decision.failed_tasks or [None])[0], threads=threads)
        elif dag_level and (decision.action == POST or decision.announces):
            message = m.dag_failure_message(event, failed_tasks=decision.failed_tasks, folded=decision.folded,
                                            count=decision.count, window=decision.window)
        elif decision.action != POST:
            message = m.repeat_message(event, count=decision.count, window=decision.window)
        else:
            message = m.failure_message(event, count=decision.count, window=decision.window,
                                        incident_count=decision.incident_count,
                                        incident_start=decision.incident_start, threads=threads)
        result = self._send(transport, message, thread_ts=decision.thread_ts, channel=decision.channel,
                            broadcast=decision.broadcast)
        queued = state.commit(decision, ok=result.ok, thread_ts=result.ts, channel=result.channel)
        self._send_queued(transport, state, event, queued, result)
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
        return retries_enabled(self.enabled)

    def _notify(self, context: Any) -> SendResult | None:
        from safeload.alerts.messages import retry_message

        if not self.is_enabled():
            event = event_from_context(context, final=False)
            log.info(
                "Retry of %s (try %s) not posted: retry alerts are off (enabled=True or %s=1 turns them on)",
                event.name,
                event.tries or "?",
                RETRIES_ENV,
            )
            return None
        transport, state = self.transport(), self.state()
        event = self._event(context, transport, state, final=False, people=False)
        decision = state.record_retry(
            dag_id=event.dag_id,
            task_id=event.task_id or "unknown_task",
            run_id=event.run_id,
            try_number=event.try_number,
            map_index=event.map_index,
        )
        if not decision.send:
            log.info("Retry alert for %s not posted (%s): %s", event.name, decision.action, decision.reason)
            return None
        result = self._send(transport, retry_message(event))
        state.commit(decision, ok=result.ok, thread_ts=result.ts, channel=result.channel)
        self._report("retry", event, result)
        return result


class SafeloadRecoveryNotifier(_SafeloadNotifier):
    """ "Resolved" alert, as a task's or a DAG's ``on_success_callback``.

    The recovery of what one message announced is one summary in that message's
    thread, posted when every task it announced has succeeded (a DAG run's success: all
    of the DAG's). Silent when nothing was announced, so it can be attached to every
    task.

    Parameters: see :class:`_SafeloadNotifier`.
    """

    def _notify(self, context: Any) -> SendResult | None:
        from safeload.alerts.messages import recovery_message

        state = self.state()
        event = event_from_context(context)
        resolutions = state.resolve(dag_id=event.dag_id, task_id=event.task_id)
        if not resolutions:
            return None
        transport = self.transport()
        event = self._event(context, transport, state, people=False)
        result = None
        for resolution in resolutions:
            message = recovery_message(
                event,
                failures=resolution.failures,
                since=resolution.since,
                now=self.clock(),
                tasks=resolution.tasks,
                members=[(m.task_id, m.failures) for m in resolution.members],
            )
            result = self._send(transport, message, thread_ts=resolution.thread_ts, channel=resolution.channel)
            state.settle(resolution, ok=result.ok)  # not delivered: the next success tries again
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
        (see :func:`safeload.alerts.load_summary.quality_summary_message` for the shape).
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
    from safeload.alerts import messages
    from safeload.alerts.transport import RetryPolicy, SendResult, resolve_transport, scrub

    try:
        data: dict[str, Any] = dict(summary) if isinstance(summary, Mapping) else {}
        if context:
            event = event_from_context({k: v for k, v in context.items() if k != "reason"})
            data.setdefault("dag_id", event.dag_id)
            data.setdefault("run_id", event.run_id)
            data.setdefault("logical_date", event.logical_date)
            data.setdefault("log_url", event.log_url)
        message = messages.quality_summary_message(data)
        transport = resolve_transport(
            slack_conn_id,
            channel=channel,
            policy=retry_policy or RetryPolicy.from_env(),
            fallback_path=fallback_path,
        )
        return transport.send(message)
    except Exception as e:
        error = scrub(f"{type(e).__name__}: {e}")
        log.error("Quality summary not sent: %s", error)
        return SendResult(ok=False, transport="none", error=error)
