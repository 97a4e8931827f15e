"""End-to-end load speed and memory: source -> published partition, against raw COPY.

For each size (default 1M and 5M rows), on the same rows and the same server:

* raw COPY: the CSV file's bytes streamed with ``COPY ... FROM STDIN`` into an empty table
  (the fastest one session loads it; no staging, no publish, no safety);
* raw pipe: ``COPY (SELECT * FROM source) TO STDOUT`` from a source database piped into
  ``COPY ... FROM STDIN`` of an empty table, in 1 MiB blocks (the query source's baseline);
* safeload: ``PartitionLoader.run`` (stage, audit, publish as one unit, as the CLI and
  ``PartitionOverwriteOperator`` run it) with the default ``publish_strategy='auto'``,
  each in a fresh process whose peak RSS is read from the kernel, replacing an already
  published partition, with the default ``parallel='auto'`` (two streams at these
  sizes) unless the label says: a plain table (published by ``direct``: COPY into the
  target in the publishing transaction, a helper stream beside it), the same in one
  stream, and staged (DELETE + INSERT), the plain table's first load of a new day (the
  table created empty before each load), a natively partitioned one (``swap``), in two
  streams, one and four (memory in N), the same with the primary key (order_id,
  order_date) on target and baseline (the plain table also in one stream), and a query
  source into both;
* ``PostgresHook.insert_rows`` (what users write today), on a 100k-row prefix of the file.

Each load's time is split by what it spent it on (COPY, DELETE, INSERT ... SELECT, the
checksum scan, ANALYZE, index builds, the swap's DDL, COMMITs, the rest), measured in
the loading process from the statements it sent (overlapping statements of parallel
sessions count once).

The machine is shared, so each measurement is repeated (``--repeats``, default 3) with
the baselines interleaved, and the table shows the median of the per-repeat ratios.

``--cli`` measures the way a user runs it instead: the ``safeload load`` command, end to
end (process start to exit), against ``psql \\copy`` of the same file into an empty table,
interleaved, median of the repeats, on both kinds of target, with the default streams
(``auto``), in one stream and in two, and a plain table's new day (an empty table); and
``psql`` itself replacing a plain table's day (DELETE and ``\\copy`` in one transaction),
the floor of a replacement.

``--server`` picks the server: ``embedded`` (default: the development server of
safeload.dev.embedded, fsync off), a PostgreSQL bin directory (a fresh server is
initialised from it: ``--fsync`` on by default, ``--wal-level`` replica or minimal), or a
URI (also ``SAFELOAD_BENCH_PG_URI``).

    python bench/bench_load.py                                  # the table make bench prints
    python bench/bench_load.py --server /usr/lib/postgresql/15/bin --cli --sizes 1000000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import servers  # noqa: E402 - bench/ is not a package

DDL = """create table {name} (order_id bigint not null, order_date date not null, customer_id bigint not null,
         amount numeric(12,2) not null, currency char(3) not null, status text not null,
         created_at timestamptz not null)"""
KEY = ", primary key (order_id, order_date))"
BLOCK = 1 << 20
DAY = "2024-05-01"

#: one load in a fresh process: its time, what it spent it on, its peak RSS
CHILD = r"""
import collections, contextlib, json, resource, sys, threading, time
import psycopg
from safeload.loads.loader import PartitionLoader, QuerySource

uri, source, table, key, strategy, source_uri, parallel = sys.argv[1:8]
spans, lock = [], threading.Lock()

def kind(text):
    t = " ".join(text.split()).lower()
    for prefix, what in (("copy ", "copy"), ('delete from "', "delete"), ('insert into "', "insert"),
                         ("select count(*), coalesce(sum(hash_record_extended", "checksum"), ("analyze", "analyze")):
        if t.startswith(prefix):
            return what
    if " primary key (" in t or " unique (" in t or t.startswith("create index"):
        return "indexes"
    if "detach partition" in t or "attach partition" in t or t.startswith(("lock table", 'drop table "public"')):
        return "swap DDL"
    if t.startswith('select count(*) from "public"'):
        return "old rows count"
    return "other SQL"

def span(what, t0):
    with lock:
        spans.append((what, t0, time.perf_counter()))

class Cursor(psycopg.Cursor):
    def execute(self, query, params=None, **kw):
        t0 = time.perf_counter()
        try:
            return super().execute(query, params, **kw)
        finally:
            span(kind(query if isinstance(query, str) else query.as_string(self.connection)), t0)

    @contextlib.contextmanager
    def copy(self, statement, params=None, **kw):
        t0 = time.perf_counter()
        with super().copy(statement, params, **kw) as cp:
            yield cp
        span("copy", t0)

class Connection(psycopg.Connection):
    @contextlib.contextmanager
    def transaction(self, *a, **kw):
        outer = self.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        box = []
        with super().transaction(*a, **kw) as tx:
            yield tx
            box.append(time.perf_counter())
        if outer and box:
            span("commit", box[0])

if source_uri != "-":
    source = QuerySource.from_conninfo(source_uri, source)
ld = PartitionLoader(lambda: Connection.connect(uri, cursor_factory=Cursor), table=table,
                     partition_column="order_date", partition_value="2024-05-01", run_key=key,
                     publish_strategy=strategy, parallel=parallel if parallel == "auto" else int(parallel))
t0 = time.perf_counter()
r = ld.run(source)
t1 = time.perf_counter()
pieces = collections.defaultdict(float)
for what in {w for w, _, _ in spans}:  # the union of each kind's spans: parallel sessions count once
    end = t0
    for _, a, b in sorted((s for s in spans if s[0] == what), key=lambda s: s[1]):
        a = max(a, end)
        if b > a:
            pieces[what] += b - a
            end = b
pieces["client"] = max(0.0, (t1 - t0) - sum(pieces.values()))
print(json.dumps({"seconds": t1 - t0, "rows": r.rows, "how": r.published_by, "pieces": pieces,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def make_csv(path: Path, rows: int) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "order_date", "customer_id", "amount", "currency", "status", "created_at"])
        for i in range(rows):
            w.writerow([i + 1, DAY, i % 50000, f"{(i * 37) % 100000 / 100:.2f}", ("EUR", "USD", "GBP")[i % 3],
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


def safeload_run(uri: str, source: str, key: str, table: str, strategy: str, parallel: int | str,
                 source_uri: str = "-") -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, uri, source, table, key, strategy, source_uri, str(parallel)],
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


# (label, source kind, target table, COPY streams, how it must publish): the default strategy,
# auto, except where the label says "staged" (delete_insert: what auto did on a plain table
# before direct, and still does where the stage and publish are separate tasks). Streams
# "auto" is the default (decisions 046, 047): at these sizes two streams (into a plain
# table: beside the publishing transaction; into a natively partitioned one: into
# staging), one for a query source.
NEW_DAY = "public.bench_orders_new"
CASES = [
    ("file  plain  x2 (auto)", "file", "public.bench_orders", "auto", "direct"),
    ("file  plain  x1", "file", "public.bench_orders", 1, "direct"),
    ("file  plain  staged", "file", "public.bench_orders", 1, "delete_insert"),
    # the first load of a day (a daily run's usual case; the others replace a day): the
    # table is created empty before each load, as raw COPY's is, so the DELETE finds nothing
    ("file  plain  new day", "file", NEW_DAY, "auto", "direct"),
    ("file  native x2 (auto)", "file", "public.bench_orders_native", "auto", "swap"),
    ("file  native x1", "file", "public.bench_orders_native", 1, "swap"),
    ("file  native x4", "file", "public.bench_orders_native", 4, "swap"),
    # the same with the primary key (order_id, order_date) on the target, and on raw COPY's
    # table: COPY maintains the index row by row, the swap builds it on staging in one sort
    ("file  plain  + key (auto)", "keyed", "public.bench_orders_key", "auto", "direct"),
    ("file  plain  + key x1", "keyed", "public.bench_orders_key", 1, "direct"),
    ("file  plain  + key staged", "keyed", "public.bench_orders_key", 1, "delete_insert"),
    ("file  native + key (auto)", "keyed", "public.bench_orders_native_key", "auto", "swap"),
    ("query plain", "query", "public.bench_orders", "auto", "direct"),
    ("query native", "query", "public.bench_orders_native", "auto", "swap"),
]
QUERY = "select * from public.orders"
PIECES = ["copy", "delete", "insert", "checksum", "analyze", "indexes", "swap DDL", "old rows count", "commit",
          "other SQL", "client"]


def load_tables(uri: str) -> None:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        for t in ("bench_orders", "bench_orders_native", "bench_orders_key", "bench_orders_native_key",
                  "bench_orders_new"):
            conn.execute(f"drop table if exists {t} cascade")
        conn.execute(DDL.format(name="bench_orders"))
        conn.execute(DDL.format(name="bench_orders_native") + " partition by range (order_date)")
        conn.execute(keyed(DDL.format(name="bench_orders_key")))
        conn.execute(keyed(DDL.format(name="bench_orders_native_key")) + " partition by range (order_date)")
        conn.execute("drop schema if exists safeload cascade")
        conn.execute("drop schema if exists safeload_staging cascade")


def in_process(uri: str, tmp: Path, sizes: list[int], repeats: int, hook_rows: int) -> None:
    import psycopg

    source_uri = uri.rsplit("/", 1)[0] + "/safeload_bench_source"
    results = []
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("drop database if exists safeload_bench_source")
        conn.execute("create database safeload_bench_source")
    try:
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
            load_tables(uri)

            def run_case(kind, table, streams, key, how):
                strategy = "delete_insert" if how == "delete_insert" else "auto"
                if table == NEW_DAY:
                    with psycopg.connect(uri, autocommit=True) as conn:
                        conn.execute(f"drop table if exists {NEW_DAY}")
                        conn.execute(DDL.format(name=NEW_DAY))
                if kind in ("file", "keyed"):
                    return safeload_run(uri, str(path), key, table, strategy, streams)
                return safeload_run(uri, QUERY, key, table, strategy, streams, source_uri)

            for label, kind, table, streams, how in CASES:  # the first load of the day creates; not timed
                run_case(kind, table, streams, f"warm-{label}", how)
            copies, keyed_copies, pipes, runs = [], [], [], {c[0]: [] for c in CASES}
            for rep in range(repeats):
                copies.append(raw_copy(uri, path))
                keyed_copies.append(raw_copy(uri, path, key=True))
                pipes.append(raw_pipe(uri, source_uri, QUERY))
                for label, kind, table, streams, how in CASES:
                    r = run_case(kind, table, streams, f"r{rep}-{label}", how)
                    assert r["rows"] == n and r["how"] == how, (label, r)
                    runs[label].append(r)
                print(f"  {n:,} rows, repeat {rep + 1}/{repeats}: raw COPY {copies[-1]:.2f}s (with key "
                      f"{keyed_copies[-1]:.2f}s), raw pipe {pipes[-1]:.2f}s, " +
                      ", ".join(f"{k.strip()} {v[-1]['seconds']:.2f}s" for k, v in runs.items()), flush=True)
            results.append((n, size_mb, copies, keyed_copies, pipes, runs))
            path.unlink()
        sample = tmp / "hook.csv"
        make_csv(sample, hook_rows)
        hook_s = insert_rows(uri, sample, hook_rows)
    finally:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("drop database if exists safeload_bench_source with (force)")
    report(results, repeats, hook_rows, hook_s)


def report(results, repeats: int, hook_rows: int, hook_s: float) -> None:
    med = statistics.median
    hook_rps = hook_rows / hook_s
    print(f"\nPostgresHook.insert_rows: {hook_rows:,} rows in {hook_s:.2f}s = {hook_rps:,.0f} rows/s")
    print(f"median of {repeats} repeat(s); 'x base' = safeload's speed / the baseline's, both measured in the same "
          "repeat (file: raw COPY of the file in one session; + key: raw COPY into a table with the key; query: "
          "raw COPY TO | COPY FROM pipe)")
    print(f"{'rows':>10} {'MB':>5} {'raw COPY r/s':>13} {'+ key r/s':>10} {'raw pipe r/s':>13}")
    for n, mb, copies, keyed_copies, pipes, _ in results:
        print(f"{n:>10,} {mb:>5.0f} {n / med(copies):>13,.0f} {n / med(keyed_copies):>10,.0f} "
              f"{n / med(pipes):>13,.0f}")
    print(f"\n{'rows':>10} {'case':<25} {'published by':<13} {'r/s':>10} {'x base':>7} {'min-max':>11} "
          f"{'x ins_rows':>10} {'RSS MB':>6}  where the time goes (median seconds)")
    for n, _, copies, keyed_copies, pipes, runs in results:
        for label, kind, _, _, how in CASES:
            rs = runs[label]
            base = {"file": copies, "keyed": keyed_copies, "query": pipes}[kind]
            ratios = [b / r["seconds"] for b, r in zip(base, rs)]
            secs = med(r["seconds"] for r in rs)
            pieces = {p: med(r["pieces"].get(p, 0.0) for r in rs) for p in PIECES}
            spent = ", ".join(f"{p} {v:.2f}" for p, v in pieces.items() if v >= 0.005)
            print(f"{n:>10,} {label:<25} {how:<13} {n / secs:>10,.0f} {med(ratios):>7.2f} "
                  f"{min(ratios):>5.2f}-{max(ratios):<5.2f} {(n / secs) / hook_rps:>10.1f} "
                  f"{max(r['maxrss_kb'] for r in rs) / 1024:>6.0f}  {spent}")
    print("publish_strategy='auto' (the default), loads run as one unit (PartitionLoader.run: the CLI, "
          "PartitionOverwriteOperator): a plain table is published by direct (COPY into the target inside the "
          "publishing transaction: DELETE, COPY, audit scan, COMMIT), a natively partitioned one by swap (the "
          "staging table becomes the partition); 'xN': N parallel COPY streams (direct: N - 1 beside the "
          "transaction; swap: into staging). Each replaces an already published partition, but 'new day' (into an "
          "empty table, as raw COPY's). Goals: plain "
          ">= 0.8x, native >= 0.9x, x2 >= 1.0x. RSS: peak of the loading process (flat in N). Where the time goes: the statements the load sent, by kind (parallel "
          "sessions' overlapping statements of one kind counted once; kinds may overlap); client: the rest "
          "(Python, reading the file).")


# ----------------------------------------------------------------------------- --cli

#: (label, target, --parallel): None is the default (auto, decisions 046, 047: two streams
#: from 2 MiB of CSV on); each load replaces the day, but h_new's is a new day: the table is
#: created empty before each of its loads (as psql's is), so its DELETE finds nothing
CLI_CASES = [("plain (auto)", "h_plain", None), ("plain x1", "h_plain", 1), ("plain, new day", "h_new", None),
             ("native (auto)", "h_native", None), ("native x1", "h_native", 1), ("native x2", "h_native", 2)]


def end_to_end(uri: str, tmp: Path, sizes: list[int], repeats: int, psql: str, cli: str | None = None,
               max_streams: int = 2) -> None:
    """The CLI, end to end, against ``psql \\copy``: process start to exit, interleaved.

    :param cli: the command to run (default: this safeload's); another version's, to compare
    :param max_streams: leave out the cases with more streams (1: a version without --parallel)
    """
    import psycopg

    cli = cli or str(Path(sys.executable).parent / "safeload")
    cases = [c for c in CLI_CASES if c[2] is None or 1 < max_streams and c[2] <= max_streams]
    out = []
    for n in sizes:
        path = tmp / f"orders_{n}.csv"
        make_csv(path, n)
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("drop table if exists h_plain, h_native, h_new, h_raw, h_praw cascade")
            conn.execute(DDL.format(name="h_plain"))
            conn.execute(DDL.format(name="h_native") + " partition by range (order_date)")

        def load(table: str, streams: int | None) -> float:
            if table == "h_new":
                with psycopg.connect(uri, autocommit=True) as conn:
                    conn.execute("drop table if exists h_new")
                    conn.execute(DDL.format(name="h_new"))
            t0 = time.perf_counter()
            subprocess.run([*cli.split(), "load", "--conn", uri, "--table", f"public.{table}", "--partition", DAY,
                            "--partition-column", "order_date", "--source", str(path),
                            *(["--parallel", str(streams)] if streams else [])],
                           check=True, capture_output=True, timeout=3600)
            return time.perf_counter() - t0

        def psql_copy() -> float:
            with psycopg.connect(uri, autocommit=True) as conn:
                conn.execute("drop table if exists h_raw")
                conn.execute(DDL.format(name="h_raw"))
            t0 = time.perf_counter()
            subprocess.run([psql, "-q", uri, "-c", f"\\copy h_raw from '{path}' with (format csv, header true)"],
                           check=True, capture_output=True, timeout=3600)
            return time.perf_counter() - t0

        replace_sql = tmp / "replace.sql"  # psql replacing the day itself: the floor of a plain replace
        replace_sql.write_text(f"begin;\ndelete from h_praw where order_date = '{DAY}';\n"
                               f"\\copy h_praw from '{path}' with (format csv, header true)\ncommit;\n")

        def psql_replace() -> float:
            t0 = time.perf_counter()
            subprocess.run([psql, "-q", "-v", "ON_ERROR_STOP=1", uri, "-f", str(replace_sql)], check=True,
                           capture_output=True, timeout=3600)
            return time.perf_counter() - t0

        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("drop table if exists h_praw")
            conn.execute(DDL.format(name="h_praw"))
        psql_replace()  # the day to replace; not timed
        for _, table, streams in cases:  # the first load of the day; not timed
            load(table, streams)
        raws, replaces, loads = [], [], {label: [] for label, _, _ in cases}
        for rep in range(repeats):
            raws.append(psql_copy())
            replaces.append(psql_replace())
            for label, table, streams in cases:
                loads[label].append(load(table, streams))
            print(f"  {n:,} rows, repeat {rep + 1}/{repeats}: psql \\copy {raws[-1]:.2f}s, psql DELETE + \\copy "
                  f"{replaces[-1]:.2f}s, " +
                  ", ".join(f"{k} {v[-1]:.2f}s" for k, v in loads.items()), flush=True)
        out.append((n, raws, replaces, loads))
        path.unlink()
    med = statistics.median
    print(f"\nsafeload load (the CLI, end to end) against psql \\copy of the same file into an empty table, median "
          f"of {repeats} interleaved runs; x = psql's time / the CLI's")
    print(f"{'rows':>10} {'psql s':>7} {'psql replace':>17} " + " ".join(f"{label:>17}" for label, _, _ in cases))
    for n, raws, replaces, loads in out:
        cells = []
        for secs in [replaces] + [loads[label] for label, _, _ in cases]:
            ratios = [r / s for r, s in zip(raws, secs)]
            cells.append(f"{med(secs):>6.2f}s {med(ratios):>4.2f}x".rjust(17))
        print(f"{n:>10,} {med(raws):>7.2f} " + " ".join(cells))
    print("psql replace: psql itself replacing the day of a plain table (DELETE, then \\copy, in one transaction, "
          "no audit): the floor a plain table's replacement starts from")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000000,5000000")
    ap.add_argument("--quick", action="store_true", help="200k rows, one repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hook-rows", type=int, default=100_000)
    ap.add_argument("--server", default=os.environ.get("SAFELOAD_BENCH_PG_URI") or "embedded",
                    help="embedded (default), a PostgreSQL bin directory to start a fresh server from, or a URI")
    ap.add_argument("--fsync", choices=["on", "off"], help="a started server's fsync (default: on; embedded: off)")
    ap.add_argument("--wal-level", choices=["replica", "minimal"], default="replica",
                    help="a started server's wal_level (minimal: a table created in the COPY's transaction is "
                         "written without WAL)")
    ap.add_argument("--cli", action="store_true", help="the CLI end to end against psql \\copy")
    ap.add_argument("--cli-command", help="with --cli: the command to measure instead of this safeload's (another "
                                          "version's, e.g. 'python -m safeload.cli' with its PYTHONPATH)")
    ap.add_argument("--max-streams", type=int, default=2, help="with --cli: leave out cases with more streams")
    args = ap.parse_args()
    sizes = [200_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    repeats = 1 if args.quick else args.repeats
    hook_rows = 20_000 if args.quick else args.hook_rows

    tmp = Path(tempfile.mkdtemp(prefix="safeload-bench-"))
    started = None
    if args.server.startswith(("postgresql://", "postgres://")):
        uri = args.server
    elif args.server == "embedded" and not args.fsync and args.wal_level == "replica":
        from safeload.dev import embedded

        uri, started = embedded.start(tmp / "pg"), "embedded"
    else:
        started = servers.embedded_bin() if args.server == "embedded" else Path(args.server)
        uri = servers.start(started, tmp / "server", fsync=args.fsync != "off", wal_level=args.wal_level)
    import psycopg

    with psycopg.connect(uri) as conn:
        print(f"server: {conn.execute('select version()').fetchone()[0].split(' on ')[0]}, fsync "
              f"{conn.execute('show fsync').fetchone()[0]}, wal_level {conn.execute('show wal_level').fetchone()[0]}"
              f"; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    try:
        if args.cli:
            bin_dir = started if isinstance(started, Path) else servers.embedded_bin()
            end_to_end(uri, tmp, sizes, repeats, str(bin_dir / "psql"), args.cli_command, args.max_streams)
        else:
            in_process(uri, tmp, sizes, repeats, hook_rows)
    finally:
        if started == "embedded":
            from safeload.dev import embedded

            embedded.stop(tmp / "pg", mode="immediate")
        elif started is not None:
            servers.stop(started, tmp / "server")
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
