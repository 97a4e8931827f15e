"""The ``direct`` strategy: the rows go straight into a plain target, inside the publishing
transaction (one write).

Where a load runs as one unit (the CLI, ``PartitionOverwriteOperator``) into a table that
is not natively partitioned, staging buys nothing but a second write: the partition is
replaced in one transaction instead (:func:`load_direct`): the partition's advisory
lock, ``DELETE`` of its rows, ``COPY`` of the source into the target, the audit on the
transaction's own rows (row count and checksum in one scan, which also finds rows that
are not the partition's; then the quality gate, on the same connection), the quarantine
and the history row, and COMMIT. Readers see the old rows until the COMMIT (MVCC); any
failure rolls it all back and the partition is as it was.

What it costs instead (docs/decisions/040-direct-publish.md): the locks a publish holds
(the advisory lock, ROW EXCLUSIVE on the target, the old rows' row locks) are held for
the whole COPY, not only for an INSERT ... SELECT; a second load of the same partition
waits for it, up to ``lock_timeout``. Where the stage and the publish are separate tasks,
the source has columns the target lacks, the partition column is not in the source, or
columns are added (schema evolution would hold ACCESS EXCLUSIVE on the table for the
whole COPY), the load is staged and published by DELETE + INSERT instead.

In several streams (by default for a CSV file of 2 MiB or more: ``parallel=``), helper
sessions COPY part of the file into a side table while the transaction DELETEs and
COPYs the rest; the transaction then copies the helpers' rows in
(:mod:`safeload.loads.publish.shared`, docs/decisions/047-direct-in-streams.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import psycopg
from psycopg import sql

from safeload.errors import LoadRefusedError
from safeload.loads import history
from safeload.loads import sql as q
from safeload.loads.partitions import LOOK_UP, lock_partition
from safeload.loads.publish.strategy import Blocker, PublishJob, PublishStrategy, Staging, Written
from safeload.loads.results import Audit, PublishResult
from safeload.loads.sources.base import Source
from safeload.loads.publish.shared import OneStream, SharedFill
from safeload.loads.spec import LoadSpec
from safeload.loads.staging.fill import Filled, fill
from safeload.loads.staging.stage import split_source
from safeload.loads.staging.quarantine import Quarantine, check_thresholds, save_quarantine
from safeload.loads.targets import add_columns, check_partition_column, read_target

log = logging.getLogger(__name__)


class Direct(PublishStrategy):
    """COPY into the target inside the publishing transaction: plain tables, loads run as one unit."""

    name = "direct"
    label = "direct COPY"
    staging = Staging(direct=True)

    @classmethod
    def applies(cls, load: LoadSpec) -> bool:
        # not where the stage, the audit and the publish are separate steps; in several
        # streams, the helpers' rows reach the target through a side table (.shared)
        return load.one_unit

    def blocker(self, conn: psycopg.Connection, info: q.TargetInfo, *, partition: bool = False,
                old: Any = LOOK_UP, mapping: dict[str, str | None] | None = None) -> Blocker | None:
        load = self.load
        if info.partitioned:
            return Blocker("the target is natively partitioned", inapplicable=True)
        if mapping is not None:
            if any(t is None for t in mapping.values()):
                return Blocker("the source has columns the target lacks (kept in staging only)", inapplicable=True)
            if load.partition_column not in mapping.values():
                return Blocker(f"the source has no column {load.partition_column!r} (staging fills it in)",
                               inapplicable=True)
        if load.add_columns:
            return Blocker("columns are added to the target, which would hold ACCESS EXCLUSIVE on it for the "
                           "whole COPY")
        return None

    def accepts(self, conn: psycopg.Connection, info: q.TargetInfo, staging: str) -> bool:
        return False  # it publishes a source, never a staging table

    def publish(self, conn: psycopg.Connection, job: PublishJob) -> Written | None:
        return None  # never a candidate for a staging table (accepts() is False)


class FillRows(Protocol):
    """How the publishing transaction gets the source's rows into the target: it calls
    ``delete()`` (the partition's old rows) when it is ready, loads the rows, and returns
    the rows replaced, what it loaded, and the audit scan's row count and checksum."""

    def __call__(self, conn: psycopg.Connection, now: q.TargetInfo, scan: sql.Composable,
                 delete: Callable[[], int]) -> tuple[int, Filled, tuple[int, str]]: ...


def load_direct(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, source: Source, header: list[str],
                mapping: dict[str, str | None], quarantine: Quarantine, label: str, *,
                audit: Callable[[Audit], None] | None = None, serialise: bool = True,
                connect: Callable[[], psycopg.Connection] | None = None) -> PublishResult:
    """Replace the partition of the plain table ``info`` with ``source``'s rows in one
    transaction (see the module docstring); returns what was published.

    :param audit: the quality gate: called inside the transaction with the partition's
        rows as the transaction sees them (:class:`Audit` with its connection); raising
        rolls the load back
    :param serialise: take the partition's advisory lock (only a test showing why turns it off)
    :param connect: opens the helper streams' sessions (``load.parallel``); None: one stream
    """
    streams = split_source(source, load.parallel, label) if connect is not None else None
    shared = None
    try:
        if streams is not None:
            shared = SharedFill(conn, connect, load, info, label, header, mapping, *streams)
            return _replace(conn, load, info, mapping, quarantine, label, shared, audit=audit, serialise=serialise)
    except OneStream as e:
        log.info("%s: %s; loading it in one stream, with quarantine", label, e)
    finally:
        if shared is not None:
            shared.close()

    def one_stream(conn: psycopg.Connection, now: q.TargetInfo, scan: sql.Composable,
                   delete: Callable[[], int]) -> tuple[int, Filled, tuple[int, str]]:
        replaced = delete()
        scanned: list[tuple[int, str]] = []

        def own_rows(rows: int) -> bool:
            """The audit scan: the partition's rows as this transaction sees them are the ones
            COPY loaded, or some went outside the partition (another day, or none)."""
            scanned.append(conn.execute(scan).fetchone())
            return scanned[-1][0] == rows

        filled = fill(conn, load, now, now.ident, source, header, mapping, quarantine, check=own_rows)
        if filled.path == "checked":  # rows outside the partition were quarantined by the row check
            if not own_rows(filled.rows_loaded):
                raise LoadRefusedError(
                    f"{label}: a row's {load.partition_column} looked like {load.partition_value!r} to the row "
                    f"check but is not, as PostgreSQL compares it (spaces or spelling); nothing was loaded and "
                    f"{info.name} partition {load.partition_value} is unchanged. Fix the value at the source")
        return replaced, filled, scanned[-1]

    return _replace(conn, load, info, mapping, quarantine, label, one_stream, audit=audit, serialise=serialise)


def _replace(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, mapping: dict[str, str | None],
             quarantine: Quarantine, label: str, fill_rows: FillRows, *, audit: Callable[[Audit], None] | None,
             serialise: bool) -> PublishResult:
    """The publishing transaction: the partition's lock, the target read again, its old
    rows replaced by ``fill_rows``, the counts, the gate, the history, COMMIT."""
    t0 = time.time()
    where = q.partition_where(load.partition_column, load.partition_value)
    with conn.transaction():
        q.set_lock_timeout(conn, load.lock_timeout)
        if serialise:
            lock_partition(conn, info, load.partition_value)
        now = read_target(conn, load)  # DDL may have changed it since it was read
        added = add_columns(conn, now, [list(c) for c in load.add_columns])  # asked for by name only
        if added:
            now = read_target(conn, load)
        check_partition_column(load, now)
        if now.partitioned or any(now.column(c) is None for c in mapping.values() if c):
            raise LoadRefusedError(f"{info.name} changed while the load started (re-created, or a column dropped); "
                                   "nothing was loaded and the partition is unchanged. Load it again")
        scan = q.checksum_sql(now.ident, [(c.name, c.type) for c in now.columns], where)

        def delete() -> int:
            return conn.execute(sql.SQL("delete from {} where {}").format(now.ident, where)).rowcount

        replaced, filled, (rows, digest) = fill_rows(conn, now, scan, delete)
        bad = quarantine.count
        if filled.rows_source != filled.rows_loaded + bad:  # the invariant every load keeps
            raise AssertionError(f"row accounting broke: {filled.rows_source} != {filled.rows_loaded} + {bad}")
        check_thresholds(load, label, filled.rows_source, bad, quarantine)
        if audit is not None:
            audit(Audit(table=now.name, where=where.as_string(conn), target=info.name,
                        partition_value=load.partition_value, rows=rows, conn=conn))
        history_id = history.record(
            conn, load, info, "published", source=label, rows_loaded=rows, rows_quarantined=bad,
            rows_source=filled.rows_source, checksum=digest,
            schema_changes=json.dumps([{"added": c} for c in added]) if added else None,
            message=f"replaced {replaced} row(s) by {Direct.label}")
        save_quarantine(conn, load, info, label, quarantine)
    log.info("published %s partition %s: %s rows straight from %s (replaced %s, %s quarantined, %s path)",
             info.name, load.partition_value, rows, label, replaced, bad, filled.path)
    return PublishResult(info.name, load.partition_value, rows, replaced, bad, filled.rows_source, digest,
                         history_id, added, round(time.time() - t0, 3), published_by=Direct.name)
