"""Slack message builders: content, wording, and Slack's limits under hostile input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safeload.alerts import messages as m
from safeload.alerts.messages import TaskEvent

EVENT = TaskEvent(
    dag_id="orders_daily",
    task_id="load",
    run_id="scheduled__2024-05-01T00:00:00+00:00",
    logical_date="2024-05-01T00:00:00+00:00",
    try_number=3,
    max_tries=2,
    duration=72.4,
    exception="LockTimeoutError: lock on public.orders not granted within 30 s",
    log_url="http://localhost:8080/dags/orders_daily/runs/r1/tasks/load?try_number=3",
    owner="data-platform",
)

SUMMARY = {
    "dag_id": "orders_daily",
    "run_id": "scheduled__2024-05-01T00:00:00+00:00",
    "logical_date": "2024-05-01",
    "table": "public.orders",
    "partition": "2024-05-01",
    "load": {
        "rows_source": 1000,
        "rows_loaded": 998,
        "rows_quarantined": 2,
        "rows_replaced": 1000,
        "checksum": "abc",
        "status": "published",
    },
    "drift": {
        "decision": "warn",
        "policy": "warn",
        "changes": [
            {
                "kind": "added",
                "column": "coupon",
                "class": "additive",
                "detail": "new column coupon text",
                "action": "loaded without it; add it to the contract",
            }
        ],
    },
    "quality": {
        "success": True,
        "results": [
            {
                "type": "expect_column_values_to_not_be_null",
                "column": "amount",
                "success": False,
                "severity": "warning",
                "observed_value": 3,
                "expected": "0 nulls",
            },
            {
                "type": "expect_column_values_to_be_unique",
                "column": "order_id",
                "success": False,
                "severity": "critical",
                "observed_value": 4,
                "expected": "0 duplicates",
            },
            {
                "type": "expect_table_row_count_to_be_between",
                "success": True,
                "severity": "critical",
            },
        ],
    },
    "log_url": "http://localhost:8080/dags/orders_daily/runs/r1/tasks/summary",
}


def all_text(message: m.Message) -> str:
    """The fallback and every text in the blocks, as Slack would show them."""
    parts = [message.text]

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                parts.append(v) if k == "text" and isinstance(v, str) else walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(message.blocks)
    return "\n".join(parts)


def header_of(message: m.Message) -> str:
    return next(b["text"]["text"] for b in message.blocks if b["type"] == "header")


# --------------------------------------------------------------------------- failure


def test_failure_message_has_what_the_on_call_person_needs():
    message = m.failure_message(EVENT)
    text = all_text(message)
    for expected in (
        "orders_daily",
        "load",
        "2024-05-01T00:00:00+00:00",
        "3 of 3",
        "final: no retries left",
        "1 min 12 s",
        "LockTimeoutError: lock on public.orders not granted within 30 s",
        "<http://localhost:8080/dags/orders_daily/runs/r1/tasks/load?try_number=3|Open the task log>",
        "data-platform",
        "first failure in the last hour",
    ):
        assert expected in text, expected
    assert header_of(message) == "🔴 Failed: orders_daily.load"
    assert message.text.startswith(
        "Failed: orders_daily.load (final, try 3 of 3): LockTimeoutError"
    )
    assert message.kind == "failure"
    assert m.limit_violations(message) == []


def test_failure_that_will_be_retried_reads_differently():
    message = m.failure_message(TaskEvent(**{**EVENT.__dict__, "try_number": 1, "final": False}))
    assert header_of(message) == "🟠 Failed, will retry: orders_daily.load"
    assert "1 of 3, will be retried" in all_text(message)
    assert "no retries left" not in all_text(message)
    assert message.text.startswith("Failed, will retry: orders_daily.load (will retry, try 1 of 3)")


def test_repeat_within_and_after_the_window_is_told_apart_from_a_first_failure():
    again = m.failure_message(EVENT, count=3)
    assert header_of(again) == "🔴 Failed again: orders_daily.load"
    assert "3rd failure in the last hour" in all_text(again)
    still = m.failure_message(EVENT, count=1, incident_count=14, incident_start=1714521600.0)
    assert "14th failure since 2024-05-01 00:00 UTC; still failing" in all_text(still)


def test_repeat_line():
    message = m.repeat_message(EVENT, count=3)
    assert "failed again, 3rd time in the last hour" in message.text
    assert "try 3 of 3, final" in message.text
    assert len(message.blocks) == 2
    assert m.limit_violations(message) == []


def test_failure_without_exception_says_where_to_look():
    message = m.failure_message(TaskEvent(dag_id="d", task_id="t"))
    assert "No exception was recorded (the worker may have been killed)" in all_text(message)
    assert "no log link available" in all_text(message)
    assert m.limit_violations(message) == []


def test_mapped_task_and_mrkdwn_escaping():
    event = TaskEvent(
        dag_id="d",
        task_id="t",
        map_index=7,
        exception="bad <tag> & `tick` ```fence```",
        owner="a<b>",
    )
    text = all_text(m.failure_message(event))
    assert "d.t[7]" in text
    assert "bad &lt;tag&gt; &amp;" in text
    assert "a&lt;b&gt;" in text
    assert "```fence```" not in text.split("*Error*")[1].split("```", 1)[1].rsplit("```", 1)[0]


def test_long_exception_is_cut_with_a_marker_keeping_head_and_tail():
    exc = "ValueError: " + "x" * 20000 + " THE END"
    message = m.failure_message(TaskEvent(dag_id="d", task_id="t", exception=exc))
    error = next(
        b["text"]["text"] for b in message.blocks if "*Error*" in b.get("text", {}).get("text", "")
    )
    assert "characters cut; the full text is in the task log" in error
    assert error.count("ValueError: ") == 1 and "THE END" in error
    assert len(error) < m.MAX_EXCEPTION_TEXT + 50
    assert m.limit_violations(message) == []


def test_link_with_pipe_and_angle_brackets_cannot_break_out():
    assert m.link("http://h/a|b>c", "log") == "<http://h/a%7Cb%3Ec|log>"


# --------------------------------------------------------------------------- the 3 AM message

INCIDENT = TaskEvent(
    **{
        **EVENT.__dict__,
        "exception": "RuntimeError: load of orders failed for partition 2024-01-02",
        "causes": ("OperationalError: connection failed", "ConnectionRefusedError: db:5432 refused"),
        "location": "dags/orders_daily.py:42 in load",
        "mention": "<!subteam^S0123ABCD>",
        "runbook": "https://wiki.example.com/runbooks/orders",
        "blocked_tasks": ("check", "publish", "summary"),
        "blocked_assets": ("warehouse.orders",),
        "other_failed": ("extract_payments",),
        "deployment": "production",
    }
)


def test_failure_message_carries_cause_who_what_it_blocks_and_where():
    message = m.failure_message(INCIDENT)
    text = all_text(message)
    for expected in (
        "<!subteam^S0123ABCD> root cause `ConnectionRefusedError: db:5432 refused` raised at "
        "`dags/orders_daily.py:42 in load`",
        "*Caused by*\n↳ `OperationalError: connection failed`\n↳ `ConnectionRefusedError: db:5432 refused` "
        "(root cause)",
        "*Blocks* 3 downstream tasks: `check`, `publish`, `summary`",
        "*Assets not updated* (1): `warehouse.orders`",
        "*Also failed in this run* (1): `extract_payments`",
        "<https://wiki.example.com/runbooks/orders|Runbook>",
        "*Deployment*\nproduction",
        "*Owner*\ndata-platform · <!subteam^S0123ABCD>",
    ):
        assert expected in text, expected
    assert m.limit_violations(message) == []


def test_the_fallback_text_carries_the_same_essentials():
    text = m.failure_message(INCIDENT).text
    assert text.startswith("[production] Failed: orders_daily.load (final, try 3 of 3): RuntimeError: load of")
    for expected in (
        "root cause: ConnectionRefusedError: db:5432 refused",
        "raised at dags/orders_daily.py:42 in load",
        "blocks 3 task(s) and 1 asset(s): check, publish, summary",
        "also failed in this run: extract_payments",
        "<!subteam^S0123ABCD>",
        "Runbook: https://wiki.example.com/runbooks/orders",
        "Log: http://localhost:8080/dags/orders_daily/runs/r1/tasks/load?try_number=3",
    ):
        assert expected in text, expected
    assert len(text) <= m.MAX_FALLBACK_TEXT


def test_webhook_wording_does_not_promise_a_thread():
    threaded, webhook = all_text(m.failure_message(EVENT)), all_text(m.failure_message(EVENT, threads=False))
    assert "folded into this message's thread" in threaded
    assert "thread" not in webhook.replace("cannot reply in a thread", "")
    assert "a short line follows at the 2nd, 3rd, 5th, 10th… (a webhook cannot reply in a thread)" in webhook


def test_also_failed_line_names_every_failed_task_of_the_run():
    event = TaskEvent(**{**INCIDENT.__dict__, "task_id": "load_payments", "other_failed": ("load",)})
    in_thread = m.also_message(event, first="load")
    assert "➕ *orders_daily.load_payments* also failed in this run" in all_text(in_thread)
    assert "Failed tasks of this run so far (2): `load`, `load_payments`" in all_text(in_thread)
    assert "failed tasks of this run so far: load, load_payments." in in_thread.text.lower()
    top_level = m.also_message(event, first="load", threads=False)
    assert "in run `scheduled__2024-05-01T00:00:00+00:00`" in all_text(top_level)
    assert "The run's first alert: `load`" in all_text(top_level)


def test_digest_sends_the_replies_that_waited_as_one():
    message = m.digest_message("orders_daily", [
        {"task_id": "check", "action": "also", "error": "`ValueError: x`", "tries": "1 of 1"},
        {"task_id": "load", "action": "repeat", "count": 2, "log_url": "http://h/l"},
    ], deployment="staging")
    text = all_text(message)
    assert "➕ *orders_daily.check* also failed in this run (try 1 of 1)" in text
    assert "🔁 *orders_daily.load* failed again, 2nd time in the last hour · <http://h/l|log>" in text
    assert message.text == "[staging] orders_daily: also failed in this run: check; failed again: load"


def test_one_recovery_summary_for_everything_a_message_announced():
    message = m.recovery_message(TaskEvent(dag_id="orders_daily", task_id="c"), failures=5, since=1714521600.0,
                                 now=1714521600.0 + 600, members=[("a", 3), ("b", 1), ("c", 1)])
    assert "all 3 failed tasks this message announced have succeeded" in all_text(message)
    assert "Resolves: `a` (3), `b` (1), `c` (1)" in all_text(message)
    assert message.text.startswith("Resolved: orders_daily: 3 task(s) succeeded after 5 failures since")


def test_notices_are_said_in_the_message():
    event = TaskEvent(**{**EVENT.__dict__, "notices": ("links point at localhost because [api] base_url is not set",)})
    assert "⚠️ links point at localhost because [api] base_url is not set" in all_text(m.failure_message(event))


# --------------------------------------------------------------------------- retry, recovery, dag


def test_retry_message():
    message = m.retry_message(TaskEvent(**{**EVENT.__dict__, "try_number": 1, "final": False}))
    assert message.text.startswith("Retrying orders_daily.load: try 1 of 3 failed")
    assert "Airflow will retry" in all_text(message)


def test_recovery_message():
    message = m.recovery_message(
        TaskEvent(dag_id="orders_daily", task_id="load", try_number=1, max_tries=2),
        failures=3,
        since=1714521600.0,
        now=1714521600.0 + 3720,
    )
    assert message.text == (
        "Resolved: orders_daily.load succeeded on try 1 of 3 after 3 failures since 2024-05-01 00:00 UTC (1 h 02 min)."
    )
    assert "✅ *Resolved: orders_daily.load*" in all_text(message)


def test_dag_recovery_lists_the_tasks_it_resolves():
    message = m.recovery_message(
        TaskEvent(dag_id="orders_daily"), failures=1, since=None, now=0, tasks=["a", "b"]
    )
    assert "Resolves: `a`, `b`" in all_text(message)


def test_dag_failure_message_lists_failed_and_folded_tasks():
    event = TaskEvent(
        dag_id="orders_daily", run_id="r1", reason="task_failure", owner="data-platform"
    )
    message = m.dag_failure_message(
        event, failed_tasks=["extract", "load", "check"], folded=["load", "check"]
    )
    text = all_text(message)
    assert header_of(message) == "🔴 DAG run failed: orders_daily"
    assert "*Failed tasks* (3)" in text
    assert "• `extract`\n• `load` (no separate alert)\n• `check` (no separate alert)" in text
    assert "a task failed" in text
    assert (
        message.text
        == "DAG run failed: orders_daily (a task failed); failed tasks: extract, load, check"
    )


def test_dag_failure_with_thousands_of_tasks_stays_within_limits():
    tasks = [f"task_{i:05d}_" + "y" * 60 for i in range(3000)]
    message = m.dag_failure_message(TaskEvent(dag_id="big", reason="timed_out"), failed_tasks=tasks)
    assert m.limit_violations(message) == []
    assert "more (see the task log)" in all_text(message)


# --------------------------------------------------------------------------- quality summary


def test_quality_summary_has_rows_checks_and_drift():
    message = m.quality_summary_message(SUMMARY)
    text = all_text(message)
    assert header_of(message) == "❌ Load summary: public.orders 2024-05-01"
    for expected in (
        "998 of 1,000",
        "2 (0.20%)",
        "`published`",
        "1,000",
        "*Quality*: 1 failed, 1 warned, 1 passed (3 checks)",
        "❌ `expect_column_values_to_be_unique` on `order_id` (critical): observed `4`, expected `0 duplicates`",
        "⚠️ `expect_column_values_to_not_be_null` on `amount` (warning): observed `3`, expected `0 nulls`",
        "*Schema drift*: 1 change, policy `warn`, decision `warn`",
        "• added `coupon` (additive): new column coupon text → loaded without it; add it to the contract",
        "<http://localhost:8080/dags/orders_daily/runs/r1/tasks/summary|Open the task log>",
    ):
        assert expected in text, expected
    assert message.text.startswith(
        "❌ Load summary public.orders 2024-05-01: 998 of 1,000 rows loaded, 2 (0.20%)"
    )
    assert m.limit_violations(message) == []


@pytest.mark.parametrize(
    ("summary", "icon"),
    [
        pytest.param(
            {"load": {"status": "published"}, "quality": {"results": []}}, "✅", id="clean"
        ),
        pytest.param(
            {"drift": {"decision": "warn", "changes": [{"kind": "added", "column": "c"}]}},
            "⚠️",
            id="drift-warn",
        ),
        pytest.param(
            {"quality": {"results": [{"success": False, "severity": "warning"}]}}, "⚠️", id="warned"
        ),
        pytest.param({"load": {"status": "refused"}}, "❌", id="refused"),
        pytest.param({"drift": {"decision": "fail", "changes": []}}, "❌", id="drift-fail"),
    ],
)
def test_quality_summary_icon(summary, icon):
    assert header_of(m.quality_summary_message(summary)).startswith(icon)


@pytest.mark.parametrize(
    "summary",
    [
        pytest.param({}, id="empty"),
        pytest.param(None, id="none"),
        pytest.param("not a dict", id="string"),
        pytest.param(
            {"load": None, "drift": [], "quality": {"results": [None, 3, "x", {}]}},
            id="junk-values",
        ),
        pytest.param(
            {"quality": {"results": [{"success": False, "observed_value": {"a": [1] * 5000}}]}},
            id="huge-observed",
        ),
    ],
)
def test_quality_summary_tolerates_missing_and_odd_keys(summary):
    message = m.quality_summary_message(summary)
    assert m.limit_violations(message) == []
    assert message.text


def test_quality_summary_with_many_results_is_bounded():
    results = [
        {
            "type": f"expect_{i}_" + "z" * 100,
            "column": "c" * 200,
            "success": False,
            "observed_value": "o" * 500,
            "expected": "e" * 500,
        }
        for i in range(500)
    ]
    changes = [
        {"kind": "added", "column": f"col{i}", "detail": "d" * 400, "action": "a" * 400}
        for i in range(300)
    ]
    message = m.quality_summary_message(
        {"quality": {"results": results}, "drift": {"changes": changes}}
    )
    assert m.limit_violations(message) == []
    text = all_text(message)
    assert "475 more failed or warned checks" in text
    assert "275 more changes" in text


# --------------------------------------------------------------------------- helpers and limits


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (101, "101st"),
        (111, "111th"),
        (1000, "1000th"),
    ],
)
def test_ordinal(n, text):
    assert m.ordinal(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "unknown"),
        (-1, "unknown"),
        (0.25, "250 ms"),
        (42, "42 s"),
        (192, "3 min 12 s"),
        (7500, "2 h 05 min"),
        (3 * 86400 + 4 * 3600, "3 d 4 h"),
        (float("nan"), "unknown"),
    ],
)
def test_human_duration(seconds, text):
    assert m.human_duration(seconds) == text


def test_fit_caps_blocks_and_total_text():
    blocks = [m.section("s" * 2900) for _ in range(80)]
    fitted = m.fit(m.Message(text="t" * 50000, blocks=blocks))
    assert len(fitted.blocks) == m.MAX_BLOCKS
    assert "31 more blocks cut" in json.dumps(fitted.blocks[-1])
    assert m.limit_violations(fitted) == []


def test_limit_violations_finds_each_problem():
    bad = m.Message(
        text="",
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11},
        ]
        + [{"type": "divider"}] * 48,
    )
    problems = m.limit_violations(bad)
    assert any("no fallback text" in p for p in problems)
    assert any("51 blocks" in p for p in problems)
    assert any("header of 151" in p for p in problems)
    assert any("section text of 3001" in p for p in problems)
    assert any("11 fields" in p for p in problems)


texts = st.text(min_size=0, max_size=6000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dag_id=st.text(min_size=1, max_size=400),
    task_id=st.one_of(st.none(), st.text(min_size=1, max_size=400)),
    exception=st.one_of(st.none(), texts),
    log_url=st.one_of(st.none(), st.text(max_size=3000)),
    owner=st.one_of(st.none(), st.text(max_size=3000)),
    count=st.integers(min_value=1, max_value=10**6),
    try_number=st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
    max_tries=st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
    many=st.lists(st.text(max_size=300), max_size=400),
)
def test_every_builder_stays_within_slack_limits(
    dag_id, task_id, exception, log_url, owner, count, try_number, max_tries, many
):
    event = TaskEvent(
        dag_id=dag_id,
        task_id=task_id,
        run_id=dag_id * 3,
        logical_date=owner,
        exception=exception,
        log_url=log_url,
        owner=owner,
        try_number=try_number,
        max_tries=max_tries,
        reason=owner,
        causes=tuple(many[:8]),
        location=owner,
        mention=owner,
        runbook=log_url,
        blocked_tasks=tuple(many),
        blocked_assets=tuple(many),
        other_failed=tuple(many),
        deployment=owner,
        notices=tuple(many[:3]),
    )
    built = [
        m.failure_message(event, count=count, incident_count=count * 2, incident_start=0.0),
        m.failure_message(event, threads=False),
        m.also_message(event, first=owner, threads=False),
        m.digest_message(dag_id, [{"task_id": t, "action": "repeat", "count": count, "error": exception,
                                   "tries": owner, "log_url": log_url} for t in many]
                         + [{"task_id": "", "tasks": many}], deployment=owner),
        m.repeat_message(event, count=count),
        m.retry_message(event),
        m.recovery_message(event, failures=count, since=0.0, now=1.0, tasks=[dag_id] * 50),
        m.recovery_message(event, failures=count, since=0.0, now=1.0, members=[(t, count) for t in many]),
        m.dag_failure_message(event, failed_tasks=[dag_id] * 100, folded=[dag_id]),
        m.quality_summary_message(
            {
                "table": dag_id,
                "partition": owner,
                "load": {"status": exception},
                "log_url": log_url,
                "quality": {
                    "results": [
                        {
                            "type": dag_id,
                            "column": owner,
                            "success": False,
                            "observed_value": exception,
                            "expected": log_url,
                        }
                    ]
                    * 40
                },
                "drift": {"changes": [{"kind": dag_id, "column": owner, "detail": exception}] * 40},
            }
        ),
    ]
    for message in built:
        assert m.limit_violations(message) == [], message.kind
        json.dumps(message.payload())  # serialisable


#: The pure modules: no Airflow import, tested on plain data.
PURE = ["blocks", "event", "causes", "contacts", "impact", "details", "messages", "load_summary", "rules",
        "store", "store_file", "store_postgres", "throttle"]


def test_pure_alert_modules_import_no_airflow():
    modules = ", ".join(f"safeload.alerts.{name}" for name in PURE)
    code = f"import sys, {modules}; print(any(k == 'airflow' or k.startswith('airflow.') for k in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


#: What the alert modules may import when a DAG file imports them. Everything else
#: (slack_sdk ~1 s, the Slack provider, GX, pandas) is imported inside the function
#: that needs it, so parsing a DAG that uses the notifiers stays cheap.
TOP_LEVEL_ALLOWED = {"airflow.sdk", "airflow.listeners", "safeload.alerts", "__future__"}


@pytest.mark.parametrize("module", [*PURE, "transport", "settings", "context", "notifiers", "listener"])
def test_alert_modules_import_only_cheap_things_at_module_level(module):
    import ast
    import threading
    from pathlib import Path

    import safeload.alerts

    # CPython 3.11's parser is not safe against a thread compiling at the same time
    # (tests/integration/alerts/conftest.py warms Airflow's API up in one): wait for it
    for thread in threading.enumerate():
        if thread.name == "safeload-execution-api-warm-up":
            thread.join(timeout=120)
    path = Path(safeload.alerts.__file__).parent / f"{module}.py"
    tree = ast.parse(path.read_text())
    names = []
    for node in tree.body:  # module level only; TYPE_CHECKING blocks are skipped
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    third_party = [
        n
        for n in names
        if n.split(".")[0] not in sys.stdlib_module_names
        and not any(n.startswith(a) for a in TOP_LEVEL_ALLOWED)
    ]
    assert third_party == [], f"{module}.py imports {third_party} at module level"
    if module in PURE:
        assert not any(n.startswith("airflow") for n in names)
