"""Slack messages for safeload's incident alerts: Block Kit blocks plus a plain-text fallback.

Pure: no Airflow import. The notifiers turn an Airflow context into a :class:`TaskEvent`
and these builders turn that into a :class:`Message` that is always within Slack's
limits (see :mod:`safeload.alerts.blocks`), whatever the input. A failure message says
what failed and whether Airflow retries it, the error with its cause chain and where it
was raised, who to ping and the runbook, what the failure blocks, the run's other
failures and the deployment; its fallback text (phone notifications, screen readers)
carries the same essentials on one line.

.. code-block:: python

    event = TaskEvent(dag_id="orders_daily", task_id="load", try_number=3, max_tries=2,
                      exception="LockTimeoutError: ...", log_url="http://...")
    message = failure_message(event)
    message.payload()  # {"text": "...", "blocks": [...]}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from safeload.alerts.blocks import (  # noqa: F401  (re-exported: the names callers use)
    CUT_MARKER,
    MAX_BLOCKS,
    MAX_CONTEXT_ELEMENTS,
    MAX_EXCEPTION_TEXT,
    MAX_FALLBACK_TEXT,
    MAX_FIELD_TEXT,
    MAX_FIELDS,
    MAX_HEADER_TEXT,
    MAX_LISTED_ITEMS,
    MAX_SECTION_TEXT,
    MAX_TOTAL_TEXT,
    SIGNATURE,
    Message,
    bullet_sections,
    code,
    context,
    cut,
    divider,
    escape,
    fields_section,
    fit,
    header,
    human_duration,
    limit_violations,
    link,
    message_text_length,
    ordinal,
    section,
    utc_text,
    window_text,
)
from safeload.alerts.details import (
    chain_text,
    crux,
    deployment_prefix,
    fallback_extras,
    impact_block,
    links_line,
    names,
    notices_block,
    top_line,
)
from safeload.alerts.event import TaskEvent  # noqa: F401
from safeload.alerts.load_summary import quality_summary_message  # noqa: F401

# --------------------------------------------------------------------------- task alerts


def _try_text(event: TaskEvent) -> str:
    tries = event.tries
    if tries is None:
        return "final, no retries left" if event.final else "will be retried"
    if event.final:
        return f"{tries}, final: no retries left"
    return f"{tries}, will be retried"


def _error_block(event: TaskEvent) -> dict[str, Any]:
    if event.exception:
        body = cut(event.exception.strip(), MAX_EXCEPTION_TEXT, keep_tail=True)
        body = escape(body).replace("```", "ˋˋˋ")
        parts = [f"*Error*\n```{body}```", chain_text(event)]
        return section("\n".join(p for p in parts if p))
    return section(
        "*Error*\nNo exception was recorded (the worker may have been killed); see the task log."
    )


def _task_fields(event: TaskEvent) -> list[str]:
    fields = [f"*DAG*\n{code(event.dag_id)}"]
    if event.task_id:
        task = event.task_id
        if event.map_index is not None and event.map_index >= 0:
            task = f"{task}[{event.map_index}]"
        fields.append(f"*Task*\n{code(task)}")
    fields.append(f"*Logical date*\n{escape(event.logical_date or 'none')}")
    if event.task_id:
        fields.append(f"*Try*\n{escape(_try_text(event))}")
    fields.append(f"*Duration*\n{human_duration(event.duration)}")
    owner = escape(event.owner or "unknown") + (f" · {event.mention}" if event.mention else "")
    fields.append(f"*Owner*\n{owner}")
    if event.deployment:
        fields.append(f"*Deployment*\n{escape(event.deployment)}")
    return fields


def _short_error(event: TaskEvent, limit: int = 300) -> str:
    if not event.exception:
        return "no exception recorded"
    first = event.exception.strip().splitlines()[0] if event.exception.strip() else event.exception
    return cut(first, limit)


def _root(event: TaskEvent) -> str:
    """`` (root cause: X)`` for one-line texts, empty without a chain."""
    return f" (root cause: {cut(event.root_cause, 200)})" if event.root_cause else ""


def _compact(blocks: Sequence[dict[str, Any] | None]) -> list[dict[str, Any]]:
    return [b for b in blocks if b]


def repeats_note(window: float, threads: bool) -> str:
    """How repeats reach the channel: in the thread (Web API) or as short lines (webhook)."""
    if threads:
        return f"repeats within {window_text(window)} are folded into this message's thread"
    return (f"repeats within {window_text(window)} are counted; a short line follows at the "
            "2nd, 3rd, 5th, 10th… (a webhook cannot reply in a thread)")


def failure_message(
    event: TaskEvent,
    *,
    count: int = 1,
    window: float = 3600,
    incident_count: int | None = None,
    incident_start: float | None = None,
    threads: bool = True,
) -> Message:
    """The full failure alert: the first of its kind in the storm-control window.

    :param event: the failure.
    :param count: failures of this task within the current window, this one included.
    :param window: the storm-control window in seconds.
    :param incident_count: failures since the task last succeeded; more than ``count``
        when it has been failing for longer than a window ("still failing").
    :param incident_start: when that series of failures began (epoch seconds).
    :param threads: the transport can reply in threads (Web API); webhooks cannot,
        and the message says so.
    """
    repeat = count > 1 or (incident_count or 1) > 1
    if event.final:
        icon, verb = "🔴", "Failed again" if repeat else "Failed"
    else:
        icon, verb = "🟠", "Failed again, will retry" if repeat else "Failed, will retry"
    title = f"{icon} {verb}: {event.name}"

    notes = []
    if count > 1:
        notes.append(f"{ordinal(count)} failure in {window_text(window)}")
    if incident_count and incident_count > count:
        notes.append(
            f"{ordinal(incident_count)} failure since {utc_text(incident_start)}; still failing"
        )
    if not notes:
        notes.append(f"first failure in {window_text(window)}")

    blocks = _compact([
        header(title),
        top_line(event),
        fields_section(_task_fields(event)),
        _error_block(event),
        impact_block(event),
        section(links_line(event)),
        context(escape("; ".join(notes)), repeats_note(window, threads), SIGNATURE),
        notices_block(event),
    ])
    state = "final" if event.final else "will retry"
    tries = f", try {event.tries}" if event.tries else ""
    text = (f"{deployment_prefix(event)}{verb}: {event.name} ({state}{tries}): {_short_error(event)}"
            f" {fallback_extras(event)}").rstrip()
    return fit(Message(text=text, blocks=blocks, kind="failure"))


def repeat_message(event: TaskEvent, *, count: int, window: float = 3600) -> Message:
    """A short "failed again" line, posted in the first failure's thread where possible."""
    again = f"failed again, {ordinal(count)} time in {window_text(window)}"
    state = "final" if event.final else "will retry"
    tries = f"try {event.tries}, {state}" if event.tries else state
    line = (f"🔁 *{escape(event.name)}* {escape(again)} ({escape(tries)}): "
            f"{code(_short_error(event, 500))}{escape(_root(event))}")
    blocks = _compact([section(line), context(links_line(event), SIGNATURE), notices_block(event)])
    text = f"{deployment_prefix(event)}{event.name} {again} ({tries}): {_short_error(event)}{_root(event)}" + (
        f" Log: {event.log_url}" if event.log_url else ""
    )
    return fit(Message(text=text, blocks=blocks, kind="repeat"))


def also_message(event: TaskEvent, *, first: str | None = None, threads: bool = True) -> Message:
    """Another task of a run that already has its message: one line in that message's
    thread (a top-level line with a webhook), naming every failed task of the run so far.

    :param event: the folded failure; ``other_failed`` holds the run's other failed tasks.
    :param first: the task whose message opened the run's thread.
    :param threads: posted in the thread (``False``: top-level, so it says which run).
    """
    tries = f"try {event.tries}, {'final' if event.final else 'will retry'}" if event.tries else ""
    run = f" in run {code(event.run_id)}" if event.run_id and not threads else " in this run"
    failed = [*event.other_failed, event.task_id or "?"]
    line = (f"➕ *{escape(event.name)}* also failed{run}" + (f" ({escape(tries)})" if tries else "")
            + f": {code(_short_error(event, 400))}{escape(_root(event))}"
            + f"\nFailed tasks of this run so far ({len(failed)}): {names(failed)}")
    if first and not threads:
        line += f"\nThe run's first alert: {code(first)}"
    blocks = _compact([section(line), impact_block(dataclasses.replace(event, other_failed=())),
                       context(links_line(event), SIGNATURE), notices_block(event)])
    text = (f"{deployment_prefix(event)}{event.name} also failed{' in run ' + event.run_id if event.run_id else ''}"
            f": {_short_error(event)}{_root(event)}. Failed tasks of this run so far: "
            f"{names(failed, as_code=False)}." + (f" Log: {event.log_url}" if event.log_url else ""))
    return fit(Message(text=text, blocks=blocks, kind="also"))


def digest_message(dag_id: str, items: Sequence[Mapping[str, Any]], *, window: float = 3600,
                   deployment: str | None = None) -> Message:
    """The replies that waited for their thread (failures reported while the thread's
    first message was still being posted), as one reply.

    :param items: what :func:`safeload.alerts.rules.record_failure` queued: ``task_id``,
        ``action`` (``repeat`` or ``also``), ``count``, and the ``error``, ``tries``,
        ``log_url`` the notifier put in ``detail``.
    """
    lines = []
    for item in items:
        task = str(item.get("task_id") or "")
        if not task and item.get("tasks"):  # the DAG-level message's own reply
            lines.append(f"➕ Failed tasks no message named yet: {names([str(t) for t in item['tasks']])}")
            continue
        what = ("failed again, " + ordinal(int(item.get("count") or 2)) + f" time in {window_text(window)}"
                if item.get("action") == "repeat" else "also failed in this run")
        tries = f" (try {escape(item['tries'])})" if item.get("tries") else ""
        error = f": {code(cut(str(item['error']), 300))}" if item.get("error") else ""
        log = f" · {link(item['log_url'], 'log')}" if item.get("log_url") else ""
        more = f" (and {item['more']} more not listed)" if item.get("more") else ""
        lines.append(f"{'🔁' if item.get('action') == 'repeat' else '➕'} *{escape(dag_id)}.{escape(task)}* "
                     f"{escape(what)}{tries}{error}{log}{more}")
    prefix = f"[{deployment}] " if deployment else ""
    blocks = bullet_sections("", lines, max_blocks=10) + [context(SIGNATURE)]
    again = [str(i["task_id"]) for i in items if i.get("task_id") and i.get("action") == "repeat"]
    also = [str(i["task_id"]) for i in items if i.get("task_id") and i.get("action") != "repeat"]
    also += [str(t) for i in items if not i.get("task_id") for t in i.get("tasks") or ()]
    parts = ([f"also failed in this run: {names(also, as_code=False)}"] if also else []) + (
        [f"failed again: {names(again, as_code=False)}"] if again else [])
    text = f"{prefix}{dag_id}: " + "; ".join(parts or ["more failures"])
    return fit(Message(text=text, blocks=blocks, kind="digest"))


def retry_message(event: TaskEvent) -> Message:
    """A failed try that Airflow will retry (only sent when retry alerts are on)."""
    tries = f"try {event.tries} failed" if event.tries else "a try failed"
    line = (f"🟡 *Retrying {escape(event.name)}*: {escape(tries)}, Airflow will retry: "
            f"{code(_short_error(event, 500))}{escape(_root(event))}")
    blocks = _compact([
        section(line),
        context(links_line(event), f"owner {escape(event.owner or 'unknown')}", SIGNATURE),
        notices_block(event),
    ])
    text = f"{deployment_prefix(event)}Retrying {event.name}: {tries}: {_short_error(event)}{_root(event)}" + (
        f" Log: {event.log_url}" if event.log_url else ""
    )
    return fit(Message(text=text, blocks=blocks, kind="retry"))


def recovery_message(
    event: TaskEvent,
    *,
    failures: int,
    since: float | None,
    now: float,
    tasks: Sequence[str] = (),
    members: Sequence[tuple[str, int]] = (),
) -> Message:
    """``✅ Resolved``: what one message announced has recovered; one summary.

    :param event: the success that completed it (``task_id`` ``None`` for a DAG run).
    :param failures: failures since the last success, over everything resolved.
    :param since: when the first of them happened (epoch seconds).
    :param now: now (epoch seconds).
    :param tasks: for a DAG run, the tasks whose failures this resolves.
    :param members: ``(task_id, failures)`` of every task the message announced, when
        it announced more than the task that succeeded now.
    """
    span = f" ({human_duration(now - since)})" if since is not None else ""
    what = f"{failures} failure{'s' if failures != 1 else ''} since {utc_text(since)}{span}"
    named = [(t, n) for t, n in members if t]
    if len(named) > 1 or (named and named[0][0] != event.task_id):
        listed = ", ".join(f"{code(t)} ({n})" for t, n in named[:20])
        more = f" and {len(named) - 20} more" if len(named) > 20 else ""
        every = "the failed task" if len(named) == 1 else (
            "both failed tasks" if len(named) == 2 else f"all {len(named)} failed tasks")
        line = (f"✅ *Resolved: {escape(event.dag_id)}*: {every} this message announced "
                f"{'has' if len(named) == 1 else 'have'} succeeded, after {escape(what)}.\n"
                f"Resolves: {listed}{more}")
        text = (f"{deployment_prefix(event)}Resolved: {event.dag_id}: {len(named)} task(s) succeeded after {what}: "
                f"{names([t for t, _ in named], as_code=False)}.")
        blocks = _compact([section(line), context(links_line(event), SIGNATURE)])
        return fit(Message(text=text, blocks=blocks, kind="recovery"))
    subject = event.name
    if not event.task_id and tasks:
        resolved = f"\nResolves: {names(list(tasks), 20)}"
    else:
        resolved = ""
    tries = f" on try {event.tries}" if event.task_id and event.tries else ""
    line = (
        f"✅ *Resolved: {escape(subject)}* succeeded{escape(tries)} after {escape(what)}.{resolved}"
    )
    blocks = [section(line), context(links_line(event), SIGNATURE)]
    text = f"{deployment_prefix(event)}Resolved: {subject} succeeded{tries} after {what}."
    return fit(Message(text=text, blocks=blocks, kind="recovery"))


_REASONS = {
    "task_failure": "a task failed",
    "timed_out": "the run timed out (dagrun_timeout)",
    "all_tasks_deadlocked": "no task could be scheduled (deadlock)",
}


def dag_failure_message(
    event: TaskEvent,
    *,
    failed_tasks: Sequence[str] = (),
    folded: Sequence[str] = (),
    count: int = 1,
    window: float = 3600,
) -> Message:
    """One message for a failed DAG run, naming its failed tasks.

    :param event: the DAG-level event (``task_id`` may name the task that failed last);
        ``blocked_tasks``/``blocked_assets`` are those of all the failed tasks.
    :param failed_tasks: tasks of the run that failed, in order.
    :param folded: those of them that have no message of their own.
    :param count: failed runs of this DAG within the window, this one included.
    :param window: the storm-control window in seconds.
    """
    verb = "DAG run failed again" if count > 1 else "DAG run failed"
    title = f"🔴 {verb}: {event.dag_id}"
    reason = _REASONS.get(event.reason or "", event.reason or "unknown")
    owner = escape(event.owner or "unknown") + (f" · {event.mention}" if event.mention else "")
    fields = [
        f"*DAG*\n{code(event.dag_id)}",
        f"*Run*\n{code(event.run_id or 'unknown')}",
        f"*Logical date*\n{escape(event.logical_date or 'none')}",
        f"*Reason*\n{escape(reason)}",
        f"*Duration*\n{human_duration(event.duration)}",
        f"*Owner*\n{owner}",
    ]
    if event.deployment:
        fields.append(f"*Deployment*\n{escape(event.deployment)}")
    blocks: list[dict[str, Any]] = [header(title)]
    if event.mention:
        blocks.append(section(f"{event.mention} {escape(reason)}"))
    blocks.append(fields_section(fields))
    tasks = list(dict.fromkeys(list(failed_tasks) or ([event.task_id] if event.task_id else [])))
    if tasks:
        folded_set = set(folded)
        lines = [
            f"• {code(t)}" + (" (no separate alert)" if t in folded_set else "") for t in tasks
        ]
        blocks += bullet_sections(f"*Failed tasks* ({len(tasks)})", lines, max_blocks=5)
    if event.exception:
        blocks.append(_error_block(event))
    blocks += _compact([impact_block(event), section(links_line(event))])
    notes = [f"{ordinal(count)} failed run in {window_text(window)}" if count > 1 else SIGNATURE]
    blocks += _compact([context(*notes), notices_block(event)])
    listed = names(tasks, as_code=False)
    text = (f"{deployment_prefix(event)}{verb}: {event.dag_id} ({reason})"
            + (f"; failed tasks: {listed}" if tasks else "")
            + (f" {fallback_extras(event)}" if fallback_extras(event) else ""))
    return fit(Message(text=text, blocks=blocks, kind="dag_failure"))


__all__ = [
    "Message", "TaskEvent", "also_message", "crux", "dag_failure_message", "digest_message",
    "failure_message", "quality_summary_message", "recovery_message", "repeat_message",
    "retry_message",
]
