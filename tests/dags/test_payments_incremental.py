"""payments_incremental under dag.test() against a real PostgreSQL: the watermark, late rows, re-runs.

The application database and the warehouse are two schemas of one test database here
(``app`` and ``public``), reached through two Airflow connections, as in production."""

from __future__ import annotations

import datetime as dt
import json

import pendulum
import psycopg
import pytest

from tests.dags.conftest import load_dag

D1, D2, D3 = dt.date(2024, 5, 1), dt.date(2024, 5, 2), dt.date(2024, 5, 3)
COLS = "payment_id, order_id, amount, currency, status, paid_at, updated_at"


@pytest.fixture
def app(warehouse, monkeypatch):
    """The application's database (here: schema ``app`` of the test database)."""
    import generate_payments

    monkeypatch.setenv("AIRFLOW_CONN_APP_SOURCE", warehouse["uri"])
    with psycopg.connect(warehouse["uri"], autocommit=True) as conn:
        generate_payments.create_source(conn)
        yield conn


def run(day: dt.date, **conf):
    """Run the DAG for the data interval ``[day, day + 1)``: a manual run at midnight after
    ``day`` (Airflow gives a manual run of an interval timetable the interval ending at it)."""
    after = day + dt.timedelta(days=1)
    dr = load_dag("payments_incremental").test(
        logical_date=pendulum.datetime(after.year, after.month, after.day, tz="UTC"), run_conf=conf or None)
    assert (dr.data_interval_start.date(), dr.data_interval_end.date()) == (day, after)
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def published(conn) -> dict[str, int]:
    """Publishes per partition, from the load history."""
    return dict(conn.execute("select partition_value, count(*) from safeload.load_history "
                             "where target = 'public.payments' and status = 'published' group by 1").fetchall())


def rows_of(conn, day: dt.date, side: str) -> list[tuple]:
    where = ("from public.payments where payment_date = %s" if side == "target"
             else "from app.payments where (paid_at at time zone 'UTC')::date = %s")
    return conn.execute(f"select {COLS} {where} order by payment_id", (day,)).fetchall()


def checksum(conn, day: dt.date) -> tuple[int, str]:
    from safeload.loads.sql import partition_checksum

    return partition_checksum(conn, "public.payments", "payment_date", day.isoformat())


def test_normal_day_publishes_its_date_and_rerun_changes_nothing(app):
    import generate_payments

    generate_payments.write_day(app, D1, 200)
    dr, s = run(D1)
    assert dr.state == "success", s
    assert rows_of(app, D1, "target") == rows_of(app, D1, "source")
    assert len(rows_of(app, D1, "target")) == 200
    assert published(app) == {"2024-05-01": 1}
    first = checksum(app, D1)

    dr, s = run(D1)  # the same window again: the day is found, equal, and left alone
    assert dr.state == "success", s
    assert published(app) == {"2024-05-01": 1}
    assert checksum(app, D1) == first


def test_late_rows_republish_their_date_exactly_once(app):
    import generate_payments

    generate_payments.write_day(app, D1, 200)
    assert run(D1)[0].state == "success"
    before = checksum(app, D1)
    # day 2: 4 payments of day 1 uploaded late, and some of day 1's payments refunded
    done = generate_payments.write_day(app, D2, 200, {"late", "refunds"})
    assert done["late"] == 4 and done["refunds"] > 0

    dr, s = run(D2)
    assert dr.state == "success", s
    assert published(app) == {"2024-05-01": 2, "2024-05-02": 1}  # day 1 republished, once
    for day in (D1, D2):
        target = rows_of(app, day, "target")
        assert target == rows_of(app, day, "source")
        assert len({r[0] for r in target}) == len(target)  # no payment twice
    assert len(rows_of(app, D1, "target")) == 204
    assert sum(r[4] == "refunded" for r in rows_of(app, D1, "target")) == done["refunds"]
    after = checksum(app, D1)
    assert after != before and after[0] == 204

    # day 3: its lookback sees day 1's late rows and day 2 again; both equal: not republished
    generate_payments.write_day(app, D3, 200)
    dr, s = run(D3)
    assert dr.state == "success", s
    assert published(app) == {"2024-05-01": 2, "2024-05-02": 1, "2024-05-03": 1}
    assert checksum(app, D1) == after

    # re-running every day changes nothing: same rows, same checksums, no new publish
    sums = {d: checksum(app, d) for d in (D1, D2, D3)}
    for day in (D2, D1, D3):
        assert run(day)[0].state == "success"
    assert {d: checksum(app, d) for d in (D1, D2, D3)} == sums
    assert published(app) == {"2024-05-01": 2, "2024-05-02": 1, "2024-05-03": 1}


def test_lookback_catches_a_late_commit_that_the_bare_interval_misses(app):
    import generate_payments

    generate_payments.write_day(app, D1, 100)
    assert run(D1)[0].state == "success"
    # a transaction begun on day 1 at 23:50 commits after day 1's run read the table
    generate_payments.commit_late(app, D1, 3)
    generate_payments.write_day(app, D2, 100)

    dr, s = run(D2, lookback_hours=0)  # the window is the interval alone: day 1 is not looked at
    assert dr.state == "success", s
    assert len(rows_of(app, D1, "target")) == 100  # the late commit is missed

    dr, s = run(D2)  # default lookback, 24 h: the window reaches into day 1
    assert dr.state == "success", s
    assert rows_of(app, D1, "target") == rows_of(app, D1, "source")
    assert len(rows_of(app, D1, "target")) == 103
    assert published(app) == {"2024-05-01": 2, "2024-05-02": 1}


def test_bad_rows_fail_the_gate_and_publish_nothing(app, warehouse):
    import generate_payments

    generate_payments.write_day(app, D1, 200)
    assert run(D1)[0].state == "success"
    before = checksum(app, D1)
    # day 2 refunds some of day 1 (a good change) but its own rows carry a bad currency
    generate_payments.write_day(app, D2, 200, {"refunds", "bad_currency"})
    dr, s = run(D2)
    assert dr.state == "failed"
    assert s["reload"] == "failed"  # staged and gated, not published
    assert published(app) == {"2024-05-01": 1}  # all or nothing: day 1's good change waits too
    assert checksum(app, D1) == before
    assert rows_of(app, D2, "target") == []
    alerts = [json.loads(line) for line in warehouse["alerts"].read_text().splitlines()]
    assert any("reload" in json.dumps(a) and "currency" in json.dumps(a) for a in alerts), alerts


def test_breaking_drift_in_the_application_is_blocked_before_reading_rows(app):
    import generate_payments

    generate_payments.write_day(app, D1, 50)
    app.execute("alter table app.payments rename column amount to amount_eur")
    dr, s = run(D1)
    assert dr.state == "failed"
    assert s["check_contract"] == "failed" and s["plan"] == "upstream_failed"
    assert app.execute("select count(*) from public.payments").fetchone()[0] == 0


def test_a_window_with_no_changes_succeeds_and_publishes_nothing(app):
    dr, s = run(D1)
    assert dr.state == "success", s
    assert set(s.values()) == {"success"}
    assert published(app) == {}


def test_a_missed_run_is_covered_by_the_next_window(app):
    """With no lookback at all, a day without a run is still loaded: the next run's window
    reaches back to the end of the last successful run (Airflow's run records)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    import generate_payments

    with create_session() as session:  # runs of other tests would count as "the last success"
        session.query(DagRun).filter(DagRun.dag_id == "payments_incremental").delete()
    for day in (D1, D2, D3):
        generate_payments.write_day(app, day, 50)
    assert run(D1, lookback_hours=0)[0].state == "success"
    # no run for D2 (the scheduler was down)
    dr, s = run(D3, lookback_hours=0)
    assert dr.state == "success", s
    assert published(app) == {"2024-05-01": 1, "2024-05-02": 1, "2024-05-03": 1}
    assert rows_of(app, D2, "target") == rows_of(app, D2, "source")


def test_a_payment_moved_to_another_date_leaves_its_old_date(app):
    """A correction of ``paid_at`` moves a payment to another business date: the watermark
    finds the new date only, but the old date still holds the payment in the target, so it
    must be republished too (else the payment is counted twice). A date whose payments all
    moved away is republished empty."""
    import generate_payments

    generate_payments.write_day(app, D1, 50)
    assert run(D1)[0].state == "success"
    moved = app.execute("select min(payment_id) from app.payments").fetchone()[0]
    app.execute("update app.payments set paid_at = paid_at + interval '1 day', updated_at = %s where payment_id = %s",
                (dt.datetime(2024, 5, 2, 12, tzinfo=dt.timezone.utc), moved))
    generate_payments.write_day(app, D2, 50)

    dr, s = run(D2)
    assert dr.state == "success", s
    for day in (D1, D2):
        assert rows_of(app, day, "target") == rows_of(app, day, "source")
    ids = [r[0] for r in app.execute("select payment_id from public.payments").fetchall()]
    assert len(ids) == len(set(ids)) == 100  # the moved payment once, on its new date

    # every remaining payment of day 1 is moved to day 2: day 1 is emptied, not left as it was
    app.execute("update app.payments set paid_at = paid_at + interval '1 day', updated_at = %s "
                "where (paid_at at time zone 'UTC')::date = %s",
                (dt.datetime(2024, 5, 3, 12, tzinfo=dt.timezone.utc), D1))
    dr, s = run(D3)
    assert dr.state == "success", s
    assert rows_of(app, D1, "target") == rows_of(app, D1, "source") == []
    assert rows_of(app, D2, "target") == rows_of(app, D2, "source")
    assert app.execute("select count(*), count(distinct payment_id) from public.payments").fetchone() == (100, 100)


def test_a_target_column_without_time_zone_is_loaded_as_the_fingerprint_compares_it(app):
    """The source's ``updated_at`` is timestamptz, the warehouse keeps it as ``timestamp``
    (UTC wall clock), and the databases' sessions default to Europe/Berlin. The fingerprint
    casts in UTC; the load must convert the same way, or the published day never equals the
    source's and every overlapping window republishes it."""
    import generate_payments

    db = app.execute("select current_database()").fetchone()[0]
    app.execute(psycopg.sql.SQL("alter database {} set timezone to 'Europe/Berlin'").format(psycopg.sql.Identifier(db)))
    app.execute("alter table public.payments alter column updated_at type timestamp"
                " using updated_at at time zone 'UTC'")
    generate_payments.write_day(app, D1, 50)
    assert run(D1)[0].state == "success"
    assert run(D1)[0].state == "success"  # the same window: equal now, not republished
    assert published(app) == {"2024-05-01": 1}
    first = app.execute("select payment_id, updated_at from public.payments order by 1 limit 1").fetchone()
    src = app.execute("select updated_at at time zone 'UTC' from app.payments where payment_id = %s",
                      (first[0],)).fetchone()[0]
    assert first[1] == src  # the UTC wall clock, not Berlin's


def test_reloads_of_one_dag_never_run_at_once(warehouse):
    """max_active_runs=1 does not bind backfills (Airflow 3 counts them against the
    backfill's own max_active_runs, default 10), and overlapping windows find the same
    days: two reloads at once could publish an older snapshot of a day over a newer one.
    Each reload stages the source as it is when it runs, so one at a time is enough.
    (The race itself needs the scheduler; this checks the limit it would obey.)"""
    from safeload.operators.incremental import ReloadPartitionsOperator

    assert load_dag("payments_incremental").get_task("reload").max_active_tis_per_dag == 1
    op = ReloadPartitionsOperator(task_id="r", plan_task_id="p", table="public.t", source_conn_id="s",
                                  contract="c.yaml",
                                  source_query="select 1", partition_column="d", updated_column="u")
    assert op.max_active_tis_per_dag == 1


def test_a_failed_look_up_of_the_last_success_fails_the_window_rather_than_narrowing_it():
    """After missed runs the window reaches back to the last success; if Airflow cannot say
    when that was, guessing "the interval alone" silently skips the missed days. The task
    must fail (and be retried). Airflow's context is built by hand here: an unreachable
    API server cannot be produced under dag.test(); the proxy is the one Airflow uses."""
    import lazy_object_proxy

    from safeload.operators.incremental import WatermarkWindowOperator

    op = WatermarkWindowOperator(task_id="w", lookback_hours=0, source_query="select 1", partition_column="d",
                                 updated_column="u")
    start, end = pendulum.datetime(2024, 5, 3, tz="UTC"), pendulum.datetime(2024, 5, 4, tz="UTC")

    def unreachable():
        raise ConnectionError("api-server unreachable")

    ctx = {"data_interval_start": start, "data_interval_end": end}
    with pytest.raises(ConnectionError):
        op.execute({**ctx, "prev_data_interval_end_success": lazy_object_proxy.Proxy(unreachable)})
    # no earlier success (Airflow's proxy of None): the interval alone
    out = op.execute({**ctx, "prev_data_interval_end_success": lazy_object_proxy.Proxy(lambda: None)})
    assert (out["low"], out["high"]) == (start.isoformat(), end.isoformat())
    out = op.execute({**ctx, "prev_data_interval_end_success": lazy_object_proxy.Proxy(
        lambda: pendulum.datetime(2024, 5, 1, tz="UTC"))})
    assert out["low"] == pendulum.datetime(2024, 5, 1, tz="UTC").isoformat()
