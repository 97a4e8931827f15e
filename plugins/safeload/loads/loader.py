"""Write-audit-publish of one partition into PostgreSQL: :class:`PartitionLoader`.

``stage()`` streams the source into a fresh staging table with COPY, in one transaction
that also records the staging table in ``safeload.staging``: a crash mid-COPY leaves
nothing behind. Staging is created from the catalogue, not with ``LIKE``, so a stage
holds no lock on the target however long its COPY runs. Rows that do not parse or cast
go to ``safeload.quarantine`` with their line, raw text and reason, and a threshold
decides whether the load goes on. The counts always add up: source = loaded +
quarantined. Staging is UNLOGGED when it will be copied into the target, permanent (with
the target's indexes and statistics) when it will become the partition.

``publish()`` replaces the partition in one transaction, serialised per partition by
``pg_advisory_xact_lock`` and bounded by ``lock_timeout``: on a natively partitioned
target the staging table is swapped in (DETACH and DROP the old partition, ATTACH
staging; the lock is asked for in short attempts), elsewhere, or while a long reader
holds the table, the partition is DELETEd and INSERTed from staging; then the load
history row. Readers see the old partition or the new one, never a mix; a crash at any
point leaves the old one.

Between the two, a quality gate can check the staging table (the *audit*). Pure
psycopg: no Airflow import; the operators and the CLI are thin layers over this.
See docs/decisions/002-write-audit-publish.md.

The loader says the order of the steps; the units say how, each in its own module:

- :mod:`.sources` -- the files and queries a load reads;
- :mod:`.targets` -- the target, and what a load refuses before any row moves;
- :mod:`.staging` -- the staging table, its fill (COPY, or row by row with quarantine)
  and its registry row;
- :mod:`.partitions` -- the partition catalogue: a value's partition, bounds, names,
  and when a swap is safe;
- :mod:`.publish` -- the publish strategies (swap, DELETE + INSERT) behind one interface;
- :mod:`.indexes`, :mod:`.history` -- staging's indexes, the load history.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import psycopg

from safeload.contracts.types import parse_type
from safeload.errors import LoadRefusedError, LockTimeoutError
from safeload.identifiers import validate_identifier
from safeload.loads import history
from safeload.loads import sql as q
from safeload.metadata import STAGING_SCHEMA, ensure_metadata
from safeload.loads.partitions import LOOK_UP, lock_partition, swap_blocker
from safeload.loads.privileges import explain_privileges
from safeload.loads.publish.choice import (
    PUBLISH_STRATEGIES,
    candidates,
    check_strategy,
    choose,
    publish_first,
)
from safeload.loads.publish.direct import load_direct
from safeload.loads.publish.refusals import publish_refusals
from safeload.loads.publish.strategy import PublishJob, PublishStrategy
from safeload.loads.results import Audit, PublishResult, StageResult
from safeload.loads.sources.base import COPY_BLOCK, Source
from safeload.loads.sources.files import FileSource
from safeload.loads.sources.query import QuerySource
from safeload.loads.spec import AUTO_STREAMS, LoadSpec
from safeload.loads.staging import registry
from safeload.loads.staging.quarantine import Quarantine, save_quarantine
from safeload.loads.staging.stage import StageJob, stage_once, stage_streams
from safeload.loads.staging.table import check_staged_columns, map_columns, staged_columns
from safeload.loads.targets import (
    add_columns,
    check_partition_column,
    check_partition_value,
    read_target,
)

log = logging.getLogger(__name__)


class Opened(NamedTuple):
    """A load under way: its connection, its settings, the target and the open source."""

    conn: psycopg.Connection
    load: LoadSpec
    info: q.TargetInfo
    source: Source
    header: list[str]
    mapping: dict[str, str | None]
    quarantine: Quarantine
    label: str
    started: float


class PartitionLoader:
    """Loads one partition of one PostgreSQL table, idempotently.

    :param connect: returns a new psycopg connection to the warehouse
    :param table: the target, ``schema.table`` or ``table``
    :param partition_column: the column whose value names the partition
    :param partition_value: e.g. ``"2024-05-01"`` (the logical date)
    :param run_key: names this load (Airflow: dag, run and task); a retry of the same
        run reuses and replaces its staging table
    :param lock_timeout: bound on every lock wait, e.g. ``"30s"``; past it the load fails
        with a retryable :class:`LockTimeoutError` and nothing changes
    :param max_bad_rows: quarantined rows above this refuse the load (None: no limit)
    :param max_bad_fraction: quarantined fraction of source rows above this refuses it
    :param allow_empty: accept a source with no rows (publishing an empty partition)
    :param add_columns: ``[(name, type)]`` to add to the target on publish (schema evolution)
    :param audit: dag_id, run_id, task_id, try_number for the load history
    :param stale_staging_after: staging left by other runs of the same partition longer
        ago than this is dropped by the next stage (a crashed or abandoned run)
    :param publish_strategy: ``auto`` (default), ``swap`` or ``delete_insert``. ``swap``
        makes the staging table the partition (DETACH old, ATTACH staging): the rows are
        written once, at the price of a brief ACCESS EXCLUSIVE lock on the parent, taken
        in short attempts so that readers wait at most one attempt. ``delete_insert``
        DELETEs the partition and INSERTs it from staging: rows written twice, no reader
        ever blocked. ``auto`` swaps when the target is natively partitioned and a swap is
        safe there (:meth:`swap_blocker`), and falls back to ``delete_insert`` when it is
        not, or when the parent stays busy for the whole ``lock_timeout``. On a plain table,
        a load run as one unit (:meth:`run`) is published by ``direct``: COPY straight into
        the target inside the publishing transaction, rows written once. See
        docs/decisions/002, 015 and 040 (:mod:`safeload.loads.publish`).
    :param parallel: COPY streams at once (a CSV source, cut at record boundaries): into
        staging, or, for a plain table loaded as one unit, the publishing transaction's own
        and helpers' beside it; ``auto`` (default): two for a CSV file of 2 MiB or more,
        else one. See docs/decisions/042, 046 and 047

    .. code-block:: python

        loader = PartitionLoader(lambda: psycopg.connect(uri), table="public.orders",
                                 partition_column="order_date", partition_value="2024-05-01",
                                 run_key="orders_daily/2024-05-01/load")
        staged = loader.stage("/data/orders/2024-05-01.csv")   # write
        run_gate(...)                                           # audit the staging table
        loader.publish(staged)                                  # publish, atomically
    """

    #: Publishes of one partition serialise on an advisory lock. Only the test that shows
    #: why (tests/integration/loads) turns this off.
    _serialise_publish = True

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        *,
        table: str,
        partition_column: str,
        partition_value: str,
        run_key: str,
        lock_timeout: str = "30s",
        max_bad_rows: int | None = 0,
        max_bad_fraction: float | None = None,
        allow_empty: bool = False,
        add_columns: list[tuple[str, str]] | None = None,
        audit: dict[str, Any] | None = None,
        stale_staging_after: str = "12 hours",
        publish_strategy: str = "auto",
        parallel: int | str = AUTO_STREAMS,
    ):
        self.connect = connect
        self.table = table
        self.partition_column = validate_identifier(partition_column, "partition column")
        self.partition_value = str(partition_value)
        self.run_key = run_key
        self.lock_timeout = lock_timeout
        self.max_bad_rows = max_bad_rows
        self.max_bad_fraction = max_bad_fraction
        self.allow_empty = allow_empty
        self.add_columns = [(validate_identifier(n, "column"), str(parse_type(t))) for n, t in (add_columns or [])]
        self.audit = audit or {}
        self.stale_staging_after = stale_staging_after
        self.publish_strategy = check_strategy(publish_strategy)
        if parallel != AUTO_STREAMS and (not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1):
            raise ValueError(f"parallel={parallel!r}: give the number of COPY streams, 1 or more, or 'auto'")
        self.parallel = parallel
        self._started = time.time()

    def connection(self) -> psycopg.Connection:
        """A new connection to the warehouse, in autocommit: each ``conn.transaction()`` of a
        step is then a real transaction (committed or rolled back at its end), not a
        savepoint of an implicit one."""
        conn = self.connect()
        conn.autocommit = True
        return conn

    def spec(self) -> LoadSpec:
        """The settings as they are now, for the units (an operator may set ``add_columns``
        after building the loader)."""
        return LoadSpec(
            table=self.table, partition_column=self.partition_column, partition_value=self.partition_value,
            run_key=self.run_key, lock_timeout=self.lock_timeout, max_bad_rows=self.max_bad_rows,
            max_bad_fraction=self.max_bad_fraction, allow_empty=self.allow_empty, add_columns=list(self.add_columns),
            audit=self.audit, stale_staging_after=self.stale_staging_after, publish_strategy=self.publish_strategy,
            started=self._started, parallel=self.parallel)

    @explain_privileges  # "permission denied" becomes the missing GRANTs (docs/security.md)
    def stage(self, source: str | Path | Source, fmt: str | None = None) -> StageResult:
        """Stream ``source`` (a file, or a :class:`QuerySource`) into a new staging table;
        see the module docstring."""
        with self._opened(self.spec(), source, fmt) as opened:
            return self._stage(opened)

    @explain_privileges
    def run(self, source: str | Path | Source, fmt: str | None = None,
            audit_hook: Callable[[Audit], None] | None = None, *, audit_in_transaction: bool = True) -> PublishResult:
        """Stage, optionally audit (``audit_hook`` raises to stop), and publish: as one unit.

        On a plain table the rows go straight into the target, audited inside the
        publishing transaction (``direct``, docs/decisions/040): ``audit_hook`` then gets
        that transaction's connection in :class:`Audit` and must check on it.

        :param audit_in_transaction: False when ``audit_hook`` cannot check on a given
            connection (it opens its own): the load is then staged, audited and published
        """
        load = replace(self.spec(), one_unit=audit_hook is None or audit_in_transaction)
        with self._opened(load, source, fmt) as opened:
            strategy = choose(opened.conn, load, opened.info, opened.mapping)
            if strategy.staging.direct:
                with publish_refusals(load, opened.info):
                    return load_direct(opened.conn, load, opened.info, opened.source, opened.header,
                                       opened.mapping, opened.quarantine, opened.label, audit=audit_hook,
                                       serialise=self._serialise_publish, connect=self.connection)
            staged = self._stage(opened, strategy)
        if audit_hook is not None:
            audit_hook(Audit(table=f"{STAGING_SCHEMA}.{staged.staging_table}", where=None, target=staged.target,
                             partition_value=staged.partition_value, rows=staged.rows_loaded, staged=staged))
        return self.publish(staged)

    @contextlib.contextmanager
    def _opened(self, load: LoadSpec, source: str | Path | Source, fmt: str | None) -> Iterator[Opened]:
        """The source open, the target read and checked, the source's columns mapped onto it;
        a refusal inside leaves its evidence (quarantined rows, a history row)."""
        t0 = time.time()
        if isinstance(source, (str, os.PathLike)):
            source = FileSource(os.fspath(source), fmt)
        label = str(source)  # what the history and quarantine call it (a query's has no password)
        with self.connection() as conn:
            ensure_metadata(conn)
            info = read_target(conn, load)
            check_partition_column(load, info)
            check_partition_value(conn, load, info)
            source.open()  # closed in the finally below
            quarantine = Quarantine()
            try:
                header = source.columns()
                # this run's earlier staging (a retry) and other runs' abandoned staging, whichever way it loads
                registry.drop_stale(conn, load, info, q.staging_name(info.name, load.partition_value, load.run_key))
                yield Opened(conn, load, info, source, header, map_columns(load, info, header, label), quarantine,
                             label, t0)
            except LoadRefusedError as e:
                # the load is rolled back; keep the evidence: quarantined rows and a history row
                with conn.transaction():
                    save_quarantine(conn, load, info, label, quarantine)
                    history.record(conn, load, info, "refused", source=label, rows_quarantined=quarantine.count,
                                   message=str(e))
                raise
            except psycopg.errors.LockNotAvailable as e:
                raise LockTimeoutError(f"{info.name}: could not lock within lock_timeout={load.lock_timeout} "
                                       f"({e.diag.message_primary}); retry later") from None
            finally:
                quarantine.close()
                source.close()

    def _stage(self, opened: Opened, strategy: PublishStrategy | None = None) -> StageResult:
        """Fill and audit a staging table (one stream, or ``parallel`` streams) for
        ``strategy`` (None: the one :func:`choose` picks)."""
        conn, load, info = opened.conn, opened.load, opened.info
        name = q.staging_name(info.name, load.partition_value, load.run_key)
        strategy = strategy or choose(conn, load, info, opened.mapping)
        job = StageJob(load, info, name, opened.source, opened.header, opened.mapping, opened.label,
                       as_partition=strategy.staging.as_partition)
        done = None
        if load.parallel != 1:
            done = stage_streams(conn, self.connection, job, opened.quarantine, load.parallel)
        filled, staged = done or stage_once(conn, job, opened.quarantine, self.connection)
        result = StageResult(info.name, load.partition_value, name, load.run_key, opened.label, filled.rows_source,
                             filled.rows_loaded, staged.rows_quarantined, staged.checksum,
                             [list(c) for c in load.add_columns], filled.path, round(time.time() - opened.started, 3))
        log.info("staged %s rows of %s into %s.%s (%s quarantined, %s path)", filled.rows_loaded, opened.source,
                 STAGING_SCHEMA, name, staged.rows_quarantined, filled.path)
        return result

    @explain_privileges
    def publish(self, staged: StageResult) -> PublishResult:
        """Replace the partition with the staging table's rows, atomically; see the module docstring."""
        t0, load = time.time(), self.spec()
        with self.connection() as conn:
            info = read_target(conn, load)
            # the target may have been re-created since the stage: never publish into a
            # table partitioned by another column (a swap would drop that column's partition)
            check_partition_column(load, info)
            strategies = candidates(conn, load, info, staged.staging_table)
            with publish_refusals(load, info):
                strategies[0].prepare(conn, info, staged)  # before any lock on the target is taken
                with conn.transaction():
                    q.set_lock_timeout(conn, load.lock_timeout)
                    if self._serialise_publish:
                        lock_partition(conn, info, load.partition_value)
                    reg = registry.claim(conn, load, info, staged.staging_table)
                    added = add_columns(conn, info, reg.add_columns)
                    # The target's columns now: DDL may have changed them since the stage
                    # (another day's load adding a column, as evolve does, runs meanwhile).
                    now = read_target(conn, load)
                    check_partition_column(load, now)
                    columns = staged_columns(conn, staged.staging_table)
                    check_staged_columns(load, now, columns)
                    job = PublishJob(info, now, staged.staging_table, columns, reg.rows_loaded, strategies[0].name)
                    strategy, written = publish_first(conn, strategies, job)
                    if written.inserted != reg.rows_loaded:  # staging was modified after the audit: publish nothing
                        raise LoadRefusedError(f"{STAGING_SCHEMA}.{staged.staging_table} holds {written.inserted} "
                                               f"rows but {reg.rows_loaded} were staged and audited; stage the "
                                               "partition again")
                    history_id = history.record(
                        conn, load, info, "published", source=reg.source, rows_loaded=written.inserted,
                        rows_quarantined=reg.rows_quarantined, rows_source=reg.rows_source, checksum=reg.checksum,
                        schema_changes=json.dumps([{"added": c} for c in added]) if added else None,
                        message=f"replaced {written.replaced} row(s) by {strategy.label}")
                    registry.forget(conn, staged.staging_table, drop=not written.staging_consumed)
        result = PublishResult(info.name, load.partition_value, written.inserted, written.replaced,
                               reg.rows_quarantined, reg.rows_source, reg.checksum, history_id, added,
                               round(time.time() - t0, 3), published_by=strategy.name)
        log.info("published %s partition %s: %s rows (replaced %s, by %s)", info.name, load.partition_value,
                 written.inserted, written.replaced, result.published_by)
        return result

    def swap_blocker(self, conn: psycopg.Connection, info: q.TargetInfo, *, partition: bool = True,
                     old: Any = LOOK_UP) -> tuple[bool, str] | None:
        """Why ``auto`` will not swap this partition: ``(unsafe, reason)``, None when it will
        (:func:`safeload.loads.partitions.swap_blocker`)."""
        return swap_blocker(conn, info, self.partition_value, partition=partition, old=old)


__all__ = ["COPY_BLOCK", "PUBLISH_STRATEGIES", "PartitionLoader", "PublishResult", "QuerySource", "StageResult"]
