"""The sql engine's ways of running on a real PostgreSQL: when it groups the scan (from
``pg_stats``, or a sample when the table was never analysed), the distinct counts on a
second connection, and the same results whichever way it runs. (GX agreement of every
way: test_quality_differential.py.)"""

from __future__ import annotations

import math
import time

import psycopg
import pytest

from safeload.quality.sql import execute, grouping
from safeload.quality.sql.catalog import read_table_info
from safeload.quality.sql.compile import compile_plan
from safeload.quality.sql.grouping import GROUP_MIN_PAGES, plan_groups
from safeload.quality.sql.plan import Plan
from safeload.quality.sql_engine import run_sql
from safeload.quality.suite import parse_suite

ROWS = 240_000  # about 1,500 pages: above GROUP_MIN_PAGES, so "auto" considers grouping

SUITE = [
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "code", "mostly": 0.1}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "currency", "regex": "^[A-Z]{3}$"}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "currency", "value_set": ["EUR", "USD"]}},
    {"type": "expect_column_values_to_not_be_in_set", "kwargs": {"column": "status", "value_set": ["void"]}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "email", "regex": "^[a-z0-9]+@x\\.org$",
                                                               "mostly": 0.5}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "status", "regex": "^p"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0,
                                                              "max_value": 900}},
    {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "amount", "min_value": 0}},
    {"type": "expect_column_sum_to_be_between", "kwargs": {"column": "qty", "min_value": 0}},
    {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "qty", "min_value": 0}},
    {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "ratio", "min_value": 0}},
    {"type": "expect_column_min_to_be_between", "kwargs": {"column": "day", "min_value": "2024-01-01"}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "status"}},
]


@pytest.fixture
def big(pg, pg_uri):
    pg.execute(f"""
        create table big as
        select g as id, g % 1000 as code,
               (array['EUR', 'USD', 'GBP', 'eur', null])[1 + g % 5]::char(3) as currency,
               (array['placed', 'paid', 'void', null])[1 + g % 4] as status,
               case when g % 7 = 0 then 'U' || g || '@x.org' else 'u' || g || '@x.org' end as email,
               (g % 1000) / 1.25 as amount, (g % 13)::int as qty, (g % 11) / 3.0::float8 as ratio,
               date '2024-01-01' + g % 30 as day
        from generate_series(1, {ROWS}) as g
    """)
    return pg_uri


def specs():
    return list(parse_suite({"name": "ways", "expectations": SUITE}).expectations)


def _same(a, b) -> bool:
    """Equal, floats to 1e-12: a float mean is a sum whose order depends on the plan (a
    parallel scan's too), so its last bits may differ between two runs of one statement."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _plan(conninfo):
    with psycopg.connect(conninfo) as conn:
        info = read_table_info(conn, "public", "big")
        return info, plan_groups(conn, compile_plan(specs(), info))


def test_groups_by_the_low_cardinality_columns_a_regex_checks_sampled_without_statistics(big):
    info, plan = _plan(big)
    assert info.pages >= GROUP_MIN_PAGES and info.rows is None  # never analysed: the sample decides
    # currency has a regex (and an in set), status a not-in-set: both keys; email (a
    # regex, but a value per row) stays row by row
    assert plan.group_keys == ("currency", "status")
    assert "group by \"currency\", \"status\"" in plan.scan.as_string(None)


def test_the_same_keys_from_pg_stats(big, pg):
    pg.execute("analyze big")
    info, plan = _plan(big)
    assert info.rows == ROWS and info.find("currency").n_distinct
    assert plan.group_keys == ("currency", "status")


def test_small_tables_and_high_cardinality_are_scanned_row_by_row(big, pg, monkeypatch):
    monkeypatch.setattr(grouping, "GROUP_MIN_PAGES", 10**9)
    assert _plan(big)[1].group_keys == ()
    monkeypatch.undo()
    monkeypatch.setattr(grouping, "MAX_GROUPS", 2)  # currency has 4 values (and null)
    assert _plan(big)[1].group_keys == ()


def test_every_way_gives_the_same_results(big):
    calls = []

    def connect():
        calls.append(1)
        return psycopg.connect(big)

    ways = {"rows": {"group_by": ()}, "auto": {}, "auto+concurrent": {"connect": connect},
            "grouped-by-all": {"group_by": ["currency", "status", "code", "email", "amount"]}}
    results = {}
    with psycopg.connect(big) as conn:
        for way, kw in ways.items():
            results[way], _ = run_sql(conn, schema="public", table="big", specs=specs(), **kw)
    assert calls == [1]  # one second connection, for the distinct counts
    for way, res in results.items():
        assert _same(res, results["rows"]), way
    r = results["rows"]
    assert r[1]["success"] and r[1]["result"]["unexpected_count"] == 0
    assert r[2]["result"]["unexpected_count"] == ROWS  # code: every row's value repeats
    assert r[3]["result"]["unexpected_count"] == ROWS // 5  # 'eur'
    assert r[6]["result"]["unexpected_count"] == ROWS // 7
    assert r[7]["result"]["unexpected_count"] == ROWS // 4  # 'void'
    assert r[2]["result"]["partial_unexpected_list"]  # samples come from the snapshot too


def test_without_a_second_connection_the_distinct_counts_run_after_the_scan(big):
    def refused():
        raise psycopg.OperationalError("too many connections")

    with psycopg.connect(big) as conn:
        fallback, _ = run_sql(conn, schema="public", table="big", specs=specs(), connect=refused)
        plain, _ = run_sql(conn, schema="public", table="big", specs=specs())
        # in the caller's transaction: no second connection (it could not see the caller's writes)
        with conn.transaction() as tx:
            conn.execute("delete from big where id <= 10")
            inside, _ = run_sql(conn, schema="public", table="big", specs=specs(),
                                connect=lambda: pytest.fail("a second connection in the caller's transaction"))
            raise psycopg.Rollback(tx)
    assert _same(fallback, plain)
    assert inside[0]["result"]["observed_value"] == ROWS - 10
    assert inside[1]["result"]["element_count"] == ROWS - 10


def test_a_refused_distinct_statement_fails_its_check_only(pg, pg_uri):
    # a type PostgreSQL cannot sort: the distinct statement fails on the second connection,
    # the checks are then isolated one by one
    pg.execute("create table xs (x xid, n int); insert into xs values ('1', 1), ('1', 2)")
    exps = [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "x"}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "n"}}]
    with psycopg.connect(pg_uri) as conn:
        res, _ = run_sql(conn, schema="public", table="xs",
                         specs=list(parse_suite({"name": "x", "expectations": exps}).expectations),
                         connect=lambda: psycopg.connect(pg_uri))
    assert res[0]["success"] is False and "PostgreSQL refused the check" in res[0]["exception"]
    assert res[1]["success"] is True


def test_no_regex_no_grouping_and_no_sample(big, monkeypatch):
    def no_probe(*a, **k):
        pytest.fail("a suite without a regular expression has nothing to gain from grouping")

    monkeypatch.setattr(grouping, "estimate_cardinality", no_probe)
    exps = [e for e in SUITE if "regex" not in e["type"]]
    with psycopg.connect(big) as conn:
        plan = plan_groups(conn, compile_plan(list(parse_suite({"name": "n", "expectations": exps}).expectations),
                                              read_table_info(conn, "public", "big")))
    assert plan.group_keys == ()


def test_the_gate_runs_the_distinct_counts_beside_the_scan(big, monkeypatch):
    from safeload.quality.gate import run_gate

    opened = []
    real = execute._run_statements

    def spy(conn, plan, work_mem, connect):
        def counted():
            opened.append(1)
            return connect()

        return real(conn, plan, work_mem, counted if connect else None)

    monkeypatch.setattr(execute, "_run_statements", spy)
    # the one-check-at-a-time path runs only after a failed statement: none may fail here
    monkeypatch.setattr(Plan, "scan_for", lambda *a: pytest.fail("a statement failed"))
    result = run_gate(big, table="public.big", suite=SUITE, work_mem="8MB")
    assert opened == [1]
    assert [r.engine_used for r in result.results] == ["sql"] * len(SUITE)
    assert result.results[1].success and not result.results[3].success  # unique id; 'eur' fails the regex


def test_a_failed_scan_cancels_the_distinct_count_beside_it(pg, pg_uri, monkeypatch):
    """The scan fails (an invalid regular expression) while the distinct count is still
    running on the second connection: that statement is cancelled, not waited for (on a
    large table its sort takes as long as the scan; on an interrupted task, longer than
    the task may take to stop). Here the distinct count waits on an advisory lock the test
    holds, so only a cancel ends it; its lock_timeout (20 s here, instead of the engine's
    2 s, which a busy machine can spend before the scan starts: the scan's rows would then
    wait for a distinct count that has already given up) bounds the test if none comes."""
    monkeypatch.setattr(execute, "DISTINCT_LOCK_TIMEOUT", "20s")
    pg.execute("create table t (id int, s text); insert into t select i, 'x' || i from generate_series(1, 50) i")
    pg.execute("""create function only_beside() returns boolean language plpgsql as $$
                  begin
                    if current_setting('application_name') = 'distinct-side' then
                      perform pg_advisory_xact_lock_shared(4242);
                    else  -- the scan: fail only once the distinct count is waiting
                      for i in 1..2000 loop
                        -- the second connection is up: noted in a session-level advisory lock,
                        -- which outlives the scan's failed transaction (a setting would not)
                        if exists (select 1 from pg_stat_activity where application_name = 'distinct-side') then
                          perform pg_try_advisory_lock(4343);
                        end if;
                        exit when exists (select 1 from pg_locks where locktype = 'advisory' and objid = 4242
                                          and not granted)
                               -- seen and gone: the checks run one by one on this connection
                               or (exists (select 1 from pg_locks where locktype = 'advisory' and objid = 4343
                                           and pid = pg_backend_pid())
                                   and not exists (select 1 from pg_stat_activity
                                                   where application_name = 'distinct-side'))
                               -- at most 30 s per statement, whatever the number of rows
                               or clock_timestamp() - statement_timestamp() > interval '30 s';
                        perform pg_sleep(0.01);
                      end loop;
                    end if;
                    return true;
                  end $$""")
    errors: list[BaseException] = []

    class Recording(psycopg.Connection):
        def execute(self, *a, **k):
            try:
                return super().execute(*a, **k)
            except BaseException as e:
                errors.append(e)
                raise

    exps = [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
            {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "s", "regex": "x("}}]
    with psycopg.connect(pg_uri, autocommit=True) as holder, psycopg.connect(pg_uri) as conn:
        holder.execute("select pg_advisory_lock(4242)")
        res, _ = run_sql(conn, schema="public", table="t", where="only_beside()", group_by=(),
                         specs=list(parse_suite({"name": "x", "expectations": exps}).expectations),
                         connect=lambda: Recording.connect(pg_uri, autocommit=True, application_name="distinct-side",
                                                           options="-c lock_timeout=20s"))
    assert [type(e) for e in errors] == [psycopg.errors.QueryCanceled]
    # the checks were then run one by one: the regex reports its error, uniqueness its result
    assert res[0]["success"] is True and res[0]["result"]["unexpected_count"] == 0
    assert "PostgreSQL refused the check" in res[1]["exception"]


def test_a_ddl_queued_between_the_two_statements_does_not_deadlock_them(pg, pg_uri):
    """The scan holds the table's lock; an ALTER TABLE queues behind it; the distinct count
    on the second connection then queues behind the ALTER, which waits for the scan's
    transaction, which waits for the distinct count: a cycle through the client that
    PostgreSQL's deadlock detector cannot see. The distinct count gives up its lock wait
    and runs on the scan's connection, and the ALTER goes through after the gate.
    (The ALTER's own lock_timeout bounds the test if the cycle is not broken.)"""
    import threading

    pg.execute("create table t (id int); insert into t select i % 40 from generate_series(1, 50) i")
    waiting_ddl = ("select exists (select 1 from pg_locks where relation = 'public.t'::regclass "
                   "and mode = 'AccessExclusiveLock' and not granted)")
    pg.execute(f"""create function ddl_queued() returns boolean language plpgsql as $$
                   begin
                     -- the scan (once per transaction): go on only once the ALTER is queued
                     if current_setting('application_name') <> 'distinct-side'
                        and current_setting('probe.waited', true) is distinct from 'y' then
                       for i in 1..2000 loop exit when ({waiting_ddl}); perform pg_sleep(0.01); end loop;
                       perform set_config('probe.waited', 'y', true);
                     end if;
                     return true;
                   end $$""")

    def wait_for(conn, query):
        for _ in range(2000):
            if conn.execute(query).fetchone()[0]:
                return
            time.sleep(0.01)

    class Late(psycopg.Connection):
        """The distinct count asks for its lock only once the ALTER is queued."""

        def execute(self, query, *a, **k):
            if "count(distinct" in str(getattr(query, "as_string", lambda c: query)(self)):
                with psycopg.connect(pg_uri, autocommit=True) as probe:
                    wait_for(probe, waiting_ddl)
            return super().execute(query, *a, **k)

    ddl_error: list[BaseException] = []

    def alter():
        with psycopg.connect(pg_uri, autocommit=True) as c:
            wait_for(c, "select exists (select 1 from pg_locks l join pg_stat_activity a using (pid) "
                        "where l.relation = 'public.t'::regclass and l.granted "
                        "and a.application_name = 'the-scan')")
            try:
                c.execute("set lock_timeout = '20s'")
                c.execute("alter table t add column z int")
            except psycopg.Error as e:
                ddl_error.append(e)

    exps = [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}}]
    ddl = threading.Thread(target=alter)
    ddl.start()
    try:
        with psycopg.connect(pg_uri, application_name="the-scan") as conn:
            res, _ = run_sql(conn, schema="public", table="t", where="ddl_queued()", group_by=(),
                             specs=list(parse_suite({"name": "x", "expectations": exps}).expectations),
                             connect=lambda: Late.connect(pg_uri, autocommit=True, application_name="distinct-side"))
    finally:
        ddl.join()
    assert ddl_error == []
    assert res[0]["success"] is False and res[0]["result"]["unexpected_count"] == 20  # ids 1..10 twice


def test_a_second_connection_that_drops_does_not_fail_the_gate(pg, pg_uri):
    """The second connection opens but cannot serve (killed here; behind pgbouncer, a pool
    with no free server connection times out the same way): the scan's connection is fine,
    so the distinct counts run there, instead of the gate failing as 'lost the connection'."""
    pg.execute("create table t (id int); insert into t select i % 40 from generate_series(1, 50) i")

    class Dropped(psycopg.Connection):
        def execute(self, query, *a, **k):
            if "count(distinct" in str(getattr(query, "as_string", lambda c: query)(self)):
                with psycopg.connect(pg_uri, autocommit=True) as killer:
                    killer.execute("select pg_terminate_backend(%s)", (self.info.backend_pid,))
            return super().execute(query, *a, **k)

    exps = [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}}]
    with psycopg.connect(pg_uri) as conn:
        res, _ = run_sql(conn, schema="public", table="t", group_by=(),
                         specs=list(parse_suite({"name": "x", "expectations": exps}).expectations),
                         connect=lambda: Dropped.connect(pg_uri, autocommit=True))
    assert res[0]["success"] is False and res[0]["result"]["unexpected_count"] == 20
