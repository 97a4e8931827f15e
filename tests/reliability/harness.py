"""Fault injection for the reliability suite: named crash points in a real loader.

The loader under test is the unchanged :class:`~safeload.loads.loader.PartitionLoader`.
Only its connection is different: :class:`PausingConnection` is a real psycopg
connection (a subclass, so every statement still runs on a real server) that reports
named *phases* as the load passes them, and can stop at one of them:

* ``copy:K``: after the K-th block written to COPY (mid-COPY, the server holds a
  half-filled staging table, or a direct load's target, in an open transaction; with
  parallel streams, each stream counts its own blocks);
* ``stage:before-commit`` / ``stage:after-commit``: the staging transaction, around COMMIT;
* parallel streams (``parallel=N``): ``reserve:after-commit`` (staging created and its
  registry row reserved), ``stream:before-commit`` / ``stream:after-commit`` (a stream's
  COPY, around its COMMIT), ``complete:before-commit`` / ``complete:after-commit`` (the
  audit of what the streams loaded, and the registry row completed);
* ``publish:after-delete``, ``publish:after-insert`` (delete_insert),
  ``publish:after-detach``, ``publish:after-attach`` (swap) and ``publish:after-delete``,
  ``publish:after-copy`` (direct: the rows COPYed into the target, not committed; in two
  streams also ``publish:after-insert``, the helper's rows from the side table): inside
  the publish transaction, between its statements;
* ``publish:before-commit`` / ``publish:after-commit``: around the publish's COMMIT.

A phase is recognised from what the loader sends (the statement text, the outermost
transaction it belongs to), so the loader carries no test hook and pays nothing for it.
If the loader changes its SQL so that a phase is never reached, the tests that ask for
it fail with "never reached", rather than passing without injecting anything.
See docs/decisions/009-crash-point-injection.md.

``python -m reliability.harness load ... --pause-at PHASE`` runs one load in a child
process: at the phase it prints ``PAUSED <phase>`` and waits for a line on stdin (at most
:data:`PAUSE_LIMIT` s), so the test can SIGKILL it there, or crash the server and let it
go on. Without ``--pause-at`` it loads and prints ``DONE <json>``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

TESTS = Path(__file__).resolve().parents[1]
PAUSE_LIMIT = 120.0  # a paused child nobody kills or releases gives up after this
APP = "safeload-reliability"  # application_name of every connection the harness opens

HEADER = ["order_id", "order_date", "amount", "status"]
PLAIN = """create table public.orders (order_id bigint not null, order_date date not null,
           amount numeric(12,2) not null, status text, primary key (order_date, order_id))"""
NATIVE = PLAIN + " partition by range (order_date)"

#: the ways a load runs in the trials: (publish_strategy, target table, COPY streams)
MODES = {
    "delete_insert": ("delete_insert", PLAIN, 1),
    "swap": ("swap", NATIVE, 1),
    "direct": ("auto", PLAIN, 1),  # auto on a plain table, loaded as one unit: no staging
    "swap, 2 streams": ("swap", NATIVE, 2),
    "delete_insert, 2 streams": ("delete_insert", PLAIN, 2),
    # a plain table in two streams, as one unit: a helper COPYs into a side table beside
    # the publishing transaction's DELETE and COPY, which then INSERTs the helper's rows
    "direct, 2 streams": ("auto", PLAIN, 2),
}
DAY = "2024-05-02"
NEIGHBOUR = "2024-05-01"


# --------------------------------------------------------------------------- data

def write_csv(path: Path | str, day: str, n: int, start: int = 1, status: str = "placed") -> str:
    """``n`` clean rows of ``day``; ids from ``start``. Amounts vary so sums tell versions apart."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i in range(start, start + n):
            w.writerow([i, day, f"{i % 1000}.{i % 100:02d}", status])
    return str(path)


def create_target(conn: psycopg.Connection, strategy: str) -> None:
    """delete_insert loads a plain table, swap and auto a natively partitioned one (swap needs
    it; auto swaps there); a mode of :data:`MODES` its own table."""
    if strategy in MODES:
        conn.execute(MODES[strategy][1])
        return
    conn.execute(NATIVE if strategy in ("swap", "auto") else PLAIN)


def mode_loader(uri: str, mode: str, *, run_key: str, **kw):
    """:func:`loader` for one of :data:`MODES`."""
    strategy, _, streams = MODES[mode]
    return loader(uri, strategy=strategy, run_key=run_key, parallel=streams, **kw)


def version(conn: psycopg.Connection, day: str = DAY) -> tuple[int, str]:
    """(rows, checksum) of the published partition.

    Computed here, not with the loader's own checksum, so the oracle does not share code
    with what it checks: an order-independent sum of a 64-bit hash of every row.
    """
    return tuple(conn.execute(
        "select count(*), coalesce(sum(hashtextextended(row(order_id, order_date, amount, status)::text, 0)"
        "::numeric), 0)::text from public.orders where order_date = %s", (day,)).fetchone())


def totals(conn: psycopg.Connection, day: str = DAY) -> tuple[int, Any]:
    """What a reader of the partition sees: (count, sum of amount)."""
    return tuple(conn.execute("select count(*), sum(amount) from public.orders where order_date = %s",
                              (day,)).fetchone())


#: pg_locks is server-wide: look only at sessions of this test's database
THIS_DB = "pid in (select pid from pg_stat_activity where datname = current_database())"


def advisory_locks(conn: psycopg.Connection) -> int:
    return conn.execute(f"select count(*) from pg_locks where locktype = 'advisory' and {THIS_DB}").fetchone()[0]


def staging_leftovers(conn: psycopg.Connection) -> tuple[int, int]:
    """(tables in safeload_staging, rows in the staging registry)."""
    tables = conn.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone()[0]
    registry = conn.execute("select count(*) from safeload.staging").fetchone()[0]
    return tables, registry


def wait_backends_gone(conn: psycopg.Connection, app: str = APP, timeout: float = 30.0) -> None:
    """Wait (bounded) until the server has ended every backend of a dead client.

    A SIGKILLed client's socket is closed by the kernel; the server notices, rolls back
    and exits the backend, which releases its locks. Assertions about locks must wait for that.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = conn.execute("select count(*) from pg_stat_activity where application_name = %s", (app,)).fetchone()[0]
        if n == 0:
            return
        time.sleep(0.02)
    raise AssertionError(f"backends of {app} still there after {timeout} s")


def together(work: Callable[[Any], Any], items: list, *, timeout: float = 600.0) -> list[str]:
    """Run ``work(item)`` in a thread per item, all released at once by a barrier (so their
    stages and publishes overlap); return the errors as text, ``"<item>: <Error>: <message>"``.
    Fails when a thread is still running after ``timeout`` (a hang)."""
    barrier, errors = threading.Barrier(len(items)), []

    def run(item: Any) -> None:
        try:
            barrier.wait(timeout=60)
            work(item)
        except Exception as e:  # noqa: BLE001 - every error is reported to the test
            errors.append(f"{item}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


# --------------------------------------------------------------------------- phases

_TARGET_DELETE = re.compile(r'^\s*delete from "')  # the partition's DELETE (not safeload.staging's)
_TARGET_INSERT = re.compile(r'^\s*insert into "')
_DETACH = re.compile(r"\bdetach partition\b")
_ATTACH = re.compile(r"\battach partition\b")
_REGISTRY_LOCK = re.compile(r"from safeload\.staging where staging_table = .* for update")
_REGISTRY_INSERT = re.compile(r"^\s*insert into safeload\.staging\b")
_REGISTRY_COMPLETE = re.compile(r"^\s*update safeload\.staging\b")


class PausingCursor(psycopg.Cursor):
    """A real cursor that tells its connection what it ran (statement text, COPY blocks)."""

    def execute(self, query, params=None, **kwargs):
        cur = super().execute(query, params, **kwargs)
        conn = self.connection
        if isinstance(conn, PausingConnection):
            text = query if isinstance(query, str) else query.as_string(conn)
            conn._statement(text)
        return cur

    @contextmanager
    def copy(self, statement, params=None, **kwargs):
        conn = self.connection
        with super().copy(statement, params, **kwargs) as cp:
            if isinstance(conn, PausingConnection):
                conn._tags.add("copy")
                yield _CountingCopy(cp, conn)
            else:
                yield cp
        if isinstance(conn, PausingConnection) and "publish" in conn._tags:
            conn._phase("publish:after-copy")  # a direct load: the rows are in the target, not committed


class _CountingCopy:
    """Forwards to the real :class:`psycopg.Copy`; reports ``copy:K`` after each block."""

    def __init__(self, copy: psycopg.Copy, conn: PausingConnection):
        self._copy, self._conn, self._blocks = copy, conn, 0

    def write(self, data):
        self._copy.write(data)
        self._blocks += 1
        self._conn._phase(f"copy:{self._blocks}")

    def write_row(self, row):
        self._copy.write_row(row)
        self._blocks += 1
        if self._blocks % 10_000 == 0:  # the checked (row by row) path: every 10,000 rows
            self._conn._phase(f"copy:{self._blocks // 10_000}")

    def __getattr__(self, name):
        return getattr(self._copy, name)


class PausingConnection(psycopg.Connection):
    """A real psycopg connection that calls :attr:`hook` with each phase it passes.

    Connect with ``PausingConnection.connect(uri, cursor_factory=PausingCursor)`` (see
    :func:`connector`). The hook gets the phase name; it may block (the test's pause).
    """

    hook: Callable[[str], None] | None = None

    def _statement(self, text: str) -> None:
        if _REGISTRY_INSERT.search(text):
            self._tags.add("register")
        elif _REGISTRY_COMPLETE.search(text):
            self._tags.add("complete")
        if _REGISTRY_LOCK.search(text):
            self._tags.add("publish")
        elif _TARGET_DELETE.search(text) and self._depth:
            # the partition's DELETE: a staged publish's, or a direct load's, which then COPYs
            # into the target in the same transaction
            self._tags.add("publish")
            self._phase("publish:after-delete")
        elif "publish" in self._tags:
            if _TARGET_INSERT.search(text):
                self._phase("publish:after-insert")
            elif _DETACH.search(text):
                self._phase("publish:after-detach")
            elif _ATTACH.search(text):
                self._phase("publish:after-attach")

    def _phase(self, name: str) -> None:
        self.phases.append(name)
        if self.hook is not None:
            self.hook(name)

    @contextmanager
    def transaction(self, *args, **kwargs):
        outermost = self._depth == 0
        if outermost:
            self._tags = set()
        self._depth += 1
        try:
            with super().transaction(*args, **kwargs) as tx:
                yield tx
                if outermost:  # the block ended without an error: COMMIT comes next
                    self._phase(f"{self._kind()}:before-commit")
        finally:
            self._depth -= 1
        if outermost:
            self._phase(f"{self._kind()}:after-commit")

    def _kind(self) -> str:
        tags = self._tags
        if "publish" in tags:
            return "publish"
        if "copy" in tags:  # a stage of one stream registers in its COPY's transaction; a stream does not
            return "stage" if "register" in tags else "stream"
        if "register" in tags:
            return "reserve"
        return "complete" if "complete" in tags else "other"

    @classmethod
    def connect(cls, *args, **kwargs):
        conn = super().connect(*args, **kwargs)
        conn._depth, conn._tags, conn.phases = 0, set(), []
        return conn


def connector(uri: str, hook: Callable[[str], None] | None = None, app: str = APP) -> Callable[[], psycopg.Connection]:
    """A ``connect`` for :class:`PartitionLoader` whose connections report phases to ``hook``."""

    def connect() -> psycopg.Connection:
        conn = PausingConnection.connect(uri, cursor_factory=PausingCursor, application_name=app)
        conn.hook = hook
        return conn

    return connect


def loader(uri: str, *, strategy: str, run_key: str, day: str = DAY, hook=None, app: str = APP, **kw):
    from safeload.loads.loader import PartitionLoader

    return PartitionLoader(connector(uri, hook, app), table="public.orders", partition_column="order_date",
                           partition_value=day, run_key=run_key, publish_strategy=strategy, **kw)


# --------------------------------------------------------------------------- the child process

class Child:
    """One load in a child process (``python -m reliability.harness load``)."""

    def __init__(self, uri: str, source: str, *, strategy: str, run_key: str, pause_at: str | None = None,
                 day: str = DAY, query: bool = False, parallel: int = 1):
        cmd = [sys.executable, "-m", "reliability.harness", "load", "--uri", uri, "--source", source,
               "--strategy", strategy, "--run-key", run_key, "--day", day, "--parallel", str(parallel)] + \
            (["--query"] if query else [])
        if pause_at:
            cmd += ["--pause-at", pause_at]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)

    def wait_line(self, prefix: str, timeout: float = 90.0) -> str | None:
        """The first stdout line starting with ``prefix``, or None if the child ends or time runs out."""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    continue
                line = self.proc.stdout.readline()
                if not line:
                    return None
                if line.startswith(prefix):
                    return line.strip()
            return None
        finally:
            sel.close()

    def release(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def kill(self) -> bool:
        """SIGKILL; True when it landed on a live loader (not one that had already exited)."""
        if self.proc.poll() is not None:
            return False
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        return self.proc.returncode == -signal.SIGKILL

    def finish(self, timeout: float = 120.0) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reliability.harness")
    sub = p.add_subparsers(dest="cmd", required=True)
    ld = sub.add_parser("load")
    ld.add_argument("--uri", required=True)
    ld.add_argument("--source", required=True)
    ld.add_argument("--strategy", required=True)
    ld.add_argument("--run-key", required=True)
    ld.add_argument("--day", default=DAY)
    ld.add_argument("--pause-at")
    ld.add_argument("--query", action="store_true", help="--source is a SQL query on --uri (a QuerySource)")
    ld.add_argument("--parallel", type=int, default=1, help="COPY streams")
    args = p.parse_args(argv)
    paused = threading.Lock()  # parallel streams pass the same phase each: pause the first only

    def hook(phase: str) -> None:
        if phase != args.pause_at or not paused.acquire(blocking=False):
            return
        print(f"PAUSED {phase}", flush=True)
        ready, _, _ = _select_stdin(PAUSE_LIMIT)
        if not ready:
            print(f"nobody killed or released the loader within {PAUSE_LIMIT} s", file=sys.stderr)
            os._exit(3)
        sys.stdin.readline()

    t0 = time.monotonic()
    source = args.source
    if args.query:
        from safeload.loads.loader import QuerySource

        source = QuerySource.from_conninfo(args.uri, args.source)
    result = loader(args.uri, strategy=args.strategy, run_key=args.run_key, day=args.day, hook=hook,
                    lock_timeout="60s", parallel=args.parallel).run(source)
    print("DONE " + json.dumps({**result.to_dict(), "elapsed": time.monotonic() - t0}), flush=True)
    return 0


def _select_stdin(timeout: float):
    import select

    return select.select([sys.stdin], [], [], timeout)


if __name__ == "__main__":
    sys.exit(_main())
