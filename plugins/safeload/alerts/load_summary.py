"""The load summary message: rows, quality checks, schema drift of one load.

Pure: no Airflow import. Posted by :func:`safeload.alerts.notifiers.send_quality_summary`
(the summary task of a load).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safeload.alerts.blocks import (
    MAX_LISTED_ITEMS,
    SIGNATURE,
    Message,
    bullet_sections,
    code,
    context,
    cut,
    escape,
    fields_section,
    fit,
    header,
    link,
    number,
    section,
    value_text,
)

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
        parts.append(f"observed {code(value_text(observed))}")
    if expected is not None:
        parts.append(f"expected {code(value_text(expected))}")
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
    loaded = number(rows_loaded) if rows_loaded is not None else "unknown"
    if rows_source is not None and rows_loaded is not None:
        loaded = f"{number(rows_loaded)} of {number(rows_source)}"
    quarantine = number(quarantined) if quarantined is not None else "unknown"
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
        fields.append(f"*Rows replaced*\n{escape(number(load['rows_replaced']))}")
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
