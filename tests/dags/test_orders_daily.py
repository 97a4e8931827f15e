"""orders_daily end to end under dag.test(), against a real PostgreSQL, with its failure paths."""

from __future__ import annotations

import datetime as dt
import json

import pendulum
import psycopg

from tests.dags.conftest import load_dag

DAY = pendulum.datetime(2024, 5, 2, tz="UTC")


def states(dr):
    return {ti.task_id: ti.state for ti in dr.get_task_instances()}


def published(uri):
    with psycopg.connect(uri) as conn:
        return dict(conn.execute("select order_date::text, count(*) from public.orders group by 1").fetchall())


def history_checksum(uri):
    with psycopg.connect(uri) as conn:
        return conn.execute("select checksum from safeload.load_history order by id desc limit 1").fetchone()[0]


def alerts(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_clean_day_publishes_and_rerun_changes_nothing(warehouse):
    import generate_orders

    from safeload.loads.sql import partition_checksum

    generate_orders.write(warehouse["data"], dt.date(2024, 5, 2), 800, set())
    dag = load_dag("orders_daily")
    dr = dag.test(logical_date=DAY)
    assert dr.state == "success", states(dr)
    assert published(warehouse["uri"]) == {"2024-05-02": 800}
    with psycopg.connect(warehouse["uri"]) as conn:
        first = partition_checksum(conn, "public.orders", "order_date", "2024-05-02")
    dr = load_dag("orders_daily").test(logical_date=DAY)
    assert dr.state == "success", states(dr)
    with psycopg.connect(warehouse["uri"]) as conn:
        assert partition_checksum(conn, "public.orders", "order_date", "2024-05-02") == first
        history = conn.execute("select status, rows_loaded from safeload.load_history order by id").fetchall()
        results = conn.execute("select count(*), count(*) filter (where not success) from safeload.quality_results"
                               ).fetchone()
    assert history == [("published", 800), ("published", 800)]
    # the publish emitted an asset event carrying the audited partition's metadata
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        event = session.query(AssetEvent).order_by(AssetEvent.id.desc()).first()
        assert event is not None
        assert event.extra["rows"] == 800
        assert event.extra["partition_value"] == "2024-05-02"
        assert event.extra["checksum"] == history_checksum(warehouse["uri"])
    assert results[0] > 5  # every check of both runs is in the history
    kinds = [a.get("kind") for a in alerts(warehouse["alerts"])]
    assert "summary" in kinds or any("summary" in str(a).lower() for a in alerts(warehouse["alerts"]))


def test_bad_data_day_is_not_published_and_alerts(warehouse):
    import generate_orders

    generate_orders.write(warehouse["data"], dt.date(2024, 5, 2), 800, {"duplicates", "out_of_range"})
    dr = load_dag("orders_daily").test(logical_date=DAY)
    s = states(dr)
    assert dr.state == "failed"
    assert s["audit_staging"] == "failed"
    assert s["publish"] == "upstream_failed"
    assert published(warehouse["uri"]) == {}
    failures = [a for a in alerts(warehouse["alerts"]) if "audit_staging" in json.dumps(a)]
    assert failures, alerts(warehouse["alerts"])


def test_breaking_drift_is_blocked_before_loading(warehouse):
    import generate_orders

    generate_orders.write(warehouse["data"], dt.date(2024, 5, 2), 300, {"drift_rename"})
    dr = load_dag("orders_daily").test(logical_date=DAY)
    s = states(dr)
    assert dr.state == "failed"
    assert s["check_contract"] == "failed"
    assert s["stage"] == "upstream_failed"
    with psycopg.connect(warehouse["uri"]) as conn:
        # nothing was staged (the check's own report may create safeload's schema: look at staging itself)
        assert conn.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone()[0] == 0


def test_additive_drift_warns_and_loads(warehouse):
    import generate_orders

    generate_orders.write(warehouse["data"], dt.date(2024, 5, 2), 300, {"drift_add"})
    dr = load_dag("orders_daily").test(logical_date=DAY)
    assert dr.state == "success", states(dr)
    assert published(warehouse["uri"]) == {"2024-05-02": 300}
    with psycopg.connect(warehouse["uri"]) as conn:  # policy warn: the target did not grow
        cols = [r[0] for r in conn.execute("select column_name from information_schema.columns "
                                           "where table_name = 'orders' order by ordinal_position")]
    assert "coupon_code" not in cols


def test_additive_drift_evolves_the_target_when_the_run_says_so(warehouse):
    """A run triggered with {"schema_policy": "evolve"} adds the new column inside the publish."""
    import generate_orders

    generate_orders.write(warehouse["data"], dt.date(2024, 5, 2), 300, {"drift_add"})
    dr = load_dag("orders_daily").test(logical_date=DAY, run_conf={"schema_policy": "evolve"})
    assert dr.state == "success", states(dr)
    with psycopg.connect(warehouse["uri"]) as conn:
        cols = [r[0] for r in conn.execute("select column_name from information_schema.columns "
                                           "where table_schema = 'public' and table_name = 'orders'")]
        loaded = conn.execute("select count(*), count(coupon_code) from public.orders").fetchone()
        changes = conn.execute("select schema_changes from safeload.load_history where status = 'published'"
                               ).fetchone()[0]
    assert "coupon_code" in cols
    assert loaded[0] == 300 and 0 < loaded[1] < 300  # the generator leaves about half the coupons empty
    assert changes == [{"added": "coupon_code"}]


def test_refused_day_shows_on_every_page_that_shows_days(warehouse):
    """A gate that stops a publish writes the day to the load history: the overview, the
    table page and the task report name it (they list days from that history)."""
    import generate_orders

    from safeload.ui import queries, render

    generate_orders.write(warehouse["data"], dt.date(2024, 5, 1), 500, set())
    assert load_dag("orders_daily").test(logical_date=pendulum.datetime(2024, 5, 1, tz="UTC")).state == "success"
    generate_orders.write(warehouse["data"], dt.date(2024, 5, 4), 500, {"duplicates", "out_of_range"})
    dr = load_dag("orders_daily").test(logical_date=pendulum.datetime(2024, 5, 4, tz="UTC"))
    assert dr.state == "failed" and states(dr)["audit_staging"] == "failed"
    assert published(warehouse["uri"]) == {"2024-05-01": 500}

    with psycopg.connect(warehouse["uri"]) as conn:
        history = conn.execute("select partition_value, status, task_id, message from safeload.load_history"
                               " order by id").fetchall()
    assert [h[:3] for h in history] == [("2024-05-01", "published", "publish"),
                                        ("2024-05-04", "refused", "audit_staging")]
    assert "2 critical" in history[1][3], history[1][3]

    links = render.Links(root="/safeload", airflow_root="http://airflow.example")
    with queries.read_only(warehouse["uri"]) as conn:
        (row,), _ = queries.overview(conn)
        summary = queries.table_summary(conn, "public.orders")
        loads, _ = queries.load_history(conn, "public.orders")
        report = queries.run_report(conn, dag_id="orders_daily", run_id=dr.run_id)
    assert (row["partition_value"], row["status"]) == ("2024-05-04", "refused")
    assert row["failed"] >= 1  # the refused day's critical checks, counted on the overview
    assert summary["latest"]["partition_value"] == "2024-05-04"
    failing = [s for s in summary["series"] if not s.points[-1]["success"]]
    assert failing and all(s.points[-1]["partition"] == "2024-05-04" for s in failing)
    assert [r["status"] for r in report["loads"]] == ["refused"]
    html = render.table_page("public.orders", summary, loads, None, None, links)
    assert "2024-05-04" in html and "refused" in html
    overview = render.overview_page([row], total=1, next_after=None, after="", links=links, conn_id="warehouse")
    assert "2024-05-04" in overview and "refused" in overview
