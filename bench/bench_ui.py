"""The safeload page's queries on a year of daily history for 200 tables, against baselines.

Seeds safeload's tables (the same generator as tests/ui/test_ui_queries.py: 200 tables x
365 daily loads, 3 checks per load), then times each page's queries plus rendering (what
the api-server does per request, minus HTTP), against two baselines measured in the same
run: ``count(*)`` of the load history (one full scan) and the naive overview
(``DISTINCT ON (target)`` over every load). Prints medians and ratios, no absolute claims.

    .venv/bin/python bench/bench_ui.py [--tables 200] [--days 365] [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeats: int) -> float:
    fn()  # warm: plans, caches
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", type=int, default=200)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    args = ap.parse_args()
    repeats = 3 if args.quick else args.repeats

    import psycopg

    from safeload.dev import embedded
    from safeload.metadata import ensure_metadata
    from safeload.ui import queries, render

    sys.path[:0] = [str(ROOT / "tests" / "ui"), str(ROOT / "tests")]  # test_ui_queries imports pgtest
    from test_ui_queries import SEED  # one generator for the test and the benchmark

    tmp = Path(tempfile.mkdtemp(prefix="safeload-bench-ui-"))
    uri = os.environ.get("SAFELOAD_BENCH_PG_URI") or embedded.start(tmp / "pg")
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("drop schema if exists safeload cascade")
            ensure_metadata(conn)
            t = time.perf_counter()
            conn.execute(SEED.replace("%(tables)s", str(args.tables)).replace("%(days)s", str(args.days)))
            n = conn.execute("select count(*) from safeload.load_history").fetchone()[0]
            nq = conn.execute("select count(*) from safeload.quality_results").fetchone()[0]
            print(f"seeded {n:,} loads and {nq:,} check results in {time.perf_counter() - t:.1f} s")
        links = render.Links("/safeload", "")
        target = "public.t001"
        run = ("dag_7", "scheduled__2025-11-30T00:00:00+00:00")

        def baseline_count():
            with queries.read_only(uri) as c:
                c.execute("select count(*) from safeload.load_history").fetchone()

        def baseline_naive():
            with queries.read_only(uri) as c:
                c.execute("select distinct on (target) * from safeload.load_history order by target, id desc").fetchall()

        def overview():
            with queries.read_only(uri) as c:
                tables = queries.existing_tables(c)
                rows, nxt = queries.overview(c, tables=tables)
                render.overview_page(rows, total=queries.table_count(c), next_after=nxt, after="", links=links,
                                     conn_id="warehouse")

        def overview_last_page():
            with queries.read_only(uri) as c:
                rows, nxt = queries.overview(c, after=f"public.t{args.tables - 30:03d}")
                render.overview_page(rows, total=0, next_after=nxt, after="x", links=links, conn_id="warehouse")

        def table():
            with queries.read_only(uri) as c:
                summary = queries.table_summary(c, target)
                history, nb = queries.load_history(c, target)
                render.table_page(target, summary, history, nb, None, links)

        def task():
            with queries.read_only(uri) as c:
                render.task_page(run[0], run[1], "load", queries.run_report(c, dag_id=run[0], run_id=run[1]), links)

        cases = [("baseline: count(*) of load_history", baseline_count),
                 ("baseline: naive DISTINCT ON overview", baseline_naive),
                 ("overview page (50 tables)", overview), ("overview, last page", overview_last_page),
                 ("table page", table), ("task report", task)]
        results = [(label, timed(fn, repeats)) for label, fn in cases]
        base = results[0][1]
        naive = results[1][1]
        print(f"\n{args.tables} tables x {args.days} days, median of {repeats}; ratios against the baselines")
        print(f"{'case':<40} {'ms':>8} {'/count(*)':>10} {'/naive':>8}")
        for label, secs in results:
            print(f"{label:<40} {secs * 1000:>8.1f} {secs / base:>10.2f} {secs / naive:>8.2f}")
    finally:
        if not os.environ.get("SAFELOAD_BENCH_PG_URI"):
            embedded.stop(tmp / "pg", mode="immediate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
