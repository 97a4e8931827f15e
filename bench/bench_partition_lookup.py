"""Benchmark: finding the value's partition at publish, on a table with many partitions.

A natively partitioned table gets ``--partitions`` daily partitions (1000 by default:
about three years). Timed, interleaved, ``--repeats`` times each:

- ``pruned``: the loader's look-up (``partitions.partition_for``): the leaves PostgreSQL's
  partition pruning keeps for ``key = value`` (an EXPLAIN), confirmed by the partition's
  constraint;
- ``exhaustive`` (the baseline): the same function reading every partition's constraint
  (``partitions.pruned_leaves`` made to answer "no plan");
- ``publish``: a whole publish of 1000 rows for the last day but two (staging not timed),
  by swap, with the pruned look-up.

Prints the medians and the ratio exhaustive / pruned, and how many of the table's
partitions each look-up has locked when it ends (the loader then rolls its savepoint
back, which releases them; until then they stand in the way of other days' swaps).

    python bench/bench_partition_lookup.py               # 1000 partitions
    python bench/bench_partition_lookup.py --quick       # 100 partitions, 3 repeats

Uses ``SAFELOAD_BENCH_PG_URI`` when set, else starts an embedded PostgreSQL in a
temporary directory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

TABLE = "public.bench_lookup"


def build(uri: str, partitions: int) -> dt.date:
    """The table and its daily partitions; returns the day looked up (the last but two)."""
    first = dt.date(2022, 1, 1)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"drop table if exists {TABLE} cascade")
        conn.execute(f"create table {TABLE} (order_id bigint not null, order_date date not null, amount numeric, "
                     "primary key (order_id, order_date)) partition by range (order_date)")
        with conn.transaction():
            for i in range(partitions):
                d = first + dt.timedelta(days=i)
                conn.execute(f"create table {TABLE}_{i} partition of {TABLE} "
                             f"for values from ('{d}') to ('{d + dt.timedelta(days=1)}')")
    return first + dt.timedelta(days=partitions - 3)


def time_lookup(uri: str, day: str, *, pruned: bool) -> tuple[float, int]:
    """Seconds for one look-up, and how many of the table's partitions it holds locked."""
    from safeload.loads import partitions
    from safeload.loads import sql as q

    real = partitions.pruned_leaves
    if not pruned:
        partitions.pruned_leaves = lambda *a: None  # the exhaustive look-up
    try:
        with psycopg.connect(uri) as conn:
            info = q.target_info(conn, TABLE)
            conn.commit()
            with conn.transaction():
                started = time.perf_counter()
                with conn.transaction():  # as partition_for's own savepoint, kept open to count
                    leaf = partitions.find_partition(conn, info, day)
                    locked = conn.execute(
                        "select count(*) from pg_locks where pid = pg_backend_pid() and locktype = 'relation' "
                        "and relation in (select inhrelid from pg_inherits where inhparent = %s::regclass)",
                        (TABLE,)).fetchone()[0]
                elapsed = time.perf_counter() - started
            assert leaf is not None and leaf.endswith(f"_{(dt.date.fromisoformat(day) - dt.date(2022, 1, 1)).days}")
    finally:
        partitions.pruned_leaves = real
    return elapsed, locked


def time_publish(uri: str, day: str, csv_path: Path, run: int) -> float:
    from safeload.loads.loader import PartitionLoader

    ld = PartitionLoader(lambda: psycopg.connect(uri), table=TABLE, partition_column="order_date",
                         partition_value=day, run_key=f"bench-{run}")
    staged = ld.stage(str(csv_path))
    started = time.perf_counter()
    result = ld.publish(staged)
    elapsed = time.perf_counter() - started
    assert result.published_by == "swap", result
    return elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--partitions", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="100 partitions, 3 repeats")
    args = p.parse_args(argv)
    partitions, repeats = (100, 3) if args.quick else (args.partitions, args.repeats)

    uri = os.environ.get("SAFELOAD_BENCH_PG_URI")
    tmp = None
    if not uri:
        from safeload.dev import embedded

        tmp = Path(tempfile.mkdtemp(prefix="safeload-bench-"))
        print(f"starting an embedded PostgreSQL in {tmp} ...", file=sys.stderr)
        uri = embedded.start(tmp / "data")
    try:
        day = build(uri, partitions).isoformat()
        csv_path = Path(tempfile.mkdtemp(prefix="safeload-bench-")) / "day.csv"
        csv_path.write_text("order_id,order_date,amount\n" + "".join(f"{i},{day},1.00\n" for i in range(1000)))
        times: dict[str, list[float]] = {"pruned": [], "exhaustive": [], "publish": []}
        locks: dict[str, int] = {}
        for run in range(repeats):  # interleaved: a load spike hits every measurement alike
            for key in ("pruned", "exhaustive"):
                elapsed, locks[key] = time_lookup(uri, day, pruned=key == "pruned")
                times[key].append(elapsed)
            times["publish"].append(time_publish(uri, day, csv_path, run))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{partitions} daily partitions; median of {repeats} interleaved runs")
        print(f"  look-up, exhaustive (baseline): {med['exhaustive'] * 1000:8.1f} ms, {locks['exhaustive']} partitions locked")
        print(f"  look-up, pruned (the loader):   {med['pruned'] * 1000:8.1f} ms, {locks['pruned']} partitions locked"
              f"   -> {med['exhaustive'] / med['pruned']:.0f}x faster")
        print(f"  publish of 1000 rows by swap:   {med['publish'] * 1000:8.1f} ms")
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute(f"drop table if exists {TABLE} cascade")
        shutil.rmtree(csv_path.parent, ignore_errors=True)
    finally:
        if tmp is not None:
            from safeload.dev import embedded

            embedded.stop(tmp / "data")
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
