"""End-to-end load speed and memory: source -> published partition, against baselines.

For each size (default 1M and 5M rows), on the same rows and the same server:

* raw COPY: the CSV file's bytes streamed with ``COPY ... FROM STDIN`` into an empty table
  (the fastest anything can load it; no staging, no publish, no safety);
* raw pipe: ``COPY (SELECT * FROM source) TO STDOUT`` from a source database piped into
  ``COPY ... FROM STDIN`` of an empty table in the warehouse, in 1 MiB blocks (the
  fastest way to move a query's result; the baseline of the query source);
* safeload: ``PartitionLoader`` stage + publish of the file and of the query (a
  ``QuerySource`` on the source database, another database on the same server), with
  the default ``publish_strategy='auto'``, into a plain table (published by DELETE +
  INSERT) and into a natively partitioned one (published by swap), each in a
  fresh process whose peak RSS is read from the kernel (ru_maxrss), replacing an already
  published partition;
* ``PostgresHook.insert_rows`` (what users write today), on a 100k-row prefix of the file:
  it is too slow to run on millions, and its rows/s does not depend on the size.

The machine is shared, so each measurement is repeated (``--repeats``, default 3) with
the baselines interleaved, and the table shows the median of the per-repeat ratios.
Prints rows/s, ratios, safeload's stage/publish split, and peak memory at each size (it
must not grow with the row count).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DDL = """create table {name} (order_id bigint not null, order_date date not null, customer_id bigint not null,
         amount numeric(12,2) not null, currency char(3) not null, status text not null,
         created_at timestamptz not null)"""
KEY = ", primary key (order_id, order_date))"
BLOCK = 1 << 20

CHILD = r"""
import json, resource, sys, time
import psycopg
from safeload.loads.loader import PartitionLoader, QuerySource
uri, source, table, key, strategy, source_uri = sys.argv[1:7]
if source_uri != "-":
    source = QuerySource.from_conninfo(source_uri, source)
ld = PartitionLoader(lambda: psycopg.connect(uri), table=table, partition_column="order_date",
                     partition_value="2024-05-01", run_key=key, publish_strategy=strategy)
t0 = time.perf_counter()
staged = ld.stage(source)
t1 = time.perf_counter()
r = ld.publish(staged)
t2 = time.perf_counter()
with psycopg.connect(uri) as c:
    how = c.execute("select message from safeload.load_history where id = %s", (r.history_id,)).fetchone()[0]
print(json.dumps({"seconds": t2 - t0, "stage": t1 - t0, "publish": t2 - t1, "rows": r.rows, "path": staged.path,
                  "how": how.split(" by ")[-1],
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def make_csv(path: Path, rows: int) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "order_date", "customer_id", "amount", "currency", "status", "created_at"])
        for i in range(rows):
            w.writerow([i + 1, "2024-05-01", i % 50000, f"{(i * 37) % 100000 / 100:.2f}", ("EUR", "USD", "GBP")[i % 3],
                        "paid", f"2024-05-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}+00:00"])


def keyed(ddl: str) -> str:
    """The table with the primary key a natively partitioned fact table has."""
    head, tail = ddl.rsplit(")", 1)
    return head + KEY + tail


def raw_copy(uri: str, path: Path, key: bool = False) -> float:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("drop table if exists raw_copy")
        conn.execute(keyed(DDL.format(name="raw_copy")) if key else DDL.format(name="raw_copy"))
        t0 = time.perf_counter()
        with conn.transaction():
            with conn.cursor().copy("copy raw_copy from stdin (format csv, header true)") as copy:
                with open(path, "rb") as fh:
                    while block := fh.read(BLOCK):
                        copy.write(block)
        dt = time.perf_counter() - t0
        conn.execute("drop table raw_copy")
    return dt


def raw_pipe(uri: str, source_uri: str, query: str) -> float:
    """COPY (query) TO STDOUT | COPY raw FROM STDIN, batched as safeload batches it."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn, psycopg.connect(source_uri) as src:
        conn.execute("drop table if exists raw_pipe")
        conn.execute(DDL.format(name="raw_pipe"))
        t0 = time.perf_counter()
        with conn.transaction():
            with src.cursor().copy(f"copy ({query}) to stdout") as out, \
                    conn.cursor().copy("copy raw_pipe from stdin") as copy:
                buf = bytearray()
                for data in out:
                    buf += data
                    if len(buf) >= BLOCK:
                        copy.write(buf)
                        buf = bytearray()
                if buf:
                    copy.write(buf)
        dt = time.perf_counter() - t0
        conn.execute("drop table raw_pipe")
    return dt


def safeload_run(uri: str, source: str, key: str, table: str, strategy: str, source_uri: str = "-") -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, uri, source, table, key, strategy, source_uri],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def insert_rows(uri: str, path: Path, n: int) -> float:
    """`PostgresHook.insert_rows` on the first n rows, parsed as the hook's users do."""
    os.environ["AIRFLOW_CONN_BENCH_PG"] = uri
    # the hook's "Loaded N rows so far" line per commit would flood the table; quieter also
    # means a slightly faster baseline, so the ratio against it errs low
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
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


# (label, source kind, target table, strategy, how it must publish): the default strategy,
# auto, on a plain table and on a natively partitioned one
CASES = [
    ("file  plain  (auto)", "file", "public.bench_orders", "auto", "DELETE + INSERT"),
    ("file  native (auto)", "file", "public.bench_orders_native", "auto", "swap"),
    ("query plain  (auto)", "query", "public.bench_orders", "auto", "DELETE + INSERT"),
    ("query native (auto)", "query", "public.bench_orders_native", "auto", "swap"),
    # the same with the primary key (order_id, order_date) on the target, and on raw COPY's
    # table: COPY maintains the index row by row, the swap builds it on staging in one sort
    ("file  plain  + key", "keyed", "public.bench_orders_key", "auto", "DELETE + INSERT"),
    ("file  native + key", "keyed", "public.bench_orders_native_key", "auto", "swap"),
]
QUERY = "select * from public.orders"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,5000000")
    ap.add_argument("--quick", action="store_true", help="200k rows, one repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hook-rows", type=int, default=100_000)
    args = ap.parse_args()
    sizes = [200_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    repeats = 1 if args.quick else args.repeats
    hook_rows = 20_000 if args.quick else args.hook_rows

    from safeload.dev import embedded

    tmp = Path(tempfile.mkdtemp(prefix="safeload-bench-"))
    uri = os.environ.get("SAFELOAD_BENCH_PG_URI") or embedded.start(tmp / "pg")
    source_uri = uri.rsplit("/", 1)[0] + "/safeload_bench_source"
    import psycopg

    results = []
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("drop database if exists safeload_bench_source")
            conn.execute("create database safeload_bench_source")
        for n in sizes:
            path = tmp / f"orders_{n}.csv"
            make_csv(path, n)
            size_mb = path.stat().st_size / 1e6
            with psycopg.connect(source_uri, autocommit=True) as src:
                src.execute("drop table if exists public.orders")
                src.execute(DDL.format(name="public.orders"))
                with src.cursor().copy("copy public.orders from stdin (format csv, header true)") as copy, \
                        open(path, "rb") as fh:
                    while block := fh.read(BLOCK):
                        copy.write(block)
                src.execute("vacuum analyze public.orders")
            with psycopg.connect(uri, autocommit=True) as conn:
                for t in ("bench_orders", "bench_orders_native", "bench_orders_key", "bench_orders_native_key"):
                    conn.execute(f"drop table if exists {t} cascade")
                conn.execute(DDL.format(name="bench_orders"))
                conn.execute(DDL.format(name="bench_orders_native") + " partition by range (order_date)")
                conn.execute(keyed(DDL.format(name="bench_orders_key")))
                conn.execute(keyed(DDL.format(name="bench_orders_native_key")) + " partition by range (order_date)")
                conn.execute("drop schema if exists safeload cascade")
                conn.execute("drop schema if exists safeload_staging cascade")

            def run_case(kind, table, strategy, key):
                if kind in ("file", "keyed"):
                    return safeload_run(uri, str(path), key, table, strategy)
                return safeload_run(uri, QUERY, key, table, strategy, source_uri)

            for label, kind, table, strategy, _ in CASES:  # the first load of the day creates; not timed
                run_case(kind, table, strategy, f"warm-{label}")
            copies, keyed_copies, pipes, runs = [], [], [], {c[0]: [] for c in CASES}
            for rep in range(repeats):
                copies.append(raw_copy(uri, path))
                keyed_copies.append(raw_copy(uri, path, key=True))
                pipes.append(raw_pipe(uri, source_uri, QUERY))
                for label, kind, table, strategy, how in CASES:
                    r = run_case(kind, table, strategy, f"r{rep}-{label}")
                    assert r["rows"] == n and r["path"] == "copy" and r["how"] == how, r
                    runs[label].append(r)
                print(f"  {n:,} rows, repeat {rep + 1}/{repeats}: raw COPY {copies[-1]:.2f}s (with key "
                      f"{keyed_copies[-1]:.2f}s), raw pipe "
                      f"{pipes[-1]:.2f}s, " + ", ".join(f"{k} {v[-1]['seconds']:.2f}s" for k, v in runs.items()),
                      flush=True)
            results.append((n, size_mb, copies, keyed_copies, pipes, runs))
            path.unlink()
        sample = tmp / "hook.csv"
        make_csv(sample, hook_rows)
        hook_s = insert_rows(uri, sample, hook_rows)
    finally:
        if not os.environ.get("SAFELOAD_BENCH_PG_URI"):
            embedded.stop(tmp / "pg", mode="immediate")
        else:
            with psycopg.connect(uri, autocommit=True) as conn:
                conn.execute("drop database if exists safeload_bench_source with (force)")
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

    med = statistics.median
    hook_rps = hook_rows / hook_s
    print(f"\nPostgresHook.insert_rows: {hook_rows:,} rows in {hook_s:.2f}s = {hook_rps:,.0f} rows/s")
    print(f"median of {repeats} repeat(s); 'x base' = safeload's speed / the baseline's, both measured in the same "
          "repeat (file: raw COPY of the file; + key: raw COPY into a table with the key; query: raw COPY TO | "
          "COPY FROM pipe)")
    print(f"{'rows':>10} {'MB':>5} {'raw COPY r/s':>13} {'+ key r/s':>10} {'raw pipe r/s':>13}")
    for n, mb, copies, keyed_copies, pipes, _ in results:
        print(f"{n:>10,} {mb:>5.0f} {n / med(copies):>13,.0f} {n / med(keyed_copies):>10,.0f} "
              f"{n / med(pipes):>13,.0f}")
    print(f"\n{'rows':>10} {'case':<20} {'r/s':>10} {'x base':>7} {'min-max':>11} {'x ins_rows':>10} "
          f"{'stage s':>8} {'publish s':>9} {'RSS MB':>6}")
    for n, _, copies, keyed_copies, pipes, runs in results:
        for label, kind, _, _, _ in CASES:
            rs = runs[label]
            base = {"file": copies, "keyed": keyed_copies, "query": pipes}[kind]
            ratios = [b / r["seconds"] for b, r in zip(base, rs)]
            secs = med(r["seconds"] for r in rs)
            print(f"{n:>10,} {label:<20} {n / secs:>10,.0f} {med(ratios):>7.2f} "
                  f"{min(ratios):>5.2f}-{max(ratios):<5.2f} {(n / secs) / hook_rps:>10.1f} "
                  f"{med(r['stage'] for r in rs):>8.2f} {med(r['publish'] for r in rs):>9.2f} "
                  f"{max(r['maxrss_kb'] for r in rs) / 1024:>6.0f}")
    print("publish_strategy='auto' (the default): a plain table is published by DELETE + INSERT (rows written "
          "twice), a natively partitioned one by swap (the staging table becomes the partition). Each replaces an "
          "already published partition (stage + audit counts and checksum + atomic publish). '+ key': target "
          "and raw COPY's table have the primary key (order_id, order_date). Goal: x base >= 0.7. RSS: peak of "
          "the loading process.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
