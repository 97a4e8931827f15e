"""Render the example alerts of docs/alerts.md from the payloads safeload really sends.

The notifiers run as Airflow calls them (a real DAG, task contexts, a real chained
exception) against the local Slack of tests/slack_server.py, over HTTP. What that
server received is written to ``docs/alerts/examples.json`` and drawn as Slack draws
Block Kit (header, sections, fields, context), one PNG per message kind, by Debian's
chromium driven by Playwright (``playwright`` is in requirements-dev.txt; no browser is
downloaded).

    .venv/bin/python docs/alerts/render_examples.py            # examples.json and the PNGs
    .venv/bin/python docs/alerts/render_examples.py --no-images

tests/integration/alerts/test_alert_examples.py builds the payloads again and compares
them with examples.json: a change to a message fails it until this script is re-run.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

#: The moment of the story: 2024-05-02 02:14 UTC, the night after 2024-05-01.
NOW = datetime(2024, 5, 2, 2, 14, tzinfo=timezone.utc)
BASE_URL = "https://airflow.example.com"
CONTACTS = {"owners": {"data-platform": "<!subteam^S0DATAPLT|@data-oncall>", "payments-team": "U0PAYMENTS"}}

#: The DAG author's code whose failure the example shows, as if in the DAGs folder.
DAG_CODE = '''
def open_connection(host):
    raise ConnectionRefusedError(f"connection to {host}:5432 refused")


def read_partition(day):
    try:
        open_connection("warehouse.internal")
    except ConnectionRefusedError as refused:
        raise OSError(f"could not read orders for {day}: the warehouse is unreachable") from refused


def extract_orders(day):
    try:
        read_partition(day)
    except OSError as failed:
        raise RuntimeError(f"extract of orders failed for partition {day}: 3 of 8 files missing") from failed
'''

EXAMPLES = [  # name, what the doc says it is
    ("failure", "a task failed for good (Web API)"),
    ("also", "a second task of the same run failed: one line in the first message's thread"),
    ("repeat", "the same task failed again in the next run: in the thread"),
    ("recovery", "both tasks succeeded: one summary in the thread"),
    ("retry", "a try that Airflow will retry (only with retry alerts on)"),
    ("dag_failure", "the DAG-level message of a run whose further failures were folded"),
    ("failure_webhook", "a failure through an incoming webhook (no thread)"),
    ("quality_summary", "a load's summary"),
]


@contextmanager
def environment(values: dict[str, str | None]):
    """Set (or, with ``None``, remove) environment variables; restore them on exit."""
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _dag(dag_id: str, *, owner: str = "data-platform", dag_callback: bool = False):
    from airflow.sdk import DAG, Asset, task
    from safeload.alerts.notifiers import send_failure_alert

    doc = "Daily orders into `public.orders`.\n\nOn failure: [Runbook](https://wiki.example.com/runbooks/orders-daily)"
    with DAG(dag_id, schedule=None, start_date=NOW - timedelta(days=30), doc_md=doc,
             on_failure_callback=[send_failure_alert()] if dag_callback else None,
             default_args={"owner": owner, "retries": 0}) as dag:
        tasks = {name: task(task_id=name)(lambda: None)() for name in
                 ("extract_orders", "extract_payments", "check", "publish", "summary")}
        load = task(task_id="load", outlets=[Asset("warehouse.orders")])(lambda: None)()
        [tasks["extract_orders"], tasks["extract_payments"]] >> load >> tasks["check"] >> tasks["publish"]
        tasks["publish"] >> tasks["summary"]
    return dag


def _error() -> BaseException:
    namespace: dict[str, Any] = {}
    exec(compile(DAG_CODE, "/opt/airflow/dags/orders_daily.py", "exec"), namespace)  # noqa: S102 (our own text)
    try:
        namespace["extract_orders"]("2024-05-01")
    except RuntimeError as error:
        return error
    raise AssertionError("unreachable")


def _context(dag, task_id: str, run_id: str, *, state: str = "failed", try_number: int = 1, max_tries: int = 0,
             error: BaseException | None = None, seconds: float = 14.0) -> dict[str, Any]:
    logical = datetime.fromisoformat(run_id.split("__")[1])
    ti = SimpleNamespace(
        dag_id=dag.dag_id, task_id=task_id, run_id=run_id, try_number=try_number, max_tries=max_tries,
        state=state, start_date=NOW - timedelta(seconds=seconds), end_date=NOW, map_index=-1,
        log_url=f"{BASE_URL}/dags/{dag.dag_id}/runs/{run_id}/tasks/{task_id}?try_number={try_number}",
    )
    ctx = {"dag": dag, "task": dag.task_dict[task_id], "ti": ti, "task_instance": ti, "run_id": run_id,
           "logical_date": logical}
    if state != "success":
        ctx["exception"] = error if error is not None else ValueError(
            f"{task_id}: payments/2024-05-01.csv has 3 columns; the contract include/contracts/payments.yaml has 4")
    return ctx


def _dag_context(dag, run_id: str, reason: str = "task_failure") -> dict[str, Any]:
    dag_run = SimpleNamespace(dag_id=dag.dag_id, run_id=run_id, logical_date=datetime.fromisoformat(run_id.split("__")[1]),
                              start_date=NOW - timedelta(minutes=6), end_date=NOW, run_after=NOW)
    return {"dag": dag, "dag_run": dag_run, "run_id": run_id, "reason": reason}


def _fire(notifier, context: dict[str, Any], minutes: float) -> None:
    notifier.clock = lambda: (NOW + timedelta(minutes=minutes)).timestamp()
    notifier(context)


def build_examples() -> list[dict[str, Any]]:
    """Run the notifiers against the local Slack; return what it received, one per example."""
    from safeload.alerts import notifiers as n
    from slack_server import FakeSlack

    state = Path(tempfile.mkdtemp(prefix="safeload-alert-examples-"))
    captured: dict[str, dict[str, Any]] = {}
    try:
        with FakeSlack() as slack, environment({
            "AIRFLOW_CONN_SLACK_ALERTS": slack.web_api_conn(channel="#data-alerts", contacts=CONTACTS),
            "AIRFLOW_CONN_WAREHOUSE": None, "AIRFLOW__SAFELOAD__ALERT_STATE_CONN_ID": "file",
            "SAFELOAD_ALERT_STATE_DIR": str(state), "SAFELOAD_ALERT_RETRIES": "1",
            "AIRFLOW__API__BASE_URL": BASE_URL, "AIRFLOW__SAFELOAD__DEPLOYMENT_NAME": "production",
            "AIRFLOW__SAFELOAD__ALERT_CONTACTS": None, "AIRFLOW__CORE__DAGS_FOLDER": "/opt/airflow/dags",
            "SAFELOAD_ALERT_WINDOW": None,
        }):
            def take(name: str) -> None:
                post = slack.posts()[-1]
                captured[name] = {"text": post.body["text"], "blocks": post.blocks,
                                  "thread": post.thread_ts is not None}

            orders = _dag("orders_daily")
            run1, run2, run3 = (f"scheduled__2024-05-0{d}T00:00:00+00:00" for d in (1, 2, 3))
            _fire(n.send_failure_alert(), _context(orders, "extract_orders", run1, error=_error()), 0)
            take("failure")
            _fire(n.send_failure_alert(), _context(orders, "extract_payments", run1), 1)
            take("also")
            _fire(n.send_failure_alert(), _context(orders, "extract_orders", run2, error=_error()), 30)
            take("repeat")
            for task_id in ("extract_orders", "extract_payments"):
                _fire(n.send_recovery_alert(), _context(orders, task_id, run3, state="success"), 62)
            take("recovery")

            payments = _dag("payments_incremental", owner="payments-team")
            _fire(n.send_retry_alert(), _context(payments, "extract_payments", run1, state="up_for_retry",
                                                 max_tries=2), 3)
            take("retry")

            wide = _dag("customers_scd2", dag_callback=True)
            for task_id in ("extract_orders", "extract_payments", "check"):
                _fire(n.send_failure_alert(), _context(wide, task_id, run1), 4)
            _fire(n.send_failure_alert(), _dag_context(wide, run1), 5)
            take("dag_failure")

            n.send_quality_summary(QUALITY_SUMMARY, context=_context(orders, "summary", run1, state="success"))
            take("quality_summary")

        with FakeSlack() as slack, environment({
            "AIRFLOW_CONN_SLACK_ALERTS": slack.webhook_conn(), "AIRFLOW__SAFELOAD__ALERT_STATE_CONN_ID": "file",
            "SAFELOAD_ALERT_STATE_DIR": str(state / "webhook"), "AIRFLOW__API__BASE_URL": BASE_URL,
            "AIRFLOW__SAFELOAD__ALERT_CONTACTS": json.dumps(CONTACTS), "AIRFLOW_CONN_WAREHOUSE": None,
            "AIRFLOW__SAFELOAD__DEPLOYMENT_NAME": "staging", "AIRFLOW__CORE__DAGS_FOLDER": "/opt/airflow/dags",
        }):
            _fire(n.send_failure_alert(), _context(_dag("orders_daily"), "load", run1), 0)
            take("failure_webhook")
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return [{"name": name, "about": about, **captured[name]} for name, about in EXAMPLES]


QUALITY_SUMMARY = {
    "table": "public.orders", "partition": "2024-05-01",
    "load": {"rows_source": 48213, "rows_loaded": 48190, "rows_quarantined": 23, "rows_replaced": 47011,
             "status": "published"},
    "drift": {"decision": "warn", "policy": "warn", "changes": [
        {"kind": "added", "column": "coupon_code", "class": "additive", "detail": "text, nullable",
         "action": "loaded without it; add it to the contract to keep it"}]},
    "quality": {"success": True, "results": [
        {"type": "expect_column_values_to_not_be_null", "column": "amount", "success": False,
         "severity": "warning", "observed_value": 23, "expected": "0 nulls"},
        {"type": "expect_column_values_to_be_unique", "column": "order_id", "success": True, "severity": "critical"},
        {"type": "expect_table_row_count_to_be_between", "success": True, "severity": "critical"}]},
}


# ---------------------------------------------------------------------------- drawing


def mrkdwn(text: str) -> str:
    """Slack's mrkdwn as HTML: code, links, mentions, bold, italic, line breaks."""
    parts = re.split(r"(```.*?```)", text, flags=re.S)
    out = []
    for part in parts:
        if part.startswith("```") and part.endswith("```") and len(part) >= 6:
            out.append(f"<pre>{part[3:-3]}</pre>")
            continue
        if out and out[-1].startswith("<pre>"):
            part = part.removeprefix("\n")  # the block already ends the line
        chunks = re.split(r"(`[^`\n]+`)", part)
        for chunk in chunks:
            if chunk.startswith("`") and chunk.endswith("`") and len(chunk) > 1:
                out.append(f"<code>{_angles(chunk[1:-1])}</code>")
                continue
            chunk = _angles(chunk)
            chunk = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"<b>\1</b>", chunk)
            chunk = re.sub(r"(?<![\w_])_([^_\n]+)_(?![\w_])", r"<i>\1</i>", chunk)
            out.append(chunk)
    return "".join(out).replace("\n", "<br>")


def _angles(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        inner = m.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return f'<span class="mention">@{html.escape(label or target[1:])}</span>'
        if target.startswith("!subteam^"):
            return f'<span class="mention">{html.escape(label or "@" + target[9:])}</span>'
        if target.startswith("!"):
            return f'<span class="mention">@{html.escape(target[1:])}</span>'
        return f'<a href="{html.escape(target)}">{html.escape(label or target)}</a>'

    return re.sub(r"<([^<>]+)>", repl, text)


def block_html(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind == "header":
        return f'<div class="header">{html.escape(block["text"]["text"])}</div>'
    if kind == "divider":
        return "<hr>"
    if kind == "context":
        return '<div class="context">' + " ".join(f"<span>{mrkdwn(e['text'])}</span>" for e in block["elements"]) \
            + "</div>"
    parts = []
    if block.get("text"):
        parts.append(f'<div class="text">{mrkdwn(block["text"]["text"])}</div>')
    if block.get("fields"):
        parts.append('<div class="fields">' + "".join(f"<div>{mrkdwn(f['text'])}</div>" for f in block["fields"])
                     + "</div>")
    return f'<div class="section">{"".join(parts)}</div>'


PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: #fff; font: 15px/1.46 "DejaVu Sans", "Noto Color Emoji", sans-serif; color: #1d1c1d; }}
.message {{ display: flex; gap: 10px; padding: 14px 18px; width: 760px; box-sizing: border-box; }}
.avatar {{ width: 36px; height: 36px; border-radius: 6px; background: #2b6cb0; color: #fff; font-weight: bold;
          display: flex; align-items: center; justify-content: center; flex: none; }}
.meta {{ margin-bottom: 2px; }} .meta b {{ margin-right: 6px; }}
.badge {{ font-size: 10px; background: #e8e8e8; color: #616061; padding: 1px 3px; border-radius: 2px; }}
.time, .thread {{ color: #616061; font-size: 12px; margin-left: 6px; }}
.thread {{ margin: 0 0 4px 0; display: block; }}
.header {{ font-size: 18px; font-weight: 900; margin: 4px 0 6px; }}
.section {{ margin: 6px 0; }} .fields {{ display: grid; grid-template-columns: 1fr 1fr; gap: 6px 16px; margin-top: 4px; }}
.context {{ color: #616061; font-size: 12.5px; margin: 6px 0; }} .context span {{ margin-right: 10px; }}
code {{ font-family: "DejaVu Sans Mono", monospace; font-size: 12px; color: #c01343; background: #f6f6f6;
        border: 1px solid #e1e1e1; border-radius: 3px; padding: 0 2px; }}
pre {{ font-family: "DejaVu Sans Mono", monospace; font-size: 12px; background: #f8f8f8; border: 1px solid #e1e1e1;
       border-radius: 4px; padding: 8px; white-space: pre-wrap; margin: 4px 0; }}
a {{ color: #1264a3; text-decoration: none; }}
.mention {{ background: #e8f5fa; color: #1264a3; border-radius: 3px; padding: 0 2px; }}
hr {{ border: none; border-top: 1px solid #ddd; }}
</style></head><body>{body}</body></html>"""


def message_html(example: dict[str, Any]) -> str:
    thread = '<span class="thread">replied to a thread</span>' if example["thread"] else ""
    blocks = "".join(block_html(b) for b in example["blocks"])
    return (f'<div class="message" id="{example["name"]}"><div class="avatar">s</div><div>{thread}'
            f'<div class="meta"><b>safeload</b><span class="badge">APP</span><span class="time">2:14 AM</span>'
            f"</div>{blocks}</div></div>")


def draw(examples: list[dict[str, Any]], out: Path, chromium: str) -> list[Path]:
    """One PNG per example, drawn by chromium."""
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=flags, timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 760, "height": 800}, device_scale_factor=1.5)
            page.set_content(PAGE.format(body="".join(message_html(e) for e in examples)))
            for example in examples:
                path = out / f"{example['name']}.png"
                page.locator(f"#{example['name']}").screenshot(path=str(path))
                written.append(path)
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-images", action="store_true", help="write examples.json only")
    parser.add_argument("--chromium", default=os.environ.get("SAFELOAD_CHROMIUM") or shutil.which("chromium")
                        or "/usr/bin/chromium")
    args = parser.parse_args(argv)
    with environment({"AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME") or tempfile.mkdtemp(prefix="safeload-af-")}):
        examples = build_examples()
    (HERE / "examples.json").write_text(json.dumps(examples, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {HERE / 'examples.json'} ({len(examples)} messages)")
    if not args.no_images:
        for path in draw(examples, HERE, args.chromium):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
