"""Running a compiled plan: one read-only snapshot, the scan and the distinct counts
beside it on a second connection, follow-up statements for failed checks, and each
check on its own when a statement fails (:func:`execute_plan`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from psycopg import sql

from safeload.quality.sql.plan import Check, Plan
from safeload.quality.sql.results import RawResult, error_result
from safeload.quality.suite import ExpectationSpec

if TYPE_CHECKING:
    import psycopg


def execute_plan(conn: psycopg.Connection, plan: Plan, *, work_mem: str | None = None,
                 connect: Callable[[], psycopg.Connection] | None = None) -> dict[int, RawResult]:
    """Run a compiled plan; return a GX-shaped result per supported expectation index.

    :param conn: a psycopg connection (idle: a transaction is opened; in a transaction:
        savepoints are used)
    :param plan: from :func:`compile_plan`
    :param work_mem: PostgreSQL's ``work_mem`` for this transaction only (e.g. ``256MB``):
        uniqueness checks sort the column, and a sort that fits in memory is several
        times faster than one that spills to disk; None keeps the server's setting
    :param connect: opens a second connection to the same database: the distinct counts
        of uniqueness checks (:attr:`Plan.distinct`) then run on it at the same time as
        the scan, in the scan's snapshot (exported and imported); None, or ``conn`` in
        the caller's transaction: one after the other on ``conn``

    Everything runs in one read-only snapshot (repeatable read), so the scan and any
    follow-up statement see the same rows. When the scan fails (a value of the wrong
    type in a ``value_set``, an invalid regular expression), each check is run on its
    own, so one bad check reports its error and the others still report results.
    """
    import psycopg

    results: dict[int, RawResult] = dict(plan.static)
    if not plan.checks:
        return results

    def followup(query: sql.Composable) -> list:
        with conn.transaction():  # a savepoint: a failing follow-up fails its check only
            return conn.execute(query).fetchall()

    def evaluate(chk: Check, values: dict[str, Any]) -> None:
        try:
            results[chk.index] = chk.evaluate(values, followup)
        except psycopg.Error as e:
            results[chk.index] = error_result(_pg_message(e, chk.spec))

    values = None
    try:
        with _snapshot(conn, work_mem) as fresh:
            values = _run_statements(conn, plan, work_mem, connect if fresh else None)
            for chk in plan.checks:
                evaluate(chk, values)
        return results
    except psycopg.OperationalError:
        raise  # the connection, not a check
    except psycopg.Error:
        if values is not None:
            raise
    # a statement failed: isolate the check PostgreSQL refuses by running each on its own
    with _snapshot(conn, work_mem):
        for chk in plan.checks:
            try:
                with conn.transaction():
                    v = _fetch(conn, plan.scan_for(chk.slots))
            except psycopg.OperationalError:
                raise
            except psycopg.Error as e:
                results[chk.index] = error_result(_pg_message(e, chk.spec))
                continue
            evaluate(chk, v)
    return results


def _fetch(conn: psycopg.Connection, query: sql.Composable) -> dict[str, Any]:
    cur = conn.execute(query)
    row = cur.fetchone()
    return {d.name: v for d, v in zip(cur.description, row)}


#: how long the distinct-count statement on the second connection waits for the table's
#: lock before running on the scan's connection instead (see :func:`_run_statements`)
DISTINCT_LOCK_TIMEOUT = "2s"


def _run_statements(conn: psycopg.Connection, plan: Plan, work_mem: str | None,
                    connect: Callable[[], psycopg.Connection] | None) -> dict[str, Any]:
    """The scan's and the distinct counts' values, by slot name: concurrently when a
    second connection can be had, else one after the other."""
    import threading

    import psycopg

    if plan.distinct is None:
        return _fetch(conn, plan.scan)
    other = None
    if connect is not None:
        snapshot = conn.execute("select pg_export_snapshot()").fetchone()[0]
        try:
            other = connect()
        except psycopg.Error:
            other = None  # no second connection (e.g. the server's limit): one after the other
    if other is None:
        values = _fetch(conn, plan.scan)
        values.update(_fetch(conn, plan.distinct))
        return values
    got: dict[str, Any] = {}
    failed: list[BaseException] = []

    def distinct() -> None:
        try:
            other.isolation_level, other.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
            with other.transaction():
                other.execute(sql.SQL("set transaction snapshot {}").format(sql.Literal(snapshot)))
                # The scan holds the table's lock. A DDL queued behind it makes this statement
                # queue behind the DDL, which waits for the scan's transaction, which waits for
                # this statement: a cycle through this process that PostgreSQL cannot detect.
                # Give up the wait soon instead; the statement then runs after the scan.
                other.execute("select set_config('lock_timeout', %s, true)", (DISTINCT_LOCK_TIMEOUT,))
                if work_mem:
                    other.execute("select set_config('work_mem', %s, true)", (str(work_mem),))
                got.update(_fetch(other, plan.distinct))
        except BaseException as e:  # re-raised in the caller's thread
            failed.append(e)

    worker = threading.Thread(target=distinct, name="safeload-quality-distinct", daemon=True)
    try:
        worker.start()
        values = _fetch(conn, plan.scan)
    except BaseException:
        # the scan failed (or the task is being stopped): cancel the distinct count rather
        # than wait for its sort, which takes about as long as the scan itself
        with contextlib.suppress(Exception):
            other.cancel_safe(timeout=10)
        raise
    finally:
        worker.join()
        other.close()
    if failed:
        # a lock wait given up, a second connection that dropped or that a pooler could not
        # serve: the scan's connection is fine (and holds the table's lock), so the
        # statement runs there. Any other error is the statement's own (reported per check).
        if not isinstance(failed[0], psycopg.OperationalError):
            raise failed[0]
        got = _fetch(conn, plan.distinct)
    values.update(got)
    return values


@contextlib.contextmanager
def _snapshot(conn: psycopg.Connection, work_mem: str | None) -> Iterator[bool]:
    """One read-only, repeatable-read transaction (a single BEGIN), or, inside the
    caller's transaction, a savepoint. Yields whether the transaction is this one's own."""
    import psycopg

    fresh = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    saved = (conn.isolation_level, conn.read_only)
    if fresh:
        conn.isolation_level, conn.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
    try:
        with conn.transaction():
            if work_mem:
                conn.execute("select set_config('work_mem', %s, true)", (str(work_mem),))
            yield fresh
    finally:
        if fresh and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            conn.isolation_level, conn.read_only = saved


def _pg_message(e: Exception, spec: ExpectationSpec) -> str:
    diag = getattr(e, "diag", None)
    msg = (diag.message_primary if diag is not None and diag.message_primary else str(e)).strip()
    return f"{spec.label()}: PostgreSQL refused the check: {msg}"
