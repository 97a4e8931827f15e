"""Slack messages for safeload's alerts: Block Kit blocks plus a plain-text fallback.

Pure: no Airflow import. The notifiers turn an Airflow context into a :class:`TaskEvent`
(or hand over a load summary dict) and these builders turn that into a :class:`Message`
that is always within Slack's limits, whatever the input:

* at most :data:`MAX_BLOCKS` blocks;
* a section's text at most :data:`MAX_SECTION_TEXT` characters, a field's
  :data:`MAX_FIELD_TEXT`, at most :data:`MAX_FIELDS` fields;
* a header at most :data:`MAX_HEADER_TEXT` characters;
* all the text of a message (fallback plus blocks) at most :data:`MAX_TOTAL_TEXT`.

Anything longer is cut with a visible marker that says how much was cut and where the
whole text is (the task log). :func:`limit_violations` checks a message against these
limits; the tests run it on every builder with hostile input.

.. code-block:: python

    event = TaskEvent(dag_id="orders_daily", task_id="load", try_number=3, max_tries=2,
                      exception="LockTimeoutError: ...", log_url="http://...")
    message = failure_message(event)
    message.payload()  # {"text": "...", "blocks": [...]}
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

# Slack's limits (https://api.slack.com/reference/block-kit/blocks)
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_TOTAL_TEXT = 40000

#: The fallback text is what a phone notification shows: keep it short.
MAX_FALLBACK_TEXT = 1000
#: An exception in a failure message: head and tail are kept, the middle is cut.
MAX_EXCEPTION_TEXT = 1500
#: Checks and drift changes listed one by one in a quality summary; the rest are counted.
MAX_LISTED_ITEMS = 25

CUT_MARKER = "… [{n} characters cut; the full text is in the task log] …"

SIGNATURE = "safeload"


@dataclass(frozen=True)
class Message:
    """A Slack message: ``text`` is the fallback (notifications, screen readers, the
    file fallback), ``blocks`` the Block Kit layout."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "info"

    def payload(self) -> dict[str, Any]:
        """The body for an incoming webhook or ``chat.postMessage`` (without channel)."""
        return {"text": self.text, "blocks": self.blocks}


@dataclass(frozen=True)
class TaskEvent:
    """What an alert says about one task (or DAG run) event, as plain data.

    :param dag_id: the DAG.
    :param task_id: the task; ``None`` for a DAG-level event.
    :param run_id: the DAG run.
    :param logical_date: ISO text; ``None`` for runs without one (Airflow 3 allows it).
    :param try_number: this try, counted from 1.
    :param max_tries: Airflow's ``max_tries``; the run allows ``max_tries + 1`` tries.
    :param duration: seconds the try (or the run) took.
    :param exception: short text of the error, e.g. ``"ValueError: bad row"``.
    :param log_url: link to the task's log in the Airflow UI.
    :param owner: the task's (or DAG's) owner.
    :param map_index: index of a mapped task instance, ``None`` or ``-1`` if not mapped.
    :param final: ``False`` while Airflow will retry the task.
    :param reason: why a DAG-level callback fired (``task_failure``, ``timed_out``, ...).
    """

    dag_id: str
    task_id: str | None = None
    run_id: str | None = None
    logical_date: str | None = None
    try_number: int | None = None
    max_tries: int | None = None
    duration: float | None = None
    exception: str | None = None
    log_url: str | None = None
    owner: str | None = None
    map_index: int | None = None
    final: bool = True
    reason: str | None = None

    @property
    def name(self) -> str:
        """``dag.task`` (``dag.task[3]`` for a mapped instance), or the DAG alone."""
        if not self.task_id:
            return self.dag_id
        suffix = f"[{self.map_index}]" if self.map_index is not None and self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{suffix}"

    @property
    def tries(self) -> str | None:
        """``"2 of 3"``, or ``None`` when the try number is unknown."""
        if not self.try_number:
            return None
        if self.max_tries is None:
            return str(self.try_number)
        return f"{self.try_number} of {max(self.max_tries + 1, self.try_number)}"


# --------------------------------------------------------------------------- text helpers


def escape(text: Any) -> str:
    """Escape the three characters Slack's mrkdwn reserves."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: Any) -> str:
    """Inline code; a backtick inside would end the span early, so it is swapped."""
    return "`" + escape(text).replace("`", "ˋ") + "`"


def link(url: str | None, label: str) -> str:
    """A mrkdwn link, or the label alone when there is no URL."""
    if not url:
        return escape(label)
    safe = str(url).replace("<", "%3C").replace(">", "%3E").replace("|", "%7C").replace(" ", "%20")
    return f"<{safe}|{escape(label)}>"


def cut(text: str, limit: int, *, keep_tail: bool = False) -> str:
    """Cut ``text`` to at most ``limit`` characters with a marker saying how much went.

    With ``keep_tail`` the start and the end survive (an exception's type is at the
    start, the line that explains it is often at the end); otherwise the start.
    """
    text = str(text)
    if len(text) <= limit:
        return text
    # the marker's own length depends on the number in it; two passes settle it
    marker = CUT_MARKER.format(n=len(text))
    if limit <= len(marker) + 2:
        return text[: max(limit - 1, 0)] + "…" if limit > 0 else ""
    room = limit - len(marker)
    marker = CUT_MARKER.format(n=len(text) - room)
    room = limit - len(marker)
    if keep_tail:
        head = math.ceil(room * 2 / 3)
        tail = room - head
        return text[:head] + marker + (text[-tail:] if tail else "")
    return text[:room] + marker


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st, ..."""
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def human_duration(seconds: float | None) -> str:
    """``"850 ms"``, ``"42 s"``, ``"3 min 12 s"``, ``"2 h 05 min"``, ``"3 d 4 h"``."""
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN, negative
        return "unknown"
    if seconds < 1:
        return f"{int(seconds * 1000)} ms"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m:02d} min"
    d, h = divmod(h, 24)
    return f"{d} d {h} h"


def window_text(window: float) -> str:
    """``3600`` -> ``"the last hour"``, ``1800`` -> ``"the last 30 min"``."""
    if abs(window - 3600) < 1:
        return "the last hour"
    if window % 3600 == 0:
        return f"the last {int(window // 3600)} h"
    if window % 60 == 0:
        return f"the last {int(window // 60)} min"
    return f"the last {human_duration(window)}"


def utc_text(epoch: float | None) -> str:
    if epoch is None:
        return "unknown"
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def _value(value: Any, limit: int = 200) -> str:
    """An observed or expected value, compact and bounded."""
    if isinstance(value, (dict, list, tuple)):
        try:
            text = json.dumps(value, default=str, separators=(",", ":"))
        except (TypeError, ValueError):
            text = str(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = _number(value)
    else:
        text = str(value)
    return cut(text, limit)


# --------------------------------------------------------------------------- blocks


def header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": cut(text, MAX_HEADER_TEXT), "emoji": True},
    }


def section(text: str, *, fields: Sequence[str] = ()) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": cut(text, MAX_SECTION_TEXT)},
    }
    if fields:
        block["fields"] = [
            {"type": "mrkdwn", "text": cut(f, MAX_FIELD_TEXT)} for f in fields[:MAX_FIELDS]
        ]
    return block


def fields_section(fields: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": cut(f, MAX_FIELD_TEXT)} for f in fields[:MAX_FIELDS]],
    }


def context(*parts: str) -> dict[str, Any]:
    elements = [{"type": "mrkdwn", "text": cut(p, MAX_SECTION_TEXT)} for p in parts if p][
        :MAX_CONTEXT_ELEMENTS
    ]
    return {"type": "context", "elements": elements or [{"type": "mrkdwn", "text": SIGNATURE}]}


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def bullet_sections(
    title: str, lines: Sequence[str], *, max_blocks: int = 10
) -> list[dict[str, Any]]:
    """``title`` followed by ``lines``, packed into as few sections as the text limit allows.

    A line longer than a section is cut; lines past ``max_blocks`` sections are counted
    in a last line instead of being shown.
    """
    blocks: list[dict[str, Any]] = []
    current = title
    remaining = list(lines)
    while remaining:
        line = cut(remaining[0], MAX_SECTION_TEXT - 200)
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= MAX_SECTION_TEXT - 100:
            current = candidate
            remaining.pop(0)
            continue
        if len(blocks) + 1 >= max_blocks:
            break
        blocks.append(section(current))
        current = ""
    if remaining:
        current = f"{current}\n… and {len(remaining)} more (see the task log)"
    if current:
        blocks.append(section(current))
    return blocks


def _block_texts(block: Mapping[str, Any]) -> Iterable[str]:
    text = block.get("text")
    if isinstance(text, Mapping) and "text" in text:
        yield str(text["text"])
    for f in block.get("fields") or ():
        yield str(f.get("text", ""))
    for e in block.get("elements") or ():
        if isinstance(e, Mapping) and "text" in e:
            t = e["text"]
            yield str(t["text"] if isinstance(t, Mapping) else t)


def message_text_length(message: Message) -> int:
    return len(message.text) + sum(len(t) for b in message.blocks for t in _block_texts(b))


def fit(message: Message) -> Message:
    """Return ``message`` within every Slack limit (blocks, per-block text, total text)."""
    blocks = [dict(b) for b in message.blocks]
    if len(blocks) > MAX_BLOCKS:
        dropped = len(blocks) - (MAX_BLOCKS - 1)
        blocks = blocks[: MAX_BLOCKS - 1] + [
            context(f"… {dropped} more blocks cut; see the task log")
        ]
    text = cut(message.text, MAX_FALLBACK_TEXT)
    fitted = Message(text=text, blocks=blocks, kind=message.kind)
    # the total: cut the longest section texts until it fits (bounded by the block count)
    for _ in range(MAX_BLOCKS * 2):
        if message_text_length(fitted) <= MAX_TOTAL_TEXT:
            break
        longest = max(
            (
                b
                for b in fitted.blocks
                if b.get("type") == "section" and isinstance(b.get("text"), Mapping)
            ),
            key=lambda b: len(b["text"]["text"]),
            default=None,
        )
        if longest is None or len(longest["text"]["text"]) <= 200:
            break
        longest["text"] = {
            "type": "mrkdwn",
            "text": cut(longest["text"]["text"], len(longest["text"]["text"]) // 2),
        }
    return fitted


def limit_violations(message: Message) -> list[str]:
    """Every way ``message`` breaks a Slack limit; empty when it is fine."""
    problems: list[str] = []
    if not message.text:
        problems.append("no fallback text")
    if len(message.blocks) > MAX_BLOCKS:
        problems.append(f"{len(message.blocks)} blocks > {MAX_BLOCKS}")
    for i, b in enumerate(message.blocks):
        kind = b.get("type")
        text = b.get("text")
        if kind == "header" and len(text["text"]) > MAX_HEADER_TEXT:
            problems.append(
                f"block {i}: header of {len(text['text'])} characters > {MAX_HEADER_TEXT}"
            )
        if kind == "section":
            if text is not None and len(text["text"]) > MAX_SECTION_TEXT:
                problems.append(
                    f"block {i}: section text of {len(text['text'])} > {MAX_SECTION_TEXT}"
                )
            if text is not None and not text["text"].strip():
                problems.append(f"block {i}: empty section text")
            if text is None and not b.get("fields"):
                problems.append(f"block {i}: section without text or fields")
            if len(b.get("fields") or ()) > MAX_FIELDS:
                problems.append(f"block {i}: {len(b['fields'])} fields > {MAX_FIELDS}")
            for f in b.get("fields") or ():
                if len(f["text"]) > MAX_FIELD_TEXT:
                    problems.append(f"block {i}: field of {len(f['text'])} > {MAX_FIELD_TEXT}")
        if kind == "context":
            elements = b.get("elements") or ()
            if not elements or len(elements) > MAX_CONTEXT_ELEMENTS:
                problems.append(f"block {i}: {len(elements)} context elements")
            for e in elements:
                if len(e["text"]) > MAX_SECTION_TEXT:
                    problems.append(
                        f"block {i}: context element of {len(e['text'])} > {MAX_SECTION_TEXT}"
                    )
    total = message_text_length(message)
    if total > MAX_TOTAL_TEXT:
        problems.append(f"{total} characters of text > {MAX_TOTAL_TEXT}")
    return problems


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
        return section(f"*Error*\n```{body}```")
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
    fields.append(f"*Owner*\n{escape(event.owner or 'unknown')}")
    return fields


def _log_line(event: TaskEvent) -> str:
    run = f"run {code(event.run_id)}" if event.run_id else ""
    log = link(event.log_url, "Open the task log") if event.log_url else "no log link available"
    return " · ".join(p for p in (log, run) if p)


def _short_error(event: TaskEvent, limit: int = 300) -> str:
    if not event.exception:
        return "no exception recorded"
    first = event.exception.strip().splitlines()[0] if event.exception.strip() else event.exception
    return cut(first, limit)


def failure_message(
    event: TaskEvent,
    *,
    count: int = 1,
    window: float = 3600,
    incident_count: int | None = None,
    incident_start: float | None = None,
) -> Message:
    """The full failure alert: the first of its kind in the storm-control window.

    :param event: the failure.
    :param count: failures of this task within the current window, this one included.
    :param window: the storm-control window in seconds.
    :param incident_count: failures since the task last succeeded; more than ``count``
        when it has been failing for longer than a window ("still failing").
    :param incident_start: when that series of failures began (epoch seconds).
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
    folded = f"repeats within {window_text(window)} are folded into this message's thread"

    blocks = [
        header(title),
        fields_section(_task_fields(event)),
        _error_block(event),
        section(_log_line(event)),
        context(escape("; ".join(notes)), folded, SIGNATURE),
    ]
    state = "final" if event.final else "will retry"
    tries = f", try {event.tries}" if event.tries else ""
    text = f"{verb}: {event.name} ({state}{tries}): {_short_error(event)}" + (
        f" Log: {event.log_url}" if event.log_url else ""
    )
    return fit(Message(text=text, blocks=blocks, kind="failure"))


def repeat_message(event: TaskEvent, *, count: int, window: float = 3600) -> Message:
    """A short "failed again" line, posted in the first failure's thread where possible."""
    again = f"failed again, {ordinal(count)} time in {window_text(window)}"
    state = "final" if event.final else "will retry"
    tries = f"try {event.tries}, {state}" if event.tries else state
    line = f"🔁 *{escape(event.name)}* {escape(again)} ({escape(tries)}): {code(_short_error(event, 500))}"
    blocks = [section(line), context(_log_line(event), SIGNATURE)]
    text = f"{event.name} {again} ({tries}): {_short_error(event)}" + (
        f" Log: {event.log_url}" if event.log_url else ""
    )
    return fit(Message(text=text, blocks=blocks, kind="repeat"))


def retry_message(event: TaskEvent) -> Message:
    """A failed try that Airflow will retry (only sent when retry alerts are on)."""
    tries = f"try {event.tries} failed" if event.tries else "a try failed"
    line = f"🟡 *Retrying {escape(event.name)}*: {escape(tries)}, Airflow will retry: {code(_short_error(event, 500))}"
    blocks = [
        section(line),
        context(_log_line(event), f"owner {escape(event.owner or 'unknown')}", SIGNATURE),
    ]
    text = f"Retrying {event.name}: {tries}: {_short_error(event)}" + (
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
) -> Message:
    """``✅ Resolved``: a task (or DAG) that had failed has succeeded.

    :param event: the success (``task_id`` ``None`` for a DAG run).
    :param failures: failures since the last success.
    :param since: when the first of them happened (epoch seconds).
    :param now: now (epoch seconds).
    :param tasks: for a DAG run, the tasks whose failures this resolves.
    """
    span = f" ({human_duration(now - since)})" if since is not None else ""
    what = f"{failures} failure{'s' if failures != 1 else ''} since {utc_text(since)}{span}"
    subject = event.name
    if not event.task_id and tasks:
        shown = ", ".join(code(t) for t in list(tasks)[:20])
        more = f" and {len(tasks) - 20} more" if len(tasks) > 20 else ""
        resolved = f"\nResolves: {shown}{more}"
    else:
        resolved = ""
    tries = f" on try {event.tries}" if event.task_id and event.tries else ""
    line = (
        f"✅ *Resolved: {escape(subject)}* succeeded{escape(tries)} after {escape(what)}.{resolved}"
    )
    blocks = [section(line), context(_log_line(event), SIGNATURE)]
    text = f"Resolved: {subject} succeeded{tries} after {what}."
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
    """One message for a failed DAG run, listing its failed tasks.

    :param event: the DAG-level event (``task_id`` may name the task that failed last).
    :param failed_tasks: tasks of the run that failed, in order.
    :param folded: those of them whose own alert was folded into this message.
    :param count: failed runs of this DAG within the window, this one included.
    :param window: the storm-control window in seconds.
    """
    verb = "DAG run failed again" if count > 1 else "DAG run failed"
    title = f"🔴 {verb}: {event.dag_id}"
    reason = _REASONS.get(event.reason or "", event.reason or "unknown")
    fields = [
        f"*DAG*\n{code(event.dag_id)}",
        f"*Run*\n{code(event.run_id or 'unknown')}",
        f"*Logical date*\n{escape(event.logical_date or 'none')}",
        f"*Reason*\n{escape(reason)}",
        f"*Duration*\n{human_duration(event.duration)}",
        f"*Owner*\n{escape(event.owner or 'unknown')}",
    ]
    blocks = [header(title), fields_section(fields)]
    tasks = list(dict.fromkeys(list(failed_tasks) or ([event.task_id] if event.task_id else [])))
    if tasks:
        folded_set = set(folded)
        lines = [
            f"• {code(t)}" + (" (no separate alert)" if t in folded_set else "") for t in tasks
        ]
        blocks += bullet_sections(f"*Failed tasks* ({len(tasks)})", lines, max_blocks=5)
    if event.exception:
        blocks.append(_error_block(event))
    blocks.append(section(_log_line(event)))
    notes = [f"{ordinal(count)} failed run in {window_text(window)}" if count > 1 else SIGNATURE]
    blocks.append(context(*notes))
    listed = ", ".join(tasks[:10]) + (f" and {len(tasks) - 10} more" if len(tasks) > 10 else "")
    text = f"{verb}: {event.dag_id} ({reason})" + (f"; failed tasks: {listed}" if tasks else "")
    return fit(Message(text=text, blocks=blocks, kind="dag_failure"))


# --------------------------------------------------------------------------- quality summary

_OK_STATUSES = {
    "published",
    "ok",
    "success",
    "succeeded",
    "loaded",
    "skipped_unchanged",
    "unchanged",
}


def _as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _check_line(result: Mapping[str, Any], icon: str) -> str:
    kind = result.get("type") or result.get("expectation_type") or result.get("name") or "check"
    kwargs = _as_mapping(result.get("kwargs"))
    column = result.get("column") or kwargs.get("column")
    columns = result.get("columns") or kwargs.get("column_list")
    target = (
        f" on {code(column)}"
        if column
        else (f" on {code(', '.join(map(str, columns)))}" if columns else "")
    )
    severity = result.get("severity")
    sev = f" ({escape(severity)})" if severity else ""
    observed = result.get("observed_value", result.get("observed"))
    expected = result.get("expected", result.get("expected_value"))
    parts = []
    if observed is not None or "observed_value" in result:
        parts.append(f"observed {code(_value(observed))}")
    if expected is not None:
        parts.append(f"expected {code(_value(expected))}")
    detail = ": " + ", ".join(parts) if parts else ""
    return f"{icon} {code(kind)}{target}{sev}{detail}"


def _is_warning(result: Mapping[str, Any]) -> bool:
    return str(result.get("severity") or "").lower() in {"warning", "warn", "info"}


def quality_summary_message(summary: Mapping[str, Any]) -> Message:
    """The end-of-run summary of a load: rows, quality checks, schema drift.

    Tolerant of missing keys and of a summary that is not a dict at all. The shape:

    .. code-block:: python

        {"dag_id": "orders_daily", "run_id": "...", "logical_date": "2024-05-01",
         "table": "public.orders", "partition": "2024-05-01",
         "load": {"rows_source": 1000, "rows_loaded": 998, "rows_quarantined": 2,
                  "rows_replaced": 1000, "status": "published"},
         "drift": {"decision": "warn", "policy": "warn",
                   "changes": [{"kind": "added", "column": "coupon", "class": "additive",
                                "detail": "...", "action": "..."}]},
         "quality": {"success": True, "results": [{"type": "...", "column": "amount",
                     "success": False, "severity": "warning", "observed_value": 3,
                     "expected": "0 nulls"}]},
         "log_url": "http://..."}
    """
    summary = _as_mapping(summary)
    load = _as_mapping(summary.get("load"))
    drift = _as_mapping(summary.get("drift"))
    quality = _as_mapping(summary.get("quality"))
    results = [r for r in (quality.get("results") or []) if isinstance(r, Mapping)]
    failed = [r for r in results if r.get("success") is False and not _is_warning(r)]
    warned = [r for r in results if r.get("success") is False and _is_warning(r)]
    passed = [r for r in results if r.get("success") is True]
    changes = [c for c in (drift.get("changes") or []) if isinstance(c, Mapping)]
    status = str(load.get("status") or "unknown")
    drift_decision = str(drift.get("decision") or ("none" if not changes else "unknown"))

    bad = (
        bool(failed)
        or quality.get("success") is False
        or (load and status.lower() not in _OK_STATUSES)
    )
    bad = bad or drift_decision.lower() in {"fail", "failed", "block", "blocked"}
    warn = bool(warned) or bool(changes) or drift_decision.lower() == "warn"
    icon = "❌" if bad else ("⚠️" if warn else "✅")
    table = summary.get("table") or summary.get("dag_id") or "load"
    partition = summary.get("partition") or summary.get("logical_date") or ""
    title = f"{icon} Load summary: {table} {partition}".strip()

    rows_source = load.get("rows_source")
    rows_loaded = load.get("rows_loaded")
    quarantined = load.get("rows_quarantined")
    loaded = _number(rows_loaded) if rows_loaded is not None else "unknown"
    if rows_source is not None and rows_loaded is not None:
        loaded = f"{_number(rows_loaded)} of {_number(rows_source)}"
    quarantine = _number(quarantined) if quarantined is not None else "unknown"
    if (
        isinstance(quarantined, (int, float))
        and isinstance(rows_source, (int, float))
        and rows_source
    ):
        quarantine += f" ({quarantined / rows_source:.2%})"
    fields = [
        f"*Rows loaded*\n{escape(loaded)}",
        f"*Rows quarantined*\n{escape(quarantine)}",
        f"*Status*\n{code(status)}",
    ]
    if load.get("rows_replaced") is not None:
        fields.append(f"*Rows replaced*\n{escape(_number(load['rows_replaced']))}")
    if summary.get("table"):
        fields.append(f"*Table*\n{code(summary['table'])}")
    if partition:
        fields.append(f"*Partition*\n{escape(partition)}")
    if summary.get("dag_id"):
        fields.append(f"*DAG*\n{code(summary['dag_id'])}")
    if summary.get("run_id"):
        fields.append(f"*Run*\n{code(summary['run_id'])}")
    blocks: list[dict[str, Any]] = [header(title), fields_section(fields)]

    # quality
    if results or quality:
        head = (
            f"*Quality*: {len(failed)} failed, {len(warned)} warned, {len(passed)} passed"
            f" ({len(results)} checks)"
        )
        lines = [_check_line(r, "❌") for r in failed] + [_check_line(r, "⚠️") for r in warned]
        shown, hidden = lines[:MAX_LISTED_ITEMS], len(lines) - MAX_LISTED_ITEMS
        if hidden > 0:
            shown.append(f"… and {hidden} more failed or warned checks (see the task log)")
        blocks += bullet_sections(head, shown, max_blocks=12)
    else:
        blocks.append(section("*Quality*: no results reported"))

    # drift
    policy = drift.get("policy")
    if changes:
        head = f"*Schema drift*: {len(changes)} change{'s' if len(changes) != 1 else ''}"
        head += f", policy {code(policy)}" if policy else ""
        head += f", decision {code(drift_decision)}"
        lines = []
        for c in changes[:MAX_LISTED_ITEMS]:
            line = f"• {escape(c.get('kind') or 'changed')} {code(c.get('column') or '?')}"
            if c.get("class"):
                line += f" ({escape(c['class'])})"
            if c.get("detail"):
                line += f": {escape(cut(str(c['detail']), 300))}"
            if c.get("action"):
                line += f" → {escape(cut(str(c['action']), 300))}"
            lines.append(line)
        if len(changes) > MAX_LISTED_ITEMS:
            lines.append(f"… and {len(changes) - MAX_LISTED_ITEMS} more changes (see the task log)")
        blocks += bullet_sections(head, lines, max_blocks=12)
    elif drift:
        blocks.append(section(f"*Schema drift*: none found (policy {code(policy or 'unknown')})"))

    log_url = summary.get("log_url")
    blocks.append(
        section(link(log_url, "Open the task log") if log_url else "no log link available")
    )
    blocks.append(context(SIGNATURE))

    parts = [
        f"Load summary {table} {partition}".strip() + ":",
        f"{loaded} rows loaded, {quarantine} quarantined",
    ]
    parts.append(f"quality: {len(failed)} failed, {len(warned)} warned")
    parts.append(f"drift: {len(changes)} change(s), decision {drift_decision}")
    text = "; ".join(parts[1:])
    text = f"{icon} {parts[0]} {text}"
    return fit(Message(text=text, blocks=blocks, kind="quality_summary"))
