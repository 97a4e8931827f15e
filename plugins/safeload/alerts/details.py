"""The parts of an incident message beyond "what failed": cause chain and raising place,
who to ping and the runbook, what the failure blocks, the run's other failures, the
deployment and set-up notices. Each as Block Kit text and as plain fallback text.

Pure: no Airflow import. Used by :mod:`safeload.alerts.messages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from safeload.alerts.blocks import code, context, cut, escape, link, section
from safeload.alerts.event import TaskEvent

#: Tasks and assets named one by one; the rest are counted.
MAX_NAMED = 10
#: The root cause in one-line texts (the fallback, the top section, repeats).
MAX_ROOT_TEXT = 200


def names(items: Sequence[str], limit: int = MAX_NAMED, *, as_code: bool = True) -> str:
    """```a`, `b` and 3 more`` (plain ``a, b and 3 more`` without ``as_code``)."""
    shown = [code(i) if as_code else str(i) for i in items[:limit]]
    more = len(items) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def crux(event: TaskEvent) -> str:
    """The error in one line: the root cause when the exception has a chain, else the
    exception's first line; with where it was raised."""
    if event.root_cause:
        what = f"root cause {code(cut(event.root_cause, MAX_ROOT_TEXT))}"
    elif event.exception and event.exception.strip():
        what = code(cut(event.exception.strip().splitlines()[0], MAX_ROOT_TEXT))
    else:
        what = "no exception recorded"
    where = f" raised at {code(event.location)}" if event.location else ""
    return what + where


def top_line(event: TaskEvent) -> dict[str, Any]:
    """The first section under the header: who to ping, and the crux of the error."""
    who = f"{event.mention} " if event.mention else ""
    return section(f"{who}{crux(event)}")


def chain_text(event: TaskEvent) -> str | None:
    """``*Caused by*`` lines, outermost to root (mrkdwn), or ``None`` without a chain."""
    if not event.causes:
        return None
    lines = [f"↳ {code(c)}" + (" (root cause)" if i == len(event.causes) - 1 else "")
             for i, c in enumerate(event.causes)]
    return "*Caused by*\n" + "\n".join(lines)


def impact_block(event: TaskEvent) -> dict[str, Any] | None:
    """What the failure blocks, and the run's other failed tasks."""
    parts = []
    if event.blocked_tasks:
        n = len(event.blocked_tasks)
        parts.append(f"*Blocks* {n} downstream task{'s' if n != 1 else ''}: {names(event.blocked_tasks)}")
    elif event.task_id:
        parts.append("*Blocks* no downstream task")
    if event.blocked_assets:
        n = len(event.blocked_assets)
        parts.append(f"*Assets not updated* ({n}): {names(event.blocked_assets)}")
    if event.other_failed:
        n = len(event.other_failed)
        parts.append(f"*Also failed in this run* ({n}): {names(event.other_failed)}")
    return section("\n".join(parts)) if parts else None


def links_line(event: TaskEvent) -> str:
    """Log link, runbook link and the run id, on one line."""
    label = "Open the task log" if event.task_id else "Open the DAG run"
    log = link(event.log_url, label) if event.log_url else "no log link available"
    runbook = link(event.runbook, "Runbook") if event.runbook else ""
    run = f"run {code(event.run_id)}" if event.run_id else ""
    return " · ".join(p for p in (log, runbook, run) if p)


def notices_block(event: TaskEvent) -> dict[str, Any] | None:
    if not event.notices:
        return None
    return context(*(f"⚠️ {escape(n)}" for n in event.notices))


def deployment_prefix(event: TaskEvent) -> str:
    """``[production] `` for the fallback text, empty without a deployment name."""
    return f"[{event.deployment}] " if event.deployment else ""


def fallback_extras(event: TaskEvent) -> str:
    """What the plain-text fallback adds after the error: root cause, place, impact,
    the run's other failures, who to ping, the runbook and the log."""
    parts = []
    if event.root_cause:
        parts.append(f"root cause: {cut(event.root_cause, MAX_ROOT_TEXT)}")
    if event.location:
        parts.append(f"raised at {event.location}")
    if event.blocked_tasks or event.blocked_assets:
        parts.append(f"blocks {len(event.blocked_tasks)} task(s) and {len(event.blocked_assets)} asset(s)"
                     + (f": {names(event.blocked_tasks, 5, as_code=False)}" if event.blocked_tasks else ""))
    if event.other_failed:
        parts.append(f"also failed in this run: {names(event.other_failed, 5, as_code=False)}")
    if event.mention:
        parts.append(event.mention)
    if event.runbook:
        parts.append(f"Runbook: {event.runbook}")
    if event.log_url:
        parts.append(f"Log: {event.log_url}")
    return ("— " + " · ".join(parts)) if parts else ""
