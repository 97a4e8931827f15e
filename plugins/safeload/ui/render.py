"""HTML for the safeload page: server-rendered, inline CSS and SVG charts, no JavaScript.

Pure functions of the rows :mod:`safeload.ui.queries` returns; every value from the
database goes through :func:`html.escape` (``e``) or :func:`urllib.parse.quote`.
No Airflow import.
"""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

OK, BAD, WARN, MUTED, LINE = "#1a7f37", "#cf222e", "#bf8700", "#8c959f", "#0969da"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#fff}
header{padding:12px 20px;border-bottom:1px solid #d0d7de;display:flex;gap:16px;align-items:baseline}
header h1{font-size:18px;margin:0} header a{color:#0969da;text-decoration:none}
main{padding:12px 20px} h2{font-size:16px;margin:22px 0 8px} h3{font-size:13px;margin:0 0 4px}
table{border-collapse:collapse;width:100%} th,td{padding:5px 8px;border-bottom:1px solid #eaeef2;text-align:left;
vertical-align:middle;white-space:nowrap} th{font-size:12px;color:#57606a;font-weight:600;background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.mine{background:#fff8c5}
.badge{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.published,.passed,.normal{background:#1a7f37} .refused,.failed,.critical,.spike,.drop,.breaking{background:#cf222e}
.warned,.warning,.warn,.evolve,.additive{background:#bf8700} .info,.compatible,.none{background:#8c959f}
.muted{color:#57606a} .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(430px,1fr));gap:12px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 10px} .small{font-size:12px}
td.small{white-space:normal;min-width:150px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
a{color:#0969da} .pager{margin:10px 0} .wrap{white-space:normal;max-width:520px}
"""


def e(v: Any) -> str:
    return escape("" if v is None else str(v))


def fmt_int(v: Any) -> str:
    return "–" if v is None else f"{int(v):,}"


def fmt_seconds(v: Any) -> str:
    return "" if v is None else f"{float(v):.1f} s"


def fmt_time(v: Any) -> str:
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return e(v)


def badge(text: Any, cls: str | None = None) -> str:
    return f'<span class="badge {e(cls or text)}">{e(text)}</span>'


def page(title: str, body: str, *, root: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)} · safeload</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f'<body><header><h1><a href="{e(root)}/">safeload</a></h1><span class="muted">{e(title)}</span>'
            f'</header><main>{body}</main></body></html>')


class Links:
    """URLs of this app (under ``root``, where the plugin is mounted) and of Airflow's UI."""

    def __init__(self, root: str, airflow_root: str):
        self.root = root.rstrip("/")
        self.airflow_root = airflow_root.rstrip("/")

    def table(self, target: str, **params: Any) -> str:
        q = {"target": target, **{k: v for k, v in params.items() if v is not None}}
        return f"{self.root}/table?{urlencode(q)}"

    def overview(self, after: str | None = None) -> str:
        return f"{self.root}/" + (f"?{urlencode({'after': after})}" if after else "")

    def task(self, dag_id: str, run_id: str, task_id: str) -> str:
        return f"{self.root}/task?{urlencode({'dag_id': dag_id, 'run_id': run_id, 'task_id': task_id})}"

    def log(self, dag_id: str | None, run_id: str | None, task_id: str | None, try_number: int | None = None) -> str:
        """The task instance's log in Airflow 3's UI (the route of ``TaskInstance.log_url``)."""
        if not (dag_id and run_id and task_id):
            return ""
        url = (f"{self.airflow_root}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
               f"/tasks/{quote(task_id, safe='')}")
        return url + (f"?try_number={int(try_number)}" if try_number else "")


def task_cell(r: dict[str, Any], links: Links) -> str:
    """dag / task, linked to the task's log in Airflow (``_top``: out of the UI's iframe)."""
    if not r.get("dag_id"):
        return '<span class="muted">outside Airflow</span>'
    log = links.log(r.get("dag_id"), r.get("run_id"), r.get("task_id"), r.get("try_number"))
    try_txt = f" (try {r['try_number']})" if r.get("try_number") else ""
    return (f'<span title="{e(r.get("run_id"))}">{e(r["dag_id"])}.{e(r.get("task_id"))}</span> '
            f'<a href="{e(log)}" target="_top" class="log">log{e(try_txt)}</a>'
            f' · <a href="{e(links.task(r["dag_id"], r.get("run_id") or "", r.get("task_id") or ""))}"'
            f' class="report">report</a>')


# ------------------------------------------------------------------------- charts

def sparkline(values: list[int], verdict: dict[str, Any] | None, *, width: int = 130, height: int = 30) -> str:
    """Row counts of recent loads; the last point red when it is a spike or a drop."""
    if not values:
        return '<span class="muted small">no loads</span>'
    lo, hi = min(values), max(values)
    if verdict:
        lo, hi = min(lo, verdict["lower"]), max(hi, verdict["upper"])
    span = (hi - lo) or 1
    n = len(values)
    pts = [(2 + (width - 6) * (i / (n - 1) if n > 1 else 0.5), height - 3 - (height - 6) * (v - lo) / span)
           for i, v in enumerate(values)]
    band = ""
    if verdict:
        y1 = height - 3 - (height - 6) * (verdict["upper"] - lo) / span
        y2 = height - 3 - (height - 6) * (verdict["lower"] - lo) / span
        band = f'<rect x="0" y="{y1:.1f}" width="{width}" height="{max(y2 - y1, 1):.1f}" fill="#ddf4ff"/>'
    bad = verdict is not None and verdict["verdict"] != "normal"
    x, y = pts[-1]
    title = f"last {n} published loads: " + ", ".join(f"{v:,}" for v in values[-8:])
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f'<title>{e(title)}</title>{band}'
            f'<polyline fill="none" stroke="{LINE}" stroke-width="1.5" points="'
            + " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            + f'"/><circle cx="{x:.1f}" cy="{y:.1f}" r="{3.5 if bad else 2.5}" fill="{BAD if bad else LINE}"/></svg>')


def _fmt_num(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:,.3g}"


def line_chart(points: list[dict[str, Any]], *, measure: str = "value", width: int = 420, height: int = 130) -> str:
    """A check's observed values over partitions as a line, its bounds as dashed lines,
    failures as red (critical) or amber (warning) points. Non-numeric checks: a strip of
    pass/fail dots."""
    if not points:
        return ""
    left, right, top, bottom = 54, 8, 8, 22
    w, h = width - left - right, height - top - bottom
    n = len(points)

    def x(i: int) -> float:
        return left + (w * i / (n - 1) if n > 1 else w / 2)

    def colour(p: dict[str, Any]) -> str:
        if p["success"]:
            return OK
        return BAD if p.get("severity") == "critical" else WARN

    def tip(p: dict[str, Any]) -> str:
        bounds = ""
        if p.get("lower") is not None or p.get("upper") is not None:
            bounds = f" (bounds {_fmt_num(p.get('lower'))} … {_fmt_num(p.get('upper'))})"
        shown = _fmt_num(p["value"]) if p.get("value") is not None else json.dumps(p.get("observed"), default=str)[:120]
        return f"{p['partition']}: {shown}{bounds} {'passed' if p['success'] else 'FAILED'}"

    numeric = [p for p in points if p.get("value") is not None]
    svg = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    if not numeric:
        y = top + h / 2
        for i, p in enumerate(points):
            svg.append(f'<circle cx="{x(i):.1f}" cy="{y:.1f}" r="4" fill="{colour(p)}"><title>{e(tip(p))}</title></circle>')
    else:
        values = [p["value"] for p in numeric]
        vlo, vhi = min(values), max(values)
        reach = max(vhi - vlo, abs(vhi) * 0.5, 1.0) * 3
        # a bound far from every value (row count between 1 and 5,000,000) would flatten
        # the line: such a bound is named in the corner instead of drawn
        off_scale = {b for b in ("lower", "upper")
                     if any(p.get(b) is not None and not (vlo - reach <= p[b] <= vhi + reach) for p in points)}
        vals = values + [p[b] for p in points for b in ("lower", "upper")
                         if b not in off_scale and p.get(b) is not None]
        lo, hi = min(vals), max(vals)
        pad = (hi - lo) * 0.08 or max(abs(hi) * 0.1, 1.0)
        lo, hi = (max(lo - pad, 0.0) if lo >= 0 else lo - pad), hi + pad

        def y(v: float) -> float:
            return top + h - h * (v - lo) / (hi - lo)

        svg.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#d0d7de"/>'
                   f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#d0d7de"/>'
                   f'<text x="{left - 4}" y="{top + 9}" font-size="10" text-anchor="end" fill="#57606a">{e(_fmt_num(hi))}</text>'
                   f'<text x="{left - 4}" y="{top + h}" font-size="10" text-anchor="end" fill="#57606a">{e(_fmt_num(lo))}</text>')
        for row, bound in enumerate(sorted(off_scale)):
            last = next(p[bound] for p in reversed(points) if p.get(bound) is not None)
            svg.append(f'<text x="{left + w}" y="{top + 9 + 11 * row}" font-size="10" text-anchor="end" '
                       f'fill="#8c959f">{e(bound)} {e(_fmt_num(last))} (off scale)</text>')
        for bound in ("lower", "upper"):
            if bound in off_scale:
                continue
            seg = [f"{x(i):.1f},{y(p[bound]):.1f}" for i, p in enumerate(points) if p.get(bound) is not None]
            if seg:
                svg.append(f'<polyline class="bound" fill="none" stroke="{MUTED}" stroke-dasharray="4 3" '
                           f'stroke-width="1" points="{" ".join(seg)}"/>')
        line = [f"{x(i):.1f},{y(p['value']):.1f}" for i, p in enumerate(points) if p.get("value") is not None]
        svg.append(f'<polyline class="observed" fill="none" stroke="{LINE}" stroke-width="1.5" points="{" ".join(line)}"/>')
        for i, p in enumerate(points):
            if p.get("value") is not None:
                r = 2.5 if p["success"] else 4
                svg.append(f'<circle cx="{x(i):.1f}" cy="{y(p["value"]):.1f}" r="{r}" fill="{colour(p)}">'
                           f'<title>{e(tip(p))}</title></circle>')
    svg.append(f'<text x="{left}" y="{height - 6}" font-size="10" fill="#57606a">{e(points[0]["partition"])}</text>'
               f'<text x="{left + w}" y="{height - 6}" font-size="10" text-anchor="end" fill="#57606a">'
               f'{e(points[-1]["partition"])}</text><text x="{left + w / 2}" y="{height - 6}" font-size="10" '
               f'text-anchor="middle" fill="#8c959f">{e(measure)}</text></svg>')
    return "".join(svg)


# ------------------------------------------------------------------------- pages

def overview_page(rows: list[dict[str, Any]], *, total: int, next_after: str | None, after: str,
                  links: Links, conn_id: str) -> str:
    if not rows and not after:
        body = (f'<p>No loads recorded yet in <code>safeload.load_history</code> of connection '
                f'<code>{e(conn_id)}</code>. Run a load (docs/operators.md) and come back.</p>')
        return page("tables", body, root=links.root)
    trs = []
    for r in rows:
        v = r.get("volume")
        vol = badge(v["verdict"]) if v and v["verdict"] != "normal" else ""
        checks = (f'{r["checks"]} checks' + (f' {badge(str(r["failed"]) + " failed", "failed")}' if r["failed"] else "")
                  + (f' {badge(str(r["warned"]) + " warned", "warned")}' if r["warned"] else "")) if r["checks"] else \
            '<span class="muted">–</span>'
        d = r.get("drift")
        drift = (f'{badge(d["decision"])} {d["changes"]} change(s)' if d and d["changes"] else
                 ('<span class="muted">none</span>' if d else '<span class="muted">–</span>'))
        trs.append(
            f'<tr data-target="{e(r["target"])}"><td><a href="{e(links.table(r["target"]))}">{e(r["target"])}</a></td>'
            f'<td class="mono">{e(r["partition_value"])}</td><td>{badge(r["status"])}</td>'
            f'<td class="num rows">{fmt_int(r["rows_loaded"])}</td><td class="num">{fmt_int(r["rows_quarantined"])}</td>'
            f'<td>{sparkline(r["trend"], v)} {vol}</td><td>{checks}</td><td>{drift}</td>'
            f'<td class="small">{fmt_time(r["at"])}</td><td class="small">{task_cell(r, links)}</td></tr>')
    pager = []
    if after:
        pager.append(f'<a href="{e(links.overview())}">« first page</a>')
    if next_after:
        pager.append(f'<a class="next" href="{e(links.overview(next_after))}">next page »</a>')
    body = (f'<p class="muted">{total} table(s) with loads in connection <code>{e(conn_id)}</code>; the latest load '
            f'of each, the row counts of its last published loads (band: median ± 4·MAD), its latest partition\'s '
            f'checks and the last contract check.</p>'
            '<table id="tables"><thead><tr><th>table</th><th>latest partition</th><th>status</th><th>rows</th>'
            '<th>quarantined</th><th>row count trend</th><th>checks</th><th>drift</th><th>loaded</th><th>task</th>'
            f'</tr></thead><tbody>{"".join(trs)}</tbody></table><div class="pager">{" · ".join(pager)}</div>')
    return page("tables", body, root=links.root)


def _changes_list(changes: list[dict[str, Any]]) -> str:
    items = "".join(f'<li>{badge(c.get("class") or "info")} <b>{e(c.get("kind"))}</b> '
                    f'<code>{e(c.get("column"))}</code>: {e(c.get("detail"))}'
                    + (f' <span class="muted">Fix: {e(c.get("action"))}</span>' if c.get("action") else "") + '</li>'
                    for c in changes[:20])
    more = f'<li class="muted">… and {len(changes) - 20} more</li>' if len(changes) > 20 else ""
    return f'<ul class="small wrap">{items}{more}</ul>'


def _status(p: dict[str, Any]) -> str:
    if p["success"]:
        return badge("passed")
    return badge("failed") if p.get("severity") == "critical" else badge("warned")


def _steady_pass(s: Any) -> bool:
    values = {p.get("value") for p in s.points}
    return all(p["success"] for p in s.points) and len(values) <= 1


def _steady_text(s: Any) -> str:
    v = s.points[-1].get("value")
    return f"{_fmt_num(v)} {s.measure}" if v is not None and s.measure != "value" else (
        _fmt_num(v) if v is not None else "")


def dots(points: list[dict[str, Any]], *, step: int = 7) -> str:
    """One dot per partition, green passed, red/amber failed (a strip, not a chart)."""
    width = max(step * len(points), step)
    circles = "".join(
        f'<circle cx="{step * i + step / 2:.1f}" cy="6" r="2.5" fill="{OK if p["success"] else (BAD if p.get("severity") == "critical" else WARN)}">'
        f'<title>{e(p["partition"])}: {"passed" if p["success"] else "failed"}</title></circle>'
        for i, p in enumerate(points))
    return f'<svg class="dots" width="{width}" height="12" viewBox="0 0 {width} 12">{circles}</svg>'


def table_page(target: str, summary: dict[str, Any], history: list[dict[str, Any]], next_before: int | None,
               before: int | None, links: Links) -> str:
    latest = summary["latest"]
    parts = []
    if latest:
        parts.append(f'<p>Latest: partition <code>{e(latest["partition_value"])}</code> {badge(latest["status"])} '
                     f'{fmt_int(latest["rows_loaded"])} rows, {fmt_int(latest["rows_quarantined"])} quarantined, '
                     f'{fmt_time(latest.get("published_at") or latest.get("started_at"))} · {task_cell(latest, links)}</p>')
    elif not summary["series"]:
        return page(target, f'<p>No history for <code>{e(target)}</code>.</p>', root=links.root)

    trend = summary["trend"]
    if trend:
        pts = [{"partition": r["partition_value"], "value": float(r["rows_loaded"]), "lower": r["lower"],
                "upper": r["upper"], "success": r["success"], "severity": "warning", "observed": r["rows_loaded"]}
               for r in trend]
        odd = [r for r in trend if not r["success"]]
        parts.append(f'<h2>Row counts</h2><div class="card" id="row-counts">{line_chart(pts, measure="rows", width=860)}'
                     f'<div class="small muted">last {len(trend)} published loads; dashed: median ± 4·MAD of the 14 '
                     f'before each; {len(odd)} outside it'
                     + (": " + ", ".join(f'{e(r["partition_value"])} ({fmt_int(r["rows_loaded"])})' for r in odd[-5:])
                        if odd else "") + '</div></div>')

    series = summary["series"]
    parts.append('<h2>Quality checks</h2>')
    if series:
        # A chart for every check that failed somewhere or whose value moves; the steady
        # passes (a column exists, 0 % nulls every day) as one line each, so the few that
        # matter are not lost among thirty identical charts.
        charted = [s for s in series if not _steady_pass(s)]
        steady = [s for s in series if _steady_pass(s)]
        cards = []
        for s in charted:
            fails = sum(not p["success"] for p in s.points)
            cards.append(f'<div class="card check" data-check="{e(s.key)}"><h3>{e(s.key)} {_status(s.points[-1])} '
                         f'<span class="muted small">{e(s.severity)}; failed on {fails} of {len(s.points)} '
                         f'partitions</span></h3>{line_chart(s.points, measure=s.measure)}</div>')
        if cards:
            parts.append(f'<div class="grid" id="checks">{"".join(cards)}</div>')
        if steady:
            rows = "".join(
                f'<tr class="check" data-check="{e(s.key)}"><td>{e(s.key)}</td><td>{badge(s.severity)}</td>'
                f'<td>{_status(s.points[-1])}</td><td class="small muted">{e(_steady_text(s))}</td>'
                f'<td>{dots(s.points)}</td></tr>' for s in steady)
            parts.append(f'<h3 style="margin-top:14px">Passed on every partition shown ({len(steady)})</h3>'
                         '<table id="steady-checks"><thead><tr><th>check</th><th>severity</th><th>latest</th>'
                         f'<th>observed</th><th>partitions</th></tr></thead><tbody>{rows}</tbody></table>')
    else:
        parts.append('<p class="muted">No quality results for this table.</p>')

    parts.append('<h2>Drift events</h2>')
    drift = summary["drift"]
    if drift:
        rows = "".join(
            f'<tr><td class="small">{fmt_time(d["at"])}</td><td>{e(d["kind"])}</td><td>{badge(d["decision"])}</td>'
            f'<td class="wrap">{_changes_list(d["changes"])}</td><td class="small mono wrap">{e(d.get("source"))}</td>'
            f'<td class="small">{task_cell(d, links)}</td></tr>' for d in drift)
        parts.append('<table id="drift"><thead><tr><th>when</th><th>what</th><th>decision</th><th>changes</th>'
                     f'<th>source</th><th>task</th></tr></thead><tbody>{rows}</tbody></table>')
    else:
        parts.append('<p class="muted">No drift recorded: every contract check matched.</p>')

    parts.append('<h2>Quarantine</h2>')
    quarantine = summary["quarantine"]
    if quarantine:
        rows = "".join(
            f'<tr><td class="mono">{e(q["partition_value"])}</td><td>{badge(q["status"])}</td>'
            f'<td class="num">{fmt_int(q["rows_quarantined"])} of {fmt_int(q["rows_source"])}</td>'
            '<td class="wrap small">' + "<br>".join(f'line {fmt_int(s["line"])}: {e(s["reason"])}'
                                                   for s in q.get("samples", []))
            + f'</td><td class="small">{task_cell(q, links)}</td></tr>' for q in quarantine)
        parts.append('<table id="quarantine"><thead><tr><th>partition</th><th>load</th><th>quarantined</th>'
                     f'<th>sample reasons</th><th>task</th></tr></thead><tbody>{rows}</tbody></table>')
    else:
        parts.append('<p class="muted">No rows quarantined.</p>')

    parts.append('<h2>Load history</h2>')
    rows = "".join(
        f'<tr><td class="mono">{e(h["partition_value"])}</td><td>{badge(h["status"])}</td>'
        f'<td class="num">{fmt_int(h["rows_loaded"])}</td><td class="num">{fmt_int(h["rows_quarantined"])}</td>'
        f'<td class="num">{fmt_seconds(h["duration_s"])}</td>'
        f'<td class="small">{fmt_time(h.get("published_at") or h.get("started_at"))}</td>'
        f'<td class="small mono" title="{e(h["checksum"])}">{e((h["checksum"] or "")[:12])}</td>'
        f'<td class="small wrap">{e(h["message"])}</td><td class="small">{task_cell(h, links)}</td></tr>'
        for h in history)
    pager = []
    if before:
        pager.append(f'<a href="{e(links.table(target))}">« newest</a>')
    if next_before:
        pager.append(f'<a class="next" href="{e(links.table(target, before=next_before))}">older »</a>')
    parts.append('<table id="history"><thead><tr><th>partition</th><th>status</th><th>rows</th><th>quarantined</th>'
                 '<th>duration</th><th>when</th><th>checksum</th><th>message</th><th>task</th></tr></thead>'
                 f'<tbody>{rows}</tbody></table><div class="pager">{" · ".join(pager)}</div>')
    return page(target, "".join(parts), root=links.root)


def task_page(dag_id: str, run_id: str, task_id: str, report: dict[str, list[dict[str, Any]]], links: Links) -> str:
    def cls(r: dict[str, Any]) -> str:
        return ' class="mine"' if r.get("task_id") == task_id else ""

    log = links.log(dag_id, run_id, task_id)
    parts = [f'<p>Task <b>{e(task_id)}</b> of <b>{e(dag_id)}</b>, run <code>{e(run_id)}</code> · '
             f'<a href="{e(log)}" target="_top">log in Airflow</a>. Highlighted: what this task wrote; the rest '
             'is what other tasks of the same run wrote.</p>']
    if not any(report.values()):
        parts.append('<p class="muted">safeload recorded nothing for this run.</p>')
    if report["loads"]:
        rows = "".join(
            f'<tr{cls(r)}><td><a href="{e(links.table(r["target"]))}">{e(r["target"])}</a></td>'
            f'<td class="mono">{e(r["partition_value"])}</td><td>{badge(r["status"])}</td>'
            f'<td class="num">{fmt_int(r["rows_loaded"])}</td><td class="num">{fmt_int(r["rows_quarantined"])}</td>'
            f'<td class="small wrap">{e(r["message"])}</td><td class="small">{task_cell(r, links)}</td></tr>'
            for r in report["loads"])
        parts.append('<h2>Loads</h2><table id="loads"><thead><tr><th>table</th><th>partition</th><th>status</th>'
                     '<th>rows</th><th>quarantined</th><th>message</th><th>task</th></tr></thead>'
                     f'<tbody>{rows}</tbody></table>')
    if report["checks"]:
        rows = "".join(
            f'<tr{cls(r)}><td><a href="{e(links.table(r["target"]))}">{e(r["target"])}</a></td>'
            f'<td class="mono">{e(r["partition_value"])}</td><td>{e(r["expectation_type"])}</td>'
            f'<td><code>{e(r["column_name"])}</code></td><td>{badge(r["severity"])}</td>'
            f'<td>{badge("passed") if r["success"] else badge("failed" if r["severity"] == "critical" else "warned")}</td>'
            f'<td class="small mono wrap">{e(json.dumps(r["observed_value"], default=str)[:200])}</td>'
            f'<td class="small">{task_cell(r, links)}</td></tr>' for r in report["checks"])
        parts.append('<h2>Quality checks</h2><table id="task-checks"><thead><tr><th>table</th><th>partition</th>'
                     '<th>check</th><th>column</th><th>severity</th><th>result</th><th>observed</th><th>task</th>'
                     f'</tr></thead><tbody>{rows}</tbody></table>')
    if report["contract_checks"]:
        rows = "".join(
            f'<tr{cls(r)}><td><a href="{e(links.table(r["target"]))}">{e(r["target"])}</a></td>'
            f'<td>{badge(r["decision"])}</td><td class="wrap">{_changes_list(r["changes"]) if r["changes"] else "no drift"}'
            f'</td><td class="small">{task_cell(r, links)}</td></tr>' for r in report["contract_checks"])
        parts.append('<h2>Contract checks</h2><table id="task-contracts"><thead><tr><th>table</th><th>decision</th>'
                     f'<th>changes</th><th>task</th></tr></thead><tbody>{rows}</tbody></table>')
    return page(f"{dag_id} / {task_id}", "".join(parts), root=links.root)


def error_page(message: str, *, root: str) -> str:
    return page("error", f'<p>{e(message)}</p>', root=root)
