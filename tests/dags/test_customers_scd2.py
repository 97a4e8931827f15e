"""customers_scd2 under dag.test(): a backfill out of order and a re-run give one consistent history;
a drifted, empty or bad snapshot is stopped, the dimension does not move, and Slack hears of it."""

from __future__ import annotations

import datetime as dt

import pendulum
import psycopg
import pytest

from tests.dags.conftest import load_dag
from tests.slack_server import FAST_RETRIES, FakeSlack


def test_out_of_order_backfill_and_rerun(warehouse):
    import generate_customers

    days = [dt.date(2024, 5, 3), dt.date(2024, 5, 1), dt.date(2024, 5, 2), dt.date(2024, 5, 3)]
    for d in set(days):
        generate_customers.write(warehouse["data"], d, 150)
    for d in days:
        dr = load_dag("customers_scd2").test(logical_date=pendulum.datetime(d.year, d.month, d.day, tz="UTC"))
        assert dr.state == "success", {ti.task_id: ti.state for ti in dr.get_task_instances()}
    with psycopg.connect(warehouse["uri"]) as conn:
        got = conn.execute("select customer_id, valid_from, valid_to, row_hash from dim_customers order by 1, 2"
                           ).fetchall()
        current = conn.execute("select count(*) from dim_customers where is_current").fetchone()[0]
        latest = conn.execute("select count(*) from customers_snapshot where snapshot_date = '2024-05-03'"
                              ).fetchone()[0]
        # the same history as a from-scratch rebuild in date order
        conn.execute("create temp table expected (like dim_customers)")
        from safeload.loads.scd2 import scd2_rebuild_sql

        conn.execute(scd2_rebuild_sql("public.customers_snapshot", "pg_temp.expected", key="customer_id",
                                      tracked=["name", "email", "country", "segment"], snapshot_column="snapshot_date"))
        want = conn.execute("select customer_id, valid_from, valid_to, row_hash from expected order by 1, 2").fetchall()
    assert got == want
    assert current == latest
    assert len(got) > current  # some customers changed: there is history


# ---------------------------------------------------------------- failure paths

D1, D2 = dt.date(2024, 5, 1), dt.date(2024, 5, 2)


@pytest.fixture
def slack(warehouse, monkeypatch):
    """A real HTTP server on 127.0.0.1 speaking Slack's webhook protocol, as the alert connection."""
    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(name, value)
    with FakeSlack() as server:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", server.webhook_conn())
        yield server


def run(day: dt.date):
    dr = load_dag("customers_scd2").test(logical_date=pendulum.datetime(day.year, day.month, day.day, tz="UTC"))
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def dimension(uri: str) -> list[tuple]:
    with psycopg.connect(uri) as conn:
        return conn.execute("select * from dim_customers order by customer_id, valid_from").fetchall()


def snapshot_rows(uri: str, day: dt.date) -> int:
    with psycopg.connect(uri) as conn:
        return conn.execute("select count(*) from customers_snapshot where snapshot_date = %s", (day,)).fetchone()[0]


def rewrite(path, edit) -> None:
    """Apply ``edit`` to the snapshot file's lines (header first), keeping its .done marker."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def rename_segment(lines):
    return [lines[0].replace("segment", "customer_segment")] + lines[1:]


def add_column(lines):
    return [lines[0] + ",loyalty_tier"] + [line + ",gold" for line in lines[1:]]


def header_only(lines):
    return lines[:1]


def duplicates_and_bad_segment(lines):
    bad = [line.rsplit(",", 1)[0] + ",vip" for line in lines[1:6]]  # not an allowed segment
    return lines + lines[10:15] + bad  # five customers twice, five more with a bad segment


@pytest.mark.parametrize(("edit", "failed_task"), [
    pytest.param(rename_segment, "check_contract", id="renamed-column-breaking"),
    pytest.param(add_column, "check_contract", id="added-column-under-policy-fail"),
    pytest.param(header_only, "check_contract", id="header-only-snapshot-refused"),
    pytest.param(duplicates_and_bad_segment, "audit_staging", id="duplicate-keys-and-bad-values"),
])
def test_bad_snapshot_leaves_the_dimension_unchanged_and_alerts(warehouse, slack, edit, failed_task):
    import generate_customers

    for day in (D1, D2):
        generate_customers.write(warehouse["data"], day, 150)
    dr, s = run(D1)
    assert dr.state == "success", s
    before = dimension(warehouse["uri"])
    assert before

    rewrite(warehouse["data"] / "customers" / f"{D2.isoformat()}.csv", edit)
    dr, s = run(D2)
    assert dr.state == "failed"
    assert s[failed_task] == "failed", s
    assert s["rebuild_dim_customers"] == "upstream_failed"
    assert s["publish_snapshot"] == "upstream_failed"
    assert dimension(warehouse["uri"]) == before  # not a row of the history moved
    assert snapshot_rows(warehouse["uri"], D2) == 0  # and no snapshot was published for the day

    alerts = [p.all_text() for p in slack.wait_for(1)]
    assert any("customers_scd2" in a and failed_task in a for a in alerts), alerts
