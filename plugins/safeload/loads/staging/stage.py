"""Filling and auditing a staging table: in one transaction with one COPY
(:func:`stage_once`), or with several COPY streams at once (:func:`stage_streams`).

One stream: the table is created in the COPY's own savepoint, so COPY freezes its rows
(no later reader rewrites every page to set hint bits). A table read once by the publish
(DELETE + INSERT) is filled, counted, checksummed and registered in one transaction: a
crash anywhere leaves nothing. A table that becomes the partition also needs its indexes
and statistics: it is committed first with its registry row *reserved*, and then audited
(the checksum) while a second session builds those, as for parallel streams below.

Several streams: each is a session of its own, so the table must exist, committed, before
they start. It is created and its registry row *reserved* (no checksum: unfinished, never
published) in one transaction; the streams COPY a CSV file cut at record boundaries
(:mod:`.split`, :mod:`.streams`) and each commits; then one transaction counts what they
loaded against what they said, takes the checksum, builds indexes and statistics, and
completes the registry row. A crash or a failed stream before that leaves an unfinished
table, which the publish refuses and the next stage drops. A value the target refuses
stops every stream; the table is dropped and the source staged again by one stream,
where the straight COPY's quarantine (or the checked path) names each bad row's line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from safeload.errors import LoadRefusedError
from safeload.loads import sql as q
from safeload.loads.sources.base import COPY_BLOCK, Source, StraightCopy
from safeload.loads.spec import AUTO_STREAMS, LoadSpec
from safeload.loads.staging import registry
from safeload.loads.staging.fill import Filled, copy_options, fill
from safeload.loads.staging.quarantine import Quarantine, check_thresholds, save_quarantine
from safeload.loads.staging.split import record_blocks
from safeload.loads.staging.streams import copy_streams, open_sessions
from safeload.loads.staging.table import checksum, create_staging, extra_column, prepare_as_partition

log = logging.getLogger(__name__)

#: ``parallel="auto"``: the COPY streams of a CSV source large enough to split (measured in
#: docs/decisions/046-parallel-by-default.md: two pay from a few MiB on, on two cores)
AUTO_COUNT = 2

#: what a stream's refusal of a value looks like: the one-stream stage then quarantines it
DATA_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError, psycopg.errors.BadCopyFileFormat,
               psycopg.errors.CharacterNotInRepertoire)


@dataclass(frozen=True)
class StageJob:
    """One stage: what to fill and from where.

    :param name: the staging table (in ``safeload_staging``)
    :param label: what the history and quarantine call the source
    :param as_partition: staging becomes the partition (permanent, indexes, statistics)
    """

    load: LoadSpec
    info: q.TargetInfo
    name: str
    source: Source
    header: list[str]
    mapping: dict[str, str | None]
    label: str
    as_partition: bool

    def create(self, conn: psycopg.Connection) -> None:
        create_staging(conn, self.load, self.info, self.name, self.header, self.mapping,
                       as_partition=self.as_partition)


def stage_once(conn: psycopg.Connection, job: StageJob, quarantine: Quarantine,
               connect: Callable[[], psycopg.Connection] | None = None) -> tuple[Filled, registry.Staged]:
    """Create and fill staging with one COPY (FREEZE), audit and register it.

    :param connect: staging that becomes a partition is then committed with its registry
        row reserved, and audited while a second session builds its indexes and
        statistics (:func:`_finish`); without it, or for a table read once, it all commits
        together
    """
    if not (job.as_partition and connect is not None):
        with conn.transaction():
            q.set_lock_timeout(conn, job.load.lock_timeout)
            filled = _fill_once(conn, job, quarantine)
            return filled, _finish(conn, job, filled, quarantine)
    try:
        with conn.transaction():
            q.set_lock_timeout(conn, job.load.lock_timeout)
            filled = _fill_once(conn, job, quarantine)
            registry.reserve(conn, job.load, job.info, job.name, job.label)
        return filled, _finish(conn, job, filled, quarantine, connect=connect)
    except BaseException:
        registry.discard(conn, job.name)  # never published: drop it now
        raise


def _fill_once(conn: psycopg.Connection, job: StageJob, quarantine: Quarantine) -> Filled:
    return fill(conn, job.load, job.info, q.staging_ident(job.name), job.source, job.header, job.mapping,
                quarantine, create=lambda: job.create(conn))


def streams_for(asked: int | str, straight: StraightCopy) -> int:
    """How many COPY streams fill staging from ``straight`` (a CSV source) when ``asked``
    for that many, or for :data:`AUTO_STREAMS`: :data:`AUTO_COUNT` once the source holds
    at least a COPY block per stream, else one (docs/decisions/046-parallel-by-default.md)."""
    if asked != AUTO_STREAMS:
        return int(asked)
    if straight.size is None or straight.size < AUTO_COUNT * COPY_BLOCK:
        return 1
    return AUTO_COUNT


def split_source(source: Source, asked: int | str, label: str) -> tuple[StraightCopy, int] | None:
    """The source's straight COPY and the number of streams to split it into (``asked``: a
    number, or :data:`AUTO_STREAMS`: :func:`streams_for`); None when it loads in one stream
    (one asked for, not a CSV file, or ``auto`` on a small one)."""
    if asked == 1:
        return None
    straight = source.straight()
    if straight is None or straight.format != "csv":
        if straight is not None:
            straight.blocks.close()
        if asked != AUTO_STREAMS:
            log.info("%s cannot be split into parallel COPY streams (only CSV files can); loading it in one stream",
                     label)
        return None
    streams = streams_for(asked, straight)
    if streams <= 1:
        straight.blocks.close()
        return None
    return straight, streams


def stage_streams(conn: psycopg.Connection, connect: Callable[[], psycopg.Connection], job: StageJob,
                  quarantine: Quarantine, asked: int | str) -> tuple[Filled, registry.Staged] | None:
    """Fill staging with the COPY streams ``asked`` for (:func:`split_source`) at once, then
    audit and register it.

    None when the source loads in one stream (:func:`split_source`), the server refuses
    the streams' sessions, or a stream refused a value: nothing is left behind, and the
    caller stages by one stream.
    """
    split = split_source(job.source, asked, job.label)
    if split is None:
        return None
    straight, streams = split
    conns = open_sessions(connect, streams, job.label)
    if conns is None:
        straight.blocks.close()
        return None
    if asked == AUTO_STREAMS:
        log.info("%s: %.1f MiB of CSV, staged in %s COPY streams at once (parallel='auto'; parallel=1 loads it in "
                 "one)", job.label, (straight.size or 0) / (1 << 20), streams)
    try:
        return _stage_streams(conn, connect, conns, job, quarantine, straight)
    finally:
        for c in conns:
            c.close()


def _stage_streams(conn: psycopg.Connection, connect: Callable[[], psycopg.Connection],
                   conns: list[psycopg.Connection], job: StageJob, quarantine: Quarantine,
                   straight: StraightCopy) -> tuple[Filled, registry.Staged] | None:
    """:func:`stage_streams` once its streams' sessions (``conns``) are open."""
    load, streams = job.load, len(conns)
    try:
        with conn.transaction():
            q.set_lock_timeout(conn, load.lock_timeout)
            job.create(conn)
            registry.reserve(conn, load, job.info, job.name, job.label)
        cols = [job.mapping[h] or extra_column(h) for h in job.header]
        copy_sql = sql.SQL("copy {} ({}) from stdin{}").format(
            q.staging_ident(job.name), sql.SQL(", ").join(sql.Identifier(c) for c in cols),
            copy_options(replace(straight, header=False)))
        try:
            # pieces of COPY_BLOCK / N: the blocks waiting in the N streams' queues (and in their
            # connections' buffers) add up to the same few blocks whatever N is
            pieces = record_blocks(straight.blocks, skip_header=straight.header,
                                   size=max(COPY_BLOCK // streams, 1 << 16))
            rows = copy_streams(conns, copy_sql, pieces, prepare=lambda c: q.set_lock_timeout(c, load.lock_timeout))
        except DATA_ERRORS as e:
            log.info("%s: a stream refused a value (%s); loading it again in one stream, with quarantine",
                     job.label, str(e).splitlines()[0])
            registry.discard(conn, job.name)
            return None
        finally:
            straight.blocks.close()
            for c in conns:  # done with them: not held through the audit
                c.close()
        filled = Filled("copy", sum(rows), sum(rows))
        if not filled.rows_loaded and not load.allow_empty:
            raise LoadRefusedError(f"{straight.empty}: refusing to replace partition {load.partition_value} of "
                                   f"{job.info.name} with nothing (allow_empty=True accepts {straight.empty_name})")
        log.info("%s: %s rows in %s parallel COPY streams (%s)", job.label, filled.rows_loaded, streams,
                 ", ".join(str(r) for r in rows))
        return filled, _finish(conn, job, filled, quarantine, connect=connect)
    except BaseException:
        registry.discard(conn, job.name)  # what the streams committed is never published: drop it now
        raise


def _finish(conn: psycopg.Connection, job: StageJob, filled: Filled, quarantine: Quarantine, *,
            connect: Callable[[], psycopg.Connection] | None = None) -> registry.Staged:
    """Audit what was filled (counts, thresholds, checksum), give a would-be partition its
    indexes and statistics, and record it all.

    :param connect: None: the fill's transaction is still open, and this all goes into it
        (registering the table). Else the fill has committed with its registry row
        reserved: the checksum scan runs here while a second session builds the indexes
        and statistics (their locks wait for the scan, never the other way round: the scan
        runs outside any transaction), then the registry row is completed
    """
    load, info = job.load, job.info
    bad = quarantine.count
    if filled.rows_source != filled.rows_loaded + bad:  # the invariant every load keeps
        raise AssertionError(f"row accounting broke: {filled.rows_source} != {filled.rows_loaded} + {bad}")
    check_thresholds(load, job.label, filled.rows_source, bad, quarantine)
    digest = None
    if connect is not None and job.as_partition:
        digest = _beside(connect, lambda other: _prepare(other, job),
                         lambda: checksum(conn, load, info, job.name, filled.rows_loaded))
    with conn.transaction():
        q.set_lock_timeout(conn, load.lock_timeout)
        if digest is None:
            digest = checksum(conn, load, info, job.name, filled.rows_loaded)
            if job.as_partition:
                prepare_as_partition(conn, load, info, job.name)
        staged = registry.Staged(filled.rows_loaded, bad, filled.rows_source, digest, load.add_columns, job.label)
        if connect is not None:
            registry.complete(conn, job.name, staged)
        else:
            registry.register(conn, load, info, job.name, staged)
        save_quarantine(conn, load, info, job.label, quarantine)
    return staged


def _prepare(conn: psycopg.Connection, job: StageJob) -> None:
    with conn.transaction():
        # no lock_timeout: the one lock this waits for is the checksum scan's on the same
        # staging table, which ends however long the day is
        conn.execute("select set_config('lock_timeout', '0', true)")
        prepare_as_partition(conn, job.load, job.info, job.name)


def _beside(connect: Callable[[], psycopg.Connection], other_work: Callable[[psycopg.Connection], None],
            work: Callable[[], str]) -> str:
    """``work()`` here while ``other_work`` runs on a second session; the first error of
    either is raised."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with connect() as other:
                other_work(other)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            failed.append(e)

    helper = threading.Thread(target=run, name="safeload-stage-beside", daemon=True)
    helper.start()
    try:
        result = work()
    finally:
        helper.join()
    if failed:
        raise failed[0]
    return result
