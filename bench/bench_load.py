"""End-to-end load speed and memory: file -> published partition, against two baselines.

For each size (default 1M and 5M rows), on the same CSV file and the same server:

* raw COPY: the file's bytes streamed with `COPY ... FROM STDIN` into an empty table
  (the fastest anything can load it; no staging, no publish, no safety);
* safeload: `PartitionLoader.run()` (stage with COPY, audit counts and checksum, publish
  atomically under the partition lock), into a plain table (DELETE + INSERT) and into a
  natively partitioned one (swap), in a fresh process whose peak RSS is read from the
  kernel (ru_maxrss);
* `PostgresHook.insert_rows` (what users write today), on a 100k-row prefix of the file:
  it is too slow to run on millions, and its rows/s does not depend on the size.

Prints rows/s for each and safeload's speed as a ratio to both baselines, and peak
memory at each size (it must not grow with the row count).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DDL = """create table {name} (order_id bigint not null, order_date date not null, customer_id bigint not null,
         amount numeric(12,2) not null, currency char(3) not null, status text not null,
         created_at timestamptz not null)"""

CHILD = r"""
import json, resource, sys, time
import psycopg
from safeload.loads.loader import PartitionLoader
uri, path, table = sys.argv[1:4]
t0 = time.perf_counter()
r = PartitionLoader(lambda: psycopg.connect(uri), table=table, partition_column="order_date",
                    partition_value="2024-05-01", run_key=sys.argv[4], publish_strategy=sys.argv[5]).run(path)
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": r.rows,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def make_csv(path: Path, rows: int) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "order_date", "customer_id", "amount", "currency", "status", "created_at"])
        for i in range(rows):
            w.writerow([i + 1, "2024-05-01", i % 50000, f"{(i * 37) % 100000 / 100:.2f}", ("EUR", "USD", "GBP")[i % 3],
                        "paid", f"2024-05-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}+00:00"])


def raw_copy(uri: str, path: Path) -> float:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("drop table if exists raw_copy")
        conn.execute(DDL.format(name="raw_copy"))
        t0 = time.perf_counter()
        with conn.transaction():
            with conn.cursor().copy("copy raw_copy from stdin (format csv, header true)") as copy:
                with open(path, "rb") as fh:
                    while block := fh.read(1 << 20):
                        copy.write(block)
        dt = time.perf_counter() - t0
        conn.execute("drop table raw_copy")
    return dt


def safeload_run(uri: str, path: Path, key: str, table: str, strategy: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, uri, str(path), table, key, strategy],
                         capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def insert_rows(uri: str, path: Path, n: int) -> float:
    """`PostgresHook.insert_rows` on the first n rows, parsed as the hook's users do."""
    os.environ["AIRFLOW_CONN_BENCH_PG"] = uri
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("drop table if exists hook_rows")
        conn.execute(DDL.format(name="hook_rows"))
    rows = []
    with open(path, newline="") as fh:
        r = csv.reader(fh)
        next(r)
        for i, row in enumerate(r):
            if i >= n:
                break
            rows.append(row)
    hook = PostgresHook(postgres_conn_id="bench_pg")
    t0 = time.perf_counter()
    hook.insert_rows("hook_rows", rows, commit_every=1000)
    dt = time.perf_counter() - t0
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("drop table hook_rows")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,5000000")
    ap.add_argument("--quick", action="store_true", help="200k rows only")
    ap.add_argument("--hook-rows", type=int, default=100_000)
    args = ap.parse_args()
    sizes = [200_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    hook_rows = 20_000 if args.quick else args.hook_rows

    from safeload.dev import embedded

    tmp = Path(tempfile.mkdtemp(prefix="safeload-bench-"))
    uri = os.environ.get("SAFELOAD_BENCH_PG_URI") or embedded.start(tmp / "pg")
    import psycopg

    results = []
    try:
        for n in sizes:
            path = tmp / f"orders_{n}.csv"
            make_csv(path, n)
            size_mb = path.stat().st_size / 1e6
            with psycopg.connect(uri, autocommit=True) as conn:
                for t in ("bench_orders", "bench_orders_native"):
                    conn.execute(f"drop table if exists {t} cascade")
                conn.execute(DDL.format(name="bench_orders"))
                conn.execute(DDL.format(name="bench_orders_native") + " partition by range (order_date)")
                conn.execute("drop schema if exists safeload cascade")
                conn.execute("drop schema if exists safeload_staging cascade")
            copy_s = min(raw_copy(uri, path) for _ in range(2))
            row = [n, size_mb, copy_s]
            for table, strategy in (("public.bench_orders", "delete_insert"), ("public.bench_orders_native", "swap")):
                # two runs: the first creates the partition, the second replaces it
                runs = [safeload_run(uri, path, f"bench{i}", table, strategy) for i in range(2)]
                assert all(r["rows"] == n for r in runs)
                row += [min(r["seconds"] for r in runs), max(r["maxrss_kb"] for r in runs) / 1024]
            results.append(tuple(row))
            path.unlink()
        sample = tmp / "hook.csv"
        make_csv(sample, hook_rows)
        hook_s = insert_rows(uri, sample, hook_rows)
    finally:
        if not os.environ.get("SAFELOAD_BENCH_PG_URI"):
            embedded.stop(tmp / "pg", mode="immediate")
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

    hook_rps = hook_rows / hook_s
    print(f"PostgresHook.insert_rows: {hook_rows:,} rows in {hook_s:.2f}s = {hook_rps:,.0f} rows/s")
    print(f"{'rows':>10} {'MB':>5} {'raw COPY r/s':>13} | {'delete+insert r/s':>17} {'x COPY':>6} {'x ins_rows':>10} "
          f"{'RSS MB':>6} | {'swap r/s':>10} {'x COPY':>6} {'x ins_rows':>10} {'RSS MB':>6}")
    for n, mb, copy_s, di_s, di_rss, sw_s, sw_rss in results:
        print(f"{n:>10,} {mb:>5.0f} {n / copy_s:>13,.0f} | {n / di_s:>17,.0f} {copy_s / di_s:>6.2f} "
              f"{(n / di_s) / hook_rps:>10.1f} {di_rss:>6.0f} | {n / sw_s:>10,.0f} {copy_s / sw_s:>6.2f} "
              f"{(n / sw_s) / hook_rps:>10.1f} {sw_rss:>6.0f}")
    print("delete+insert: plain table, the default strategy; swap: natively partitioned table, publish_strategy='swap'.")
    print("x COPY: end-to-end speed (stage + audit + atomic publish, replacing a published partition) as a fraction "
          "of raw COPY into an empty table (goal >= 0.7). RSS: peak of the loading process.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
