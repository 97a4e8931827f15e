"""What a publish costs the table's readers: how long a reader waits while a partition
is replaced, with a long report running on the table at the same time.

A natively partitioned ``orders`` table holds the day being replaced (``--rows``, 500k by
default) and a small neighbouring day. For each publish strategy, repeated
``--repeats`` times:

1. the new day is staged (not timed);
2. a *report* opens a transaction, reads the whole table and keeps it open for
   ``--hold`` seconds (1.0): it holds ACCESS SHARE on the parent, as any long query does;
3. the publish starts while the report runs;
4. a *dashboard* reads the neighbouring day every 10 ms from before the publish starts
   until it has ended; each read's latency is recorded.

Printed per strategy: the dashboard's slowest and 99th-percentile read during the
publish, and how long the publish took. The baseline is the dashboard's own read time
with no publish running, measured in the same run.

- ``delete_insert``: the report does not block it; the dashboard never waits.
- ``swap``/``auto`` (what safeload does): the parent's ACCESS EXCLUSIVE lock is asked
  for in attempts of 200 ms (``SWAP_LOCK_ATTEMPT_MS``); a dashboard read that arrives
  during an attempt waits at most that long. ``auto`` is given a lock_timeout shorter
  than the report so it also shows the fallback to DELETE + INSERT.
- ``one lock request``: the same swap with a single attempt as long as lock_timeout
  (what a plain ``ALTER TABLE ... DETACH PARTITION`` does): every dashboard read queues
  behind it until the report ends.

    python bench/bench_publish_readers.py            # 500k rows, 3 repeats
    python bench/bench_publish_readers.py --quick    # 50k rows, 1 repeat
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

DDL = """create table public.orders (order_id bigint not null, order_date date not null,
         amount numeric(12,2) not null, status text not null, primary key (order_id, order_date))
         partition by range (order_date)"""
DAY, NEIGHBOUR = "2024-05-02", "2024-05-01"
DASHBOARD = f"select count(*), sum(amount) from public.orders where order_date = '{NEIGHBOUR}'"


def write_csv(path: Path, day: str, n: int, start: int) -> str:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "order_date", "amount", "status"])
        for i in range(start, start + n):
            w.writerow([i, day, f"{i % 1000}.{i % 100:02d}", "paid"])
    return str(path)


def loader(uri: str, day: str, key: str, strategy: str, lock_timeout: str = "30s"):
    from safeload.loads.loader import PartitionLoader

    return PartitionLoader(lambda: psycopg.connect(uri), table="public.orders", partition_column="order_date",
                           partition_value=day, run_key=key, publish_strategy=strategy, lock_timeout=lock_timeout)


def dashboard(uri: str, stop: threading.Event, out: list[tuple[float, float]]) -> None:
    """Read the neighbouring day every 10 ms until told to stop (at most 100k reads)."""
    with psycopg.connect(uri, autocommit=True) as conn:
        for _ in range(100_000):
            if stop.is_set():
                return
            t0 = time.perf_counter()
            conn.execute(DASHBOARD).fetchone()
            out.append((t0, time.perf_counter() - t0))
            time.sleep(0.01)


def one_publish(uri: str, tmp: Path, strategy: str, rows: int, hold: float, rep: int) -> dict:
    from safeload.loads.publish import swap as swap_module

    label = strategy
    lock_timeout = "30s"
    if strategy == "one lock request":
        strategy = "swap"
    if label == "auto":
        lock_timeout = f"{max(hold / 2, 0.2):.1f}s"  # shorter than the report: auto falls back
    ld = loader(uri, DAY, f"{label}-{rep}", strategy, lock_timeout)
    staged = ld.stage(write_csv(tmp / "new.csv", DAY, rows, start=1 + rep))
    reads: list[tuple[float, float]] = []
    stop, held = threading.Event(), threading.Event()
    board = threading.Thread(target=dashboard, args=(uri, stop, reads))

    def report() -> None:
        with psycopg.connect(uri) as conn:
            conn.execute("select count(*) from public.orders").fetchone()
            held.set()
            time.sleep(hold)
            conn.rollback()

    reporter = threading.Thread(target=report)
    saved = swap_module.SWAP_LOCK_ATTEMPT_MS
    if label == "one lock request":
        swap_module.SWAP_LOCK_ATTEMPT_MS = 30_000  # a single attempt as long as lock_timeout
    try:
        board.start()
        time.sleep(0.1)
        reporter.start()
        held.wait(timeout=30)
        t0 = time.perf_counter()
        result = ld.publish(staged)
        t1 = time.perf_counter()
    finally:
        swap_module.SWAP_LOCK_ATTEMPT_MS = saved
        stop.set()
        board.join(timeout=60)
        reporter.join(timeout=60)
    during = [lat for start, lat in reads if t0 <= start + lat and start <= t1]
    with psycopg.connect(uri) as conn:
        how = conn.execute("select message from safeload.load_history order by id desc limit 1").fetchone()[0]
    assert result.rows == rows, result
    return {"publish": t1 - t0, "max": max(during, default=0.0), "reads": len(during),
            "p99": statistics.quantiles(during, n=100, method="inclusive")[98] if len(during) >= 2 else max(during, default=0.0),
            "how": how.split(" by ")[-1]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=500_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--hold", type=float, default=1.0, help="seconds the report keeps the table")
    p.add_argument("--quick", action="store_true", help="50k rows, one repeat")
    args = p.parse_args(argv)
    rows, repeats = (50_000, 1) if args.quick else (args.rows, args.repeats)

    tmp = Path(tempfile.mkdtemp(prefix="safeload-bench-"))
    uri = os.environ.get("SAFELOAD_BENCH_PG_URI")
    if not uri:
        from safeload.dev import embedded

        uri = embedded.start(tmp / "pg")
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("drop table if exists public.orders cascade")
            conn.execute(DDL)
        loader(uri, NEIGHBOUR, "neighbour", "auto").run(write_csv(tmp / "n.csv", NEIGHBOUR, 1000, start=1))
        loader(uri, DAY, "first", "auto").run(write_csv(tmp / "first.csv", DAY, rows, start=1))
        idle: list[tuple[float, float]] = []
        stop = threading.Event()
        t = threading.Thread(target=dashboard, args=(uri, stop, idle))
        t.start()
        time.sleep(1.0)
        stop.set()
        t.join(timeout=30)
        base = [lat for _, lat in idle]
        strategies = ["delete_insert", "swap", "auto", "one lock request"]
        runs: dict[str, list[dict]] = {s: [] for s in strategies}
        for rep in range(repeats):
            for s in strategies:  # interleaved: a load spike hits every strategy alike
                runs[s].append(one_publish(uri, tmp, s, rows, args.hold, rep))
    finally:
        if not os.environ.get("SAFELOAD_BENCH_PG_URI"):
            from safeload.dev import embedded

            embedded.stop(tmp / "pg", mode="immediate")
        shutil.rmtree(tmp, ignore_errors=True)

    med = statistics.median
    print(f"replacing a {rows:,}-row partition while a report holds the table for {args.hold:.1f} s; "
          f"a dashboard reads another day every 10 ms; {repeats} repeat(s), worst of them shown")
    print(f"dashboard read with no publish running: median {med(base) * 1000:.1f} ms, "
          f"max {max(base) * 1000:.1f} ms ({len(base)} reads)")
    print(f"{'strategy':<18} {'published by':<16} {'slowest read':>12} {'p99 read':>9} {'reads':>6} "
          f"{'publish s':>10}")
    for s, rs in runs.items():
        worst = max(rs, key=lambda r: r["max"])
        hows = ", ".join(sorted({r["how"] for r in rs}))
        print(f"{s:<18} {hows:<16} {worst['max'] * 1000:>9.0f} ms {worst['p99'] * 1000:>6.0f} ms "
              f"{sum(r['reads'] for r in rs):>6} {med(r['publish'] for r in rs):>10.2f}")
    print("swap/auto ask for the parent's lock in 200 ms attempts: a read waits at most one attempt. "
          "'one lock request': the same swap waiting in the lock queue until the report ends.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
