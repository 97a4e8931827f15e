"""The page's queries on a year of daily history for 200 tables: results, plans, query counts.

No timed assertions: the plans (EXPLAIN) must reach safeload's tables only through
indexes, and each page must run a fixed number of statements whatever the history's size.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from pgtest import scratch_database

from safeload.metadata import ensure_metadata
from safeload.ui import queries

pytestmark = pytest.mark.integration

TABLES, DAYS = 200, 365
SAFELOAD_TABLES = {"load_history", "quality_results", "quarantine", "contract_checks"}

SEED = """
insert into safeload.load_history (target, partition_value, status, rows_loaded, rows_quarantined, rows_source,
    checksum, source, dag_id, run_id, task_id, try_number, started_at, published_at, duration_s)
select format('public.t%s', lpad(t::text, 3, '0')), d::date::text,
       case when t = 2 and d = date '2025-12-31' then 'refused' else 'published' end,
       case when t = 1 and d = date '2025-12-31' then 9000 else 1000 + (t * 7 + extract(doy from d)::int * 13) % 50 end,
       case when t <= 3 and extract(day from d) = 1 then 2
            when t > 3 and extract(doy from d)::int % 10 = 0 then 20 else 0 end, 1000, md5(t::text || d::text),
       format('/data/t%s/%s.csv', t, d::date), format('dag_%s', t), 'scheduled__' || d::date::text || 'T00:00:00+00:00',
       'load', 1, d, d + interval '5 minutes', 1.5
from generate_series(1, %(tables)s) t, generate_series(date '2025-01-01', date '2025-01-01' + %(days)s - 1, interval '1 day') d
order by 6, 1;

insert into safeload.quality_results (run_key, dag_id, run_id, task_id, target, partition_value, suite,
    expectation_type, column_name, kwargs, severity, success, observed_value, engine, checked_at)
select h.dag_id || '/' || h.run_id, h.dag_id, h.run_id, h.task_id, h.target, h.partition_value, 'suite', c.type,
       c.col, c.kwargs, c.severity,
       case when c.type = 'expect_column_mean_to_be_between' then (h.rows_loaded % 50) < 45 else true end,
       case c.type
         when 'expect_table_row_count_to_be_between' then to_jsonb(h.rows_loaded)
         when 'expect_column_mean_to_be_between' then to_jsonb(h.rows_loaded % 50)
         else jsonb_build_object('element_count', h.rows_loaded, 'unexpected_count', 0, 'unexpected_percent', 0)
       end, 'sql', h.published_at
from safeload.load_history h
cross join (values
    ('expect_table_row_count_to_be_between', null, '{"min_value": 1, "max_value": 5000000}'::jsonb, 'critical'),
    ('expect_column_mean_to_be_between', 'amount', '{"column": "amount", "min_value": 0, "max_value": 44}'::jsonb,
     'warning'),
    ('expect_column_values_to_not_be_null', 'order_id', '{"column": "order_id"}'::jsonb, 'critical')
) as c(type, col, kwargs, severity);

insert into safeload.quarantine (target, partition_value, run_key, source, line, raw, reason)
select h.target, h.partition_value, h.dag_id || '/' || h.run_id || '/' || h.target, h.source, n,
       'x,<b>bad</b>', format('column "amount": "x%s" is not a numeric(12,2)', n)
from safeload.load_history h, generate_series(2, 1 + h.rows_quarantined) n where h.rows_quarantined > 0;

insert into safeload.contract_checks (target, contract, source, policy, decision, passed, changes, dag_id, run_id,
    task_id, try_number, checked_at)
select h.target, 'include/contracts/t.yaml', h.source, 'warn', 'warn', true,
       '[{"kind": "added", "column": "coupon", "class": "additive", "detail": "new column", "action": "add it"}]',
       h.dag_id, h.run_id, 'check', 1, h.started_at
from safeload.load_history h where h.partition_value in ('2025-03-01', '2025-11-30');
analyze safeload.load_history, safeload.quality_results, safeload.quarantine, safeload.contract_checks;
"""


class Recorder:
    """Passes statements to the connection and keeps them, to count and EXPLAIN them."""

    def __init__(self, conn):
        self.conn = conn
        self.statements: list[tuple[str, object]] = []

    def execute(self, sql, params=None):
        self.statements.append((sql, params))
        return self.conn.execute(sql, params)


@pytest.fixture(scope="module")
def year(pg_server):
    """A database of its own (the ``pg_uri`` tests below empty the module's database)."""
    with scratch_database(pg_server, "t_ui_year") as uri:
        with psycopg.connect(uri, autocommit=True) as conn:
            ensure_metadata(conn)
            conn.execute(SEED.replace("%(tables)s", str(TABLES)).replace("%(days)s", str(DAYS)))
            assert conn.execute("select count(*) from safeload.load_history").fetchone()[0] == TABLES * DAYS
        yield uri


def _plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def explain(conn, sql, params):
    cur = psycopg.ClientCursor(conn)
    cur.execute("explain (format json) " + sql, params)
    plan = cur.fetchone()[0][0]["Plan"]
    return list(_plan_nodes(plan))


def assert_indexed(conn, statements):
    """No statement reads one of safeload's tables by a sequential scan."""
    for sql, params in statements:
        if "from safeload." not in sql:  # the to_regclass probe reads the catalogue only
            continue
        nodes = explain(conn, sql, params)
        seq = [n["Relation Name"] for n in nodes
               if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in SAFELOAD_TABLES]
        assert not seq, f"sequential scan of {seq} in:\n{sql}\n{json.dumps(nodes, default=str)[:2000]}"
        assert any(n.get("Index Name") for n in nodes), f"no index used by:\n{sql}"


def test_overview_pages_through_200_tables_with_fixed_statement_count(year):
    with queries.read_only(year) as conn:
        rec = Recorder(conn)
        rows, after = queries.overview(rec, after="")
        assert len(rec.statements) == 4  # tables present, overview, latest checks, latest drift
        assert [r["target"] for r in rows][:2] == ["public.t001", "public.t002"] and len(rows) == 50
        seen = [r["target"] for r in rows]
        pages = 1
        while after is not None and pages < 10:  # bounded: 200 tables are 4 pages
            rows, after = queries.overview(conn, after=after)
            seen += [r["target"] for r in rows]
            pages += 1
        assert pages == 4 and len(seen) == TABLES == len(set(seen)) and seen == sorted(seen)
        assert queries.table_count(conn) == TABLES

        first, _ = queries.overview(conn, after="")
        t1, t2, t9 = first[0], first[1], first[8]
        assert t1["partition_value"] == "2025-12-31" and t1["rows_loaded"] == 9000
        assert len(t1["trend"]) == queries.TREND_LOADS and t1["trend"][-1] == 9000
        assert t1["volume"]["verdict"] == "spike"
        assert t2["status"] == "refused" and t2["volume"]["verdict"] == "normal"  # trend is of published loads
        assert t9["volume"]["verdict"] == "normal"
        assert (t1["checks"], t1["failed"]) == (3, 0)
        assert t1["drift"]["decision"] == "warn" and t1["drift"]["changes"] == 1
        # the mean check fails on days where rows % 50 >= 45, as a warning
        warned = [r for r in first if r["warned"]]
        assert all(r["rows_loaded"] % 50 >= 45 for r in warned)


def test_overview_plans_use_indexes(year):
    with queries.read_only(year) as conn:
        rec = Recorder(conn)
        queries.overview(rec, after="public.t100")
        queries.table_count(rec)
        assert_indexed(conn, rec.statements)


def test_table_page_statements_are_few_and_indexed(year):
    with queries.read_only(year) as conn:
        rec = Recorder(conn)
        summary = queries.table_summary(rec, "public.t001")
        history, before = queries.load_history(rec, "public.t001")
        assert len(rec.statements) <= 10
        assert_indexed(conn, rec.statements)

        assert len(history) == queries.PAGE_SIZE and history[0]["partition_value"] == "2025-12-31"
        older, _ = queries.load_history(conn, "public.t001", before=before)
        assert older[0]["id"] < history[-1]["id"]

        trend = summary["trend"]
        assert len(trend) == 90 and trend[-1]["rows_loaded"] == 9000 and not trend[-1]["success"]
        series = {s.key: s for s in summary["series"]}
        assert set(series) == {"expect_table_row_count_to_be_between", "expect_column_mean_to_be_between (amount)",
                               "expect_column_values_to_not_be_null (order_id)"}
        mean = series["expect_column_mean_to_be_between (amount)"]
        assert len(mean.points) == queries.CHART_PARTITIONS and mean.points[-1]["partition"] == "2025-12-31"
        assert mean.points[0]["upper"] == 44 and mean.points[0]["lower"] == 0
        assert series["expect_column_values_to_not_be_null (order_id)"].measure == "% unexpected"
        assert [d["kind"] for d in summary["drift"]] == ["contract check", "contract check"]
        q = summary["quarantine"]
        assert len(q) == 10 and q[0]["partition_value"] == "2025-12-01"
        assert [s["line"] for s in q[0]["samples"]] == [2, 3] and "numeric(12,2)" in q[0]["samples"][0]["reason"]


def test_run_report_is_indexed(year):
    with queries.read_only(year) as conn:
        rec = Recorder(conn)
        report = queries.run_report(rec, dag_id="dag_7", run_id="scheduled__2025-11-30T00:00:00+00:00")
        assert_indexed(conn, rec.statements)
    assert [r["target"] for r in report["loads"]] == ["public.t007"]
    assert len(report["checks"]) == 3 and len(report["contract_checks"]) == 1


def test_read_only_transaction_refuses_writes(year):
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        with queries.read_only(year) as conn:
            conn.execute("delete from safeload.load_history")
    with psycopg.connect(year) as conn:
        assert conn.execute("select count(*) from safeload.load_history").fetchone()[0] == TABLES * DAYS


def test_empty_warehouse_shows_nothing(pg_uri):
    with queries.read_only(pg_uri) as conn:
        assert queries.existing_tables(conn) == set()
        assert queries.overview(conn) == ([], None)
        assert queries.table_summary(conn, "public.orders")["latest"] is None
        assert queries.run_report(conn, dag_id="d", run_id="r") == {"loads": [], "checks": [], "contract_checks": []}


def test_metadata_of_an_earlier_version_gets_the_new_table_and_indexes(pg):
    ensure_metadata(pg)
    pg.execute("drop table safeload.contract_checks; drop index safeload.load_history_target_id_idx")
    ensure_metadata(pg)
    assert pg.execute("select to_regclass('safeload.contract_checks') is not null"
                      " and to_regclass('safeload.load_history_target_id_idx') is not null").fetchone()[0]


@pytest.mark.parametrize(("etype", "kwargs", "observed", "expected"), [
    pytest.param("expect_table_row_count_to_be_between", {"min_value": 1, "max_value": 10}, 7, (7, 1, 10, "value"),
                 id="aggregate"),
    pytest.param("expect_column_values_to_be_between", {"column": "a", "mostly": 0.99},
                 {"element_count": 100, "unexpected_count": 2, "unexpected_percent": 2.0}, (2.0, None, 1.0, "% unexpected"),
                 id="map-mostly"),
    pytest.param("expect_column_values_to_not_be_null", {"column": "a"},
                 {"element_count": 10, "unexpected_count": 0, "unexpected_percent": 0.0}, (0.0, None, 0.0, "% unexpected"),
                 id="map-strict"),
    pytest.param("volume_check", {"rows": 5}, {"rows": 5, "lower": 3, "upper": 9, "median": 6}, (5, 3, 9, "rows"),
                 id="volume"),
    pytest.param("expect_column_max_to_be_between", {"min_value": "2024-01-01"}, "2024-05-01",
                 (None, None, None, "value"), id="date-not-a-number"),
    pytest.param("volume_check", {}, "12 rows; only 1 published load(s)", (None, None, None, "value"), id="volume-text"),
])
def test_observed_number(etype, kwargs, observed, expected):
    assert queries.observed_number(etype, kwargs, observed) == expected


def test_volume_verdict():
    assert queries.volume_verdict([100, 100]) is None
    assert queries.volume_verdict([100, 102, 98, 101, 100])["verdict"] == "normal"
    assert queries.volume_verdict([100, 102, 98, 101, 10])["verdict"] == "drop"
    assert queries.volume_verdict([100, 102, 98, 101, 900])["verdict"] == "spike"


def test_a_rerun_supersedes_every_check_of_the_partition_whatever_its_kwargs(pg):
    """The latest gate execution on a partition answers for each check (type and column):
    the volume check's kwargs carry the row count, and a suite's bounds may change between
    runs; neither may leave an older failure standing next to the re-run's pass."""
    ensure_metadata(pg)
    pg.execute("""insert into safeload.load_history (target, partition_value, status, rows_loaded, dag_id, run_id,
                      task_id, try_number) values ('public.o', '2024-05-04', 'published', 120, 'd', 'r', 'publish', 2)""")
    rows = [  # (checked_at, type, column, kwargs, severity, success)
        ("2024-05-05 01:00", "volume_check", None, {"target": "public.o", "rows": 40}, "warning", False),
        ("2024-05-05 01:00", "expect_column_values_to_be_between", "amount", {"column": "amount", "max_value": 10},
         "critical", False),
        ("2024-05-05 01:00", "expect_column_values_to_be_between", "qty", {"column": "qty", "max_value": 5},
         "critical", True),
        ("2024-05-05 01:00", "expect_column_values_to_be_between", "qty", {"column": "qty", "min_value": 1},
         "critical", True),
        ("2024-05-05 02:00", "volume_check", None, {"target": "public.o", "rows": 120}, "warning", True),
        ("2024-05-05 02:00", "expect_column_values_to_be_between", "amount", {"column": "amount", "max_value": 99},
         "critical", True),
        ("2024-05-05 02:00", "expect_column_values_to_be_between", "qty", {"column": "qty", "max_value": 5},
         "critical", True),
        ("2024-05-05 02:00", "expect_column_values_to_be_between", "qty", {"column": "qty", "min_value": 1},
         "critical", False),
    ]
    for at, etype, col, kwargs, severity, ok in rows:
        pg.execute("""insert into safeload.quality_results (target, partition_value, expectation_type, column_name,
                          kwargs, severity, success, observed_value, checked_at)
                      values ('public.o', '2024-05-04', %s, %s, %s, %s, %s, '1', %s)""",
                   (etype, col, json.dumps(kwargs), severity, ok, at))
    with queries.read_only(pg.info.dsn) as conn:
        (row,), _ = queries.overview(conn)
        series = queries.quality_series(conn, "public.o", ["2024-05-04"])
    # the 02:00 execution only: 4 checks, the qty min_value check failed in it
    assert (row["checks"], row["failed"], row["warned"]) == (4, 1, 0)
    points = sorted((s.key, len(s.points), s.points[-1]["success"]) for s in series)
    assert points == [("expect_column_values_to_be_between (amount)", 1, True),
                      ("expect_column_values_to_be_between (qty)", 1, False),
                      ("expect_column_values_to_be_between (qty)", 1, True),
                      ("volume_check", 1, True)]
