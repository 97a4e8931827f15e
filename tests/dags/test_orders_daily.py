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
