"""Benchmark: the quality gate's ``sql`` and ``gx`` engines against one plain aggregate scan.

For each size, a table of orders is generated in PostgreSQL with ``generate_series``
(no indexes and no statistics, like a freshly loaded staging table: the sql engine
samples it to decide whether to group), then timed:

- ``plain scan``: one plain aggregate statement over the columns the suites read
  (``count(*)``, ``count(col)``, ``min``/``max``/``avg``), without the checks' predicates;
- ``scan+distinct``: the same plus ``count(distinct order_id)`` in the same statement
  (a sort of the column, which makes PostgreSQL's plan serial);
- suite A (10 expectations, among them ``expect_column_values_to_be_unique`` and
  ``expect_column_values_to_match_regex``) and suite B (the same with those two swapped for
  a range and a null check), each with ``run_gate(engine="sql")`` and
  ``run_gate(engine="gx")`` (Great Expectations 1.x itself; its import is not timed).

A second table holds the same rows with one ``order_date`` (the suites check the same row
count) and the target's ``PRIMARY KEY (order_id, order_date)``, as a published partition
of a natively partitioned target or a swap staging table built with the target's indexes
has, and statistics (``ANALYZE``), as both have (the loader analyses swap staging at the end
of the stage; autovacuum analyses published partitions): the plain scan and both suites are
timed on it too, in the same rounds, and printed as a block of their own (ratios to the
plain scan of that table). There the key proves ``order_id`` unique once the scan shows
``order_date`` non-null and constant, so suite A needs no distinct count, and the regex
is looked up in the column's most common values (docs/decisions/007).

The machine may be shared, so every measurement is repeated ``--runs`` times (5), the
measurements of a round interleaved, and the median is printed, with the ratios to the
plain scan and between the engines taken from medians of the same run.

    python bench/bench_quality.py                      # 2M and 10M rows
    python bench/bench_quality.py --quick              # 200k rows
    python bench/bench_quality.py --sizes 2000000 --runs 7 --no-gx

Uses ``SAFELOAD_BENCH_PG_URI`` when set (a database the benchmark may create tables in),
else starts an embedded PostgreSQL in a temporary directory. Prints what it measures.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

SUITE_A = {
    "name": "bench_orders_a",
    "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1, "max_value": 1_000_000_000}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "order_id"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_id"}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "amount", "min_value": 0, "max_value": 100000, "mostly": 0.999}},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "currency", "value_set": ["EUR", "USD", "GBP"]}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "currency", "regex": "^[A-Z]{3}$"}},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "status", "value_set": ["placed", "paid", "shipped", "delivered", "cancelled",
                                                      "returned"]}},
        {"type": "expect_column_mean_to_be_between",
         "kwargs": {"column": "amount", "min_value": 10, "max_value": 1000}},
        {"type": "expect_column_max_to_be_between",
         "kwargs": {"column": "order_date", "min_value": "2024-01-01", "max_value": "2024-12-31"}},
    ],
}
# B: A without the two checks whose cost is inherent CPU rather than the engine's (the
# sort behind uniqueness, a regular expression per row; GX runs the very same SQL for
# them): swapped for a range check and a null check
_SWAP = {"expect_column_values_to_be_unique": {"type": "expect_column_values_to_be_between",
                                               "kwargs": {"column": "customer_id", "min_value": 0}},
         "expect_column_values_to_match_regex": {"type": "expect_column_values_to_not_be_null",
                                                 "kwargs": {"column": "status"}}}
SUITE_B = {"name": "bench_orders_b", "expectations": [_SWAP.get(e["type"], e) for e in SUITE_A["expectations"]]}
TABLE = "bench_orders"
#: the same rows on one day, with the target's primary key
PK_TABLE = "bench_orders_pk"
PK_DAY = "2024-06-01"
PLAIN_SCAN = ("select count(*), count(order_id), count(customer_id), count(amount), min(amount), max(amount), "
              "avg(amount), count(currency), count(status), max(order_date) from public.bench_orders")
DISTINCT_SCAN = PLAIN_SCAN.replace(" from public", ", count(distinct order_id) from public")
PK_PLAIN_SCAN = PLAIN_SCAN.replace("public.bench_orders", f"public.{PK_TABLE}")
#: each suite's metrics in one statement, as an engineer writes it by hand (one aggregate query
#: computing the same metrics, the baseline of decision 007's 1.3x goal): the checks' predicates
#: are in it, so its ratio to the plain scan is what the checks themselves cost in PostgreSQL
_HAND_COMMON = ("count(*), count(customer_id), count(amount), "
                "count(*) filter (where amount < 0 or amount > 100000), count(currency), "
                "count(*) filter (where currency not in ('EUR', 'USD', 'GBP')), count(status), "
                "count(*) filter (where status not in ('placed', 'paid', 'shipped', 'delivered', 'cancelled', "
                "'returned')), avg(amount), max(order_date)")
HAND = {"A": f"select {_HAND_COMMON}, count(order_id), count(distinct order_id), "
             "count(*) filter (where currency !~ '^[A-Z]{3}$') from public.@table",
        "B": f"select {_HAND_COMMON}, count(order_id), count(*) filter (where customer_id < 0) from public.@table"}


def create_table(uri: str, rows: int, table: str = TABLE, *, one_day: str | None = None) -> float:
    """Build the bench table: orders over 300 days, without statistics; or (``one_day``) all
    on that day with ``PRIMARY KEY (order_id, order_date)``, analysed."""
    started = time.perf_counter()
    day = sql.SQL("date {}").format(sql.Literal(one_day)) if one_day else sql.SQL("date '2024-01-01' + (g % 300)::int")
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(table)))
        conn.execute(sql.SQL("""
            create unlogged table {} as
            select g::bigint as order_id,
                   (g % 100003)::bigint as customer_id,
                   ((g * 7919) % 100000 / 100.0)::numeric(12,2) as amount,
                   (array['EUR','USD','GBP'])[1 + g % 3]::char(3) as currency,
                   (array['placed','paid','shipped','delivered','cancelled','returned'])[1 + g % 6] as status,
                   {} as order_date
            from generate_series(1::bigint, {}) as g
        """).format(sql.Identifier(table), day, sql.Literal(rows)))
        if one_day:
            conn.execute(sql.SQL("alter table {} add primary key (order_id, order_date)").format(sql.Identifier(table)))
        # autovacuum off: it would analyse mid-run. The unindexed table has no statistics, as
        # after a DELETE + INSERT load (vacuum sets the visibility map and the row estimate,
        # not pg_stats); the keyed one stands for a swap staging table or a published
        # partition, which have them
        conn.execute(sql.SQL("alter table {} set (autovacuum_enabled = false)").format(sql.Identifier(table)))
        conn.execute(sql.SQL("vacuum {}{}").format(sql.SQL("(analyze) ") if one_day else sql.SQL(""),
                                                   sql.Identifier(table)))
    return time.perf_counter() - started


def time_query(uri: str, query: str) -> float:
    with psycopg.connect(uri) as conn:
        started = time.perf_counter()
        conn.execute(query).fetchall()
        elapsed = time.perf_counter() - started
        conn.rollback()
    return elapsed


def time_gate(uri: str, suite: dict, engine: str, work_mem: str | None, table: str = TABLE) -> float:
    from safeload.quality.gate import run_gate

    started = time.perf_counter()
    result = run_gate(uri, table=f"public.{table}", suite=suite, engine=engine, work_mem=work_mem)
    elapsed = time.perf_counter() - started
    assert all(r.engine_used == engine for r in result.results), "the bench suite must run on one engine"
    assert result.success, f"the bench suites should pass on both engines:\n{result.summary()}"
    return elapsed


def sql_plan(uri: str, suite: dict, table: str = TABLE):
    """The sql engine's plan for the suite on this table, planned as run_sql plans it."""
    from safeload.quality.sql.catalog import read_table_info
    from safeload.quality.sql.compile import compile_plan
    from safeload.quality.sql.grouping import plan_groups
    from safeload.quality.sql.regex_memo import memoize_regexes
    from safeload.quality.suite import coerce_suite

    with psycopg.connect(uri, autocommit=True) as conn:
        return plan_groups(conn, memoize_regexes(conn, compile_plan(list(coerce_suite(suite).expectations),
                                                                    read_table_info(conn, "public", table))))


def engine_statement(uri: str, suite: dict, table: str = TABLE) -> str | None:
    """The sql engine's scan as SQL text, when the plan is that one statement (None when a
    distinct count runs beside it: two statements at once, not timed bare)."""
    plan = sql_plan(uri, suite, table)
    if plan.distinct is not None:
        return None
    with psycopg.connect(uri) as conn:
        return plan.scan.as_string(conn)


def sql_way(uri: str, suite: dict, table: str = TABLE) -> str:
    """How the sql engine runs the suite on this table (grouping keys, statements)."""
    plan = sql_plan(uri, suite, table)
    grouped = f"grouped by ({', '.join(plan.group_keys)})" if plan.group_keys else "row by row"
    proof = any(s.kind == "same" for s in plan.slots.values())
    memo = [f"{s.cols[0]}: {s.memo} values" for s in plan.slots.values() if s.memo]
    return (grouped + ("; distinct counts beside it" if plan.distinct is not None else "")
            + ("; unique by the key (order_date constant in the scan)" if proof else "")
            + (f"; regex memo from pg_stats ({', '.join(memo)})" if memo else ""))


def print_suites(uri: str, med: dict[str, float], prefix: str, scan: float, table: str) -> None:
    print(f"  {'suite':<26} {'sql s':>7} {'gx s':>7} {'sql/plain':>10} {'gx/plain':>9} {'gx/sql':>7} "
          f"{'hand/plain':>10} {'stmt/plain':>10} {'sql/hand':>8}  sql engine")
    suites = (("A", "A: incl. unique + regex", SUITE_A), ("B", "B: no unique, no regex", SUITE_B))
    for key, label, suite in suites:
        sql_s = med[f"{prefix}sql {key}"]
        gx_s = med.get(f"{prefix}gx {key}", float("nan"))
        hand_s = med[f"{prefix}hand {key}"]
        stmt = f"{med[f'{prefix}stmt {key}'] / scan:>9.2f}x" if f"{prefix}stmt {key}" in med else f"{'-':>10}"
        print(f"  {label:<26} {sql_s:>7.3f} {gx_s:>7.3f} {sql_s / scan:>9.2f}x {gx_s / scan:>8.2f}x "
              f"{gx_s / sql_s:>6.1f}x {hand_s / scan:>9.2f}x {stmt} {sql_s / hand_s:>7.2f}x  "
              f"{sql_way(uri, suite, table)}")
    print("  (hand: the suite's metrics in one hand-written statement, predicates included; stmt: the sql "
          "engine's own\n   statement alone, on an open connection, when it is one statement. Both over plain "
          "are what the\n   checks' per-row work costs PostgreSQL itself; sql over hand is the engine's whole cost "
          "against hand-written SQL)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="2000000,10000000", help="comma-separated row counts")
    p.add_argument("--quick", action="store_true", help="one small size (200k rows) for a fast check")
    p.add_argument("--runs", type=int, default=5, help="interleaved runs of every measurement (median is kept)")
    p.add_argument("--work-mem", help="work_mem of the sql engine's transaction (default: the server's)")
    p.add_argument("--no-gx", action="store_true", help="skip Great Expectations")
    args = p.parse_args(argv)
    sizes = [200_000] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]

    uri = os.environ.get("SAFELOAD_BENCH_PG_URI")
    tmp = None
    if not uri:
        from safeload.dev import embedded

        tmp = Path(tempfile.mkdtemp(prefix="safeload-bench-"))
        print(f"starting an embedded PostgreSQL in {tmp} ...", file=sys.stderr)
        uri = embedded.start(tmp / "data")
    try:
        if not args.no_gx:
            started = time.perf_counter()
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
            import great_expectations  # noqa: F401  (imported once, outside the timings)

            print(f"(great_expectations import: {time.perf_counter() - started:.1f} s, not timed below)",
                  file=sys.stderr)
        with psycopg.connect(uri) as conn:
            version = conn.execute("show server_version").fetchone()[0]
            settings = dict(conn.execute("select name, setting from pg_settings where name in "
                                         "('max_parallel_workers_per_gather', 'work_mem', 'shared_buffers')"))
        print(f"PostgreSQL {version}; {os.cpu_count()} CPUs; {settings}")
        print(f"suites: {len(SUITE_A['expectations'])} expectations each; median of {args.runs} runs; "
              f"sql engine work_mem: {args.work_mem or 'server default'}")
        for rows in sizes:
            build = create_table(uri, rows)
            print(f"(built {rows:,} rows in {build:.1f} s)", file=sys.stderr)
            build = create_table(uri, rows, PK_TABLE, one_day=PK_DAY)
            print(f"(built {rows:,} rows of {PK_DAY} with the primary key in {build:.1f} s)", file=sys.stderr)
            time_query(uri, PLAIN_SCAN)  # warm the cache
            time_query(uri, PK_PLAIN_SCAN)
            jobs = {"plain": lambda: time_query(uri, PLAIN_SCAN), "dist": lambda: time_query(uri, DISTINCT_SCAN)}
            for key, suite in (("A", SUITE_A), ("B", SUITE_B)):
                jobs[f"sql {key}"] = lambda suite=suite: time_gate(uri, suite, "sql", args.work_mem)
                jobs[f"hand {key}"] = lambda key=key: time_query(uri, HAND[key].replace("@table", TABLE))
                if (stmt := engine_statement(uri, suite)) is not None:
                    jobs[f"stmt {key}"] = lambda stmt=stmt: time_query(uri, stmt)
                if not args.no_gx:
                    jobs[f"gx {key}"] = lambda suite=suite: time_gate(uri, suite, "gx", None)
            jobs["pk plain"] = lambda: time_query(uri, PK_PLAIN_SCAN)
            for key, suite in (("A", SUITE_A), ("B", SUITE_B)):
                jobs[f"pk sql {key}"] = lambda suite=suite: time_gate(uri, suite, "sql", args.work_mem, PK_TABLE)
                jobs[f"pk hand {key}"] = lambda key=key: time_query(uri, HAND[key].replace("@table", PK_TABLE))
                if (stmt := engine_statement(uri, suite, PK_TABLE)) is not None:
                    jobs[f"pk stmt {key}"] = lambda stmt=stmt: time_query(uri, stmt)
                if not args.no_gx:
                    jobs[f"pk gx {key}"] = lambda suite=suite: time_gate(uri, suite, "gx", None, PK_TABLE)
            times: dict[str, list[float]] = {k: [] for k in jobs}
            for _ in range(args.runs):  # interleaved: a load spike hits every measurement alike
                for key, job in jobs.items():
                    times[key].append(job())
            med = {k: statistics.median(v) for k, v in times.items()}
            scan = med["plain"]
            print(f"\n{rows:,} rows, no index, no statistics: plain scan {scan:.3f} s; "
                  f"scan + count(distinct order_id) {med['dist']:.3f} s "
                  f"({med['dist'] / scan:.2f}x plain)")
            print_suites(uri, med, "", scan, TABLE)
            spread = {k: f"{min(v):.3f}-{max(v):.3f}" for k, v in times.items() if not k.startswith("pk ")}
            print(f"  (medians of {args.runs} interleaved runs; min-max: {spread})")
            pk_scan = med["pk plain"]
            print(f"{rows:,} rows with the target's primary key (order_id, order_date), analysed — a published "
                  f"partition / swap staging (one order_date): plain scan {pk_scan:.3f} s")
            print_suites(uri, med, "pk ", pk_scan, PK_TABLE)
            spread = {k[3:]: f"{min(v):.3f}-{max(v):.3f}" for k, v in times.items() if k.startswith("pk ")}
            print(f"  (medians of the same {args.runs} interleaved runs; min-max: {spread})")
            sys.stdout.flush()
        with psycopg.connect(uri, autocommit=True) as conn:
            for table in (TABLE, PK_TABLE):
                conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(table)))
    finally:
        if tmp is not None:
            from safeload.dev import embedded

            embedded.stop(tmp / "data")
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
