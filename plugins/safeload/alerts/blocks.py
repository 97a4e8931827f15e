"""Block Kit building blocks and Slack's limits: text helpers, blocks, :func:`fit`.

Pure: no Airflow import. Every message builder (:mod:`safeload.alerts.messages`,
:mod:`safeload.alerts.load_summary`) composes these, and :func:`fit` brings any message
within Slack's limits, whatever the input:

* at most :data:`MAX_BLOCKS` blocks;
* a section's text at most :data:`MAX_SECTION_TEXT` characters, a field's
  :data:`MAX_FIELD_TEXT`, at most :data:`MAX_FIELDS` fields;
* a header at most :data:`MAX_HEADER_TEXT` characters;
* all the text of a message (fallback plus blocks) at most :data:`MAX_TOTAL_TEXT`.

Anything longer is cut with a visible marker that says how much was cut and where the
whole text is (the task log). :func:`limit_violations` checks a message against these
limits; the tests run it on every builder with hostile input.
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


def number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def value_text(value: Any, limit: int = 200) -> str:
    """An observed or expected value, compact and bounded."""
    if isinstance(value, (dict, list, tuple)):
        try:
            text = json.dumps(value, default=str, separators=(",", ":"))
        except (TypeError, ValueError):
            text = str(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = number(value)
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
