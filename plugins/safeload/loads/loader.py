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
- :mod:`.indexes`, :mod:`.history` -- staging's indexes, the load history.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from safeload.contracts.types import parse_type
from safeload.errors import LoadRefusedError, LockTimeoutError
from safeload.identifiers import validate_identifier
from safeload.loads import history
from safeload.loads import sql as q
from safeload.loads.indexes import build_indexes
from safeload.loads.metadata import STAGING_SCHEMA, ensure_metadata
from safeload.loads.partitions import (
    LOOK_UP,
    ensure_partition,
    free_partition_name,
    lock_partition,
    partition_for,
    swap_blocker,
)
from safeload.loads.privileges import explain_privileges
from safeload.loads.results import PublishResult, StageResult
from safeload.loads.sources.base import COPY_BLOCK, Source
from safeload.loads.sources.files import FileSource
from safeload.loads.sources.query import QuerySource
from safeload.loads.spec import LoadSpec
from safeload.loads.staging import registry
from safeload.loads.staging.fill import fill
from safeload.loads.staging.quarantine import Quarantine, check_thresholds, save_quarantine
from safeload.loads.staging.table import (
    check_staged_columns,
    checksum,
    create_staging,
    map_columns,
    persistence,
    prepare_as_partition,
    staged_columns,
)
from safeload.loads.targets import (
    check_partition_column,
    check_partition_value,
    read_target,
)

log = logging.getLogger(__name__)

PUBLISH_STRATEGIES = ("auto", "swap", "delete_insert")
#: a swap asks for the parent's ACCESS EXCLUSIVE lock in attempts this long: a reader
#: arriving meanwhile queues behind the request for at most this (plus the swap itself)
SWAP_LOCK_ATTEMPT_MS = 200


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
        not, or when the parent stays busy for the whole ``lock_timeout``. See
        docs/decisions/002.

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
        if publish_strategy not in PUBLISH_STRATEGIES:
            raise ValueError(f"publish_strategy {publish_strategy!r}: use one of {', '.join(PUBLISH_STRATEGIES)}")
        self.publish_strategy = publish_strategy
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
            started=self._started)

    @explain_privileges  # "permission denied" becomes the missing GRANTs (docs/security.md)
    def stage(self, source: str | Path | Source, fmt: str | None = None) -> StageResult:
        """Stream ``source`` (a file, or a :class:`QuerySource`) into a new staging table;
        see the module docstring."""
        t0, load = time.time(), self.spec()
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
                mapping = map_columns(load, info, header, label)
                name = q.staging_name(info.name, load.partition_value, load.run_key)
                registry.drop_stale(conn, load, info, name)
                with conn.transaction():
                    q.set_lock_timeout(conn, load.lock_timeout)
                    as_partition = self._plans_swap(conn, info)
                    create_staging(conn, load, info, name, header, mapping, as_partition=as_partition)
                    filled = fill(conn, load, info, q.staging_ident(name), source, header, mapping, quarantine)
                    bad = quarantine.count
                    if filled.rows_source != filled.rows_loaded + bad:  # the invariant every load keeps
                        raise AssertionError(f"row accounting broke: {filled.rows_source} != {filled.rows_loaded} "
                                             f"+ {bad}")
                    check_thresholds(load, label, filled.rows_source, bad, quarantine)
                    digest = checksum(conn, load, info, name, filled.rows_loaded)
                    if as_partition:
                        prepare_as_partition(conn, load, info, name)
                    registry.register(conn, load, info, name, registry.Staged(
                        filled.rows_loaded, bad, filled.rows_source, digest, load.add_columns, label))
                    save_quarantine(conn, load, info, label, quarantine)
            except LoadRefusedError as e:
                # the staging is rolled back; keep the evidence: quarantined rows and a history row
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
        result = StageResult(info.name, load.partition_value, name, load.run_key, label, filled.rows_source,
                             filled.rows_loaded, bad, digest, [list(c) for c in load.add_columns], filled.path,
                             round(time.time() - t0, 3))
        log.info("staged %s rows of %s into %s.%s (%s quarantined, %s path)", filled.rows_loaded, source,
                 STAGING_SCHEMA, name, bad, filled.path)
        return result

    @explain_privileges
    def publish(self, staged: StageResult) -> PublishResult:
        """Replace the partition with the staging table's rows, atomically."""
        t0 = time.time()
        with self.connection() as conn:
            info = read_target(conn, self.spec())
            # the target may have been re-created since the stage: never publish into a
            # table partitioned by another column (a swap would drop that column's partition)
            check_partition_column(self.spec(), info)
            # staged for a swap (a permanent table); whether it still swaps is decided
            # under the publish's advisory lock, where the partition cannot change
            staged_swap = info.partitioned and self.publish_strategy != "delete_insert" and \
                persistence(conn, staged.staging_table) == "p"
            try:
                if staged_swap:
                    # Normally built by the stage; a staging table without them (its keys
                    # were duplicated) fails here, before any lock on the target is taken.
                    build_indexes(conn, info, staged.staging_table)
                elif info.partitioned:
                    # the re-checks below first (again under the lock), so that a refused
                    # publish does not leave the new, empty partition behind
                    if conn.execute("select to_regclass(%s)", (q.regclass(STAGING_SCHEMA, staged.staging_table),)
                                    ).fetchone()[0] is not None:
                        evolved = {c[0] for c in staged.add_columns}  # added to the target by this publish
                        check_staged_columns(self.spec(), info, {c: t for c, t in staged_columns(
                            conn, staged.staging_table).items() if c not in evolved})
                    ensure_partition(conn, info, self.partition_value, self.lock_timeout)
                with conn.transaction():
                    q.set_lock_timeout(conn, self.lock_timeout)
                    if self._serialise_publish:
                        lock_partition(conn, info, self.partition_value)
                    reg = conn.execute(
                        "select rows_loaded, rows_quarantined, rows_source, checksum, add_columns, source "
                        "from safeload.staging where staging_table = %s for update",
                        (staged.staging_table,),
                    ).fetchone()
                    if reg is None:
                        raise LoadRefusedError(
                            f"staging table {STAGING_SCHEMA}.{staged.staging_table} for {info.name} partition "
                            f"{self.partition_value} is gone (already published by an earlier try, or dropped as "
                            "stale); stage the partition again")
                    rows_loaded, rows_quarantined, rows_source, checksum, add_columns, source = reg
                    stg = q.staging_ident(staged.staging_table)
                    added = []
                    for col, pg_type in add_columns:
                        if info.column(col) is None:
                            conn.execute(sql.SQL("alter table {} add column if not exists {} {}").format(
                                info.ident, sql.Identifier(col), sql.SQL(str(parse_type(pg_type)))))
                            added.append(col)
                    # The target's columns now: DDL may have changed them since the stage
                    # (another day's load adding a column, as evolve does, runs meanwhile).
                    now = read_target(conn, self.spec())
                    check_partition_column(self.spec(), now)
                    staged_cols = staged_columns(conn, staged.staging_table)
                    check_staged_columns(self.spec(), now, staged_cols)
                    # the value's partition, looked up once under the lock for both
                    old = partition_for(conn, info, self.partition_value) if staged_swap else None
                    swapped = staged_swap and self._same_columns(conn, now, staged.staging_table, staged_cols) and \
                        self._plans_swap(conn, info, partition=True, old=old) and \
                        self._swap(conn, info, staged.staging_table, rows_loaded, old)
                    if swapped:
                        replaced, inserted = swapped
                    else:
                        if staged_swap:
                            ensure_partition(conn, info, self.partition_value, self.lock_timeout)
                        # the staged columns (all in the target, checked above); a column
                        # added to the target since the stage gets its default
                        # (generated columns are computed by the target; identity values are
                        # the staged ones, which GENERATED ALWAYS takes only when told to)
                        written = [c for c in now.written if c.name in staged_cols]
                        cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in written)
                        overriding = any(c.identity == "a" for c in written)
                        replaced = conn.execute(sql.SQL("delete from {} where {}").format(
                            info.ident, q.partition_where(self.partition_column, self.partition_value))).rowcount
                        inserted = conn.execute(sql.SQL("insert into {} ({}){} select {} from {}").format(
                            info.ident, cols, sql.SQL(" overriding system value" if overriding else ""), cols,
                            stg)).rowcount
                    if inserted != rows_loaded:  # staging was modified after the audit: publish nothing
                        raise LoadRefusedError(f"{STAGING_SCHEMA}.{staged.staging_table} holds {inserted} rows but "
                                               f"{rows_loaded} were staged and audited; stage the partition again")
                    history_id = history.record(
                        conn, self.spec(), info, "published", source=source, rows_loaded=inserted,
                        rows_quarantined=rows_quarantined, rows_source=rows_source, checksum=checksum,
                        schema_changes=json.dumps([{"added": c} for c in added]) if added else None,
                        message=f"replaced {replaced} row(s) by {'swap' if swapped else 'DELETE + INSERT'}")
                    if not swapped:
                        conn.execute(sql.SQL("drop table {}").format(stg))
                    conn.execute("delete from safeload.staging where staging_table = %s", (staged.staging_table,))
            except psycopg.errors.UniqueViolation as e:
                raise LoadRefusedError(
                    f"{info.name} partition {self.partition_value}: the staged rows break a unique key of the "
                    f"target ({e.diag.message_detail or e.diag.message_primary}); nothing was published and the "
                    "partition is unchanged. Fix the source, or add expect_column_values_to_be_unique (or "
                    "expect_compound_columns_to_be_unique) on the key to the gate so it fails before the publish"
                ) from None
            except (psycopg.errors.CheckViolation, psycopg.errors.NotNullViolation) as e:
                detail = e.diag.message_detail or e.diag.message_primary
                if isinstance(e, psycopg.errors.CheckViolation) and not e.diag.constraint_name:
                    # PostgreSQL's "no partition of relation ... found for row" (a sub-partitioned day)
                    raise LoadRefusedError(
                        f"{info.name} partition {self.partition_value}: a staged row has no partition to go to "
                        f"({e.diag.message_primary}; {detail}); nothing was published and the partition is "
                        "unchanged. Create the missing sub-partition (or a DEFAULT one), then publish again") from None
                what = (f"CHECK constraint {e.diag.constraint_name!r}" if isinstance(e, psycopg.errors.CheckViolation)
                        else f"NOT NULL of column {e.diag.column_name!r}")
                # the stage checked the target's CHECKs as they were: one added since, or one
                # of the day's partition itself (staging carries the target's only)
                raise LoadRefusedError(
                    f"{info.name} partition {self.partition_value}: a staged row breaks {what} of the target or of "
                    f"its partition for this value ({detail}); nothing was published and the partition is unchanged. "
                    "If it was added after the stage, stage the partition again (the stage names the source's "
                    "line); if it is the partition's own, fix the source or the constraint") from None
            except psycopg.errors.LockNotAvailable as e:
                raise LockTimeoutError(
                    f"{info.name} partition {self.partition_value}: a lock could not be had within "
                    f"lock_timeout={self.lock_timeout} ({e.diag.message_primary}); the partition is unchanged. "
                    "A long-running reader or another load holds it; retry later") from None
        result = PublishResult(info.name, self.partition_value, inserted, replaced, rows_quarantined, rows_source,
                               checksum, history_id, added, round(time.time() - t0, 3),
                               published_by="swap" if swapped else "delete_insert")
        log.info("published %s partition %s: %s rows (replaced %s, by %s)", info.name, self.partition_value, inserted,
                 replaced, result.published_by)
        return result

    def _plans_swap(self, conn: psycopg.Connection, info: q.TargetInfo, *, partition: bool = False,
                    old: Any = LOOK_UP) -> bool:
        """Whether this load swaps: planned when staging is created (the table's traits),
        confirmed under the publish's advisory lock (``partition=True``: the value's
        partition ``old`` too)."""
        if self.publish_strategy == "delete_insert" or not info.partitioned:
            return False
        blocker = self.swap_blocker(conn, info, partition=partition, old=old)
        if blocker is None:
            return True
        unsafe, why = blocker
        if self.publish_strategy == "swap":
            if unsafe:
                raise LoadRefusedError(f"{info.name} partition {self.partition_value}: publish_strategy='swap' "
                                       f"cannot be used: {why}. Use publish_strategy='auto' or 'delete_insert'")
            return True  # slower or needs grants, but what was asked for
        log.info("%s partition %s: publishing by DELETE + INSERT, not by swap: %s", info.name,
                 self.partition_value, why)
        return False

    def _same_columns(self, conn: psycopg.Connection, now: q.TargetInfo, staging: str,
                      staged_cols: dict[str, str]) -> bool:
        """Whether staging is the parent as it is now, as far as a swapped-in partition
        keeps it: exactly the parent's columns (its source-only ``_extra_`` columns aside;
        ATTACH requires them), the same generation expressions, and no CHECK constraint or
        NOT NULL the parent has dropped since the stage (ATTACH accepts both: the day would
        compute stale values, or refuse rows every other day accepts). Otherwise ``auto``
        publishes by DELETE + INSERT, ``swap`` refuses."""
        added = sorted(c.name for c in now.columns if c.name not in staged_cols)
        if added:
            self._no_swap(now, f"the target's columns changed since the stage (added: {', '.join(added)})")
            return False
        differ = conn.execute(
            """
            with cols as (select a.attrelid, a.attname, a.attnotnull, a.attgenerated::text as gen,
                                 case when a.attgenerated <> '' then pg_get_expr(d.adbin, d.adrelid) end as expr
                          from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
                          where a.attrelid in (%(t)s::regclass, %(s)s::regclass) and a.attnum > 0
                            and not a.attisdropped),
                 t as (select * from cols where attrelid = %(t)s::regclass),
                 s as (select * from cols where attrelid = %(s)s::regclass)
            select 'the generation expression of ' || s.attname from s join t using (attname)
             where (s.gen, s.expr) is distinct from (t.gen, t.expr)
            union all
            select 'NOT NULL of ' || s.attname from s join t using (attname) where s.attnotnull and not t.attnotnull
            union all
            select 'CHECK constraint ' || c.conname from pg_constraint c
             where c.conrelid = %(s)s::regclass and c.contype = 'c' and c.conname <> %(pin)s
               and not exists (select 1 from pg_constraint p where p.conrelid = %(t)s::regclass
                               and p.contype = 'c' and p.conname = c.conname)
            """,
            {"t": q.regclass(now.schema, now.table), "s": q.regclass(STAGING_SCHEMA, staging),
             "pin": q.PARTITION_CHECK}).fetchall()
        if differ:
            self._no_swap(now, "the target changed since the stage (" + ", ".join(sorted(r[0] for r in differ)) +
                          " differ: a partition keeps what it was attached with)")
            return False
        return True

    def _no_swap(self, now: q.TargetInfo, why: str) -> None:
        """A swap found impossible at publish: ``swap`` refuses (nothing published), ``auto``
        logs why and publishes by DELETE + INSERT."""
        if self.publish_strategy == "swap":
            raise LoadRefusedError(f"{now.name} partition {self.partition_value}: cannot swap the staged table in: "
                                   f"{why}; nothing was published. Stage the partition again, or publish it with "
                                   "publish_strategy='auto' (DELETE + INSERT of the staged columns)")
        log.info("%s partition %s: publishing by DELETE + INSERT, not by swap: %s", now.name,
                 self.partition_value, why)

    def _swap(self, conn: psycopg.Connection, info: q.TargetInfo, staging: str,
              rows_loaded: int, old: str | None) -> tuple[int, int] | None:
        """Make the staging table the partition: DETACH and DROP the old one, ATTACH staging.

        Metadata only: no row is copied. The staging table's CHECK constraint
        (``partition = value``) implies the partition bound, so ATTACH skips its scan.
        ``old`` is the value's current partition (None: none yet), looked up by the caller
        under the publish's advisory lock. Returns (rows replaced, rows published), or None
        when ``auto`` could not lock the parent within ``lock_timeout`` (the caller then
        publishes by DELETE + INSERT).
        """
        stg = q.staging_ident(staging)
        extras = [r[0] for r in conn.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped "
            "and attname like '\\_extra\\_%%'", (q.regclass(STAGING_SCHEMA, staging),)).fetchall()]
        for col in extras:  # source columns the target does not have: ATTACH wants exactly the parent's
            conn.execute(sql.SQL("alter table {} drop column {}").format(stg, sql.Identifier(col)))
        replaced = 0
        name = free_partition_name(conn, info, self.partition_value)
        old_ident = None
        if old is not None:
            old_schema, old_name = conn.execute(
                "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where c.oid = %s::regclass", (old,)).fetchone()
            old_ident = sql.Identifier(old_schema, old_name)
            replaced = conn.execute(sql.SQL("select count(*) from {}").format(old_ident)).fetchone()[0]
            if not self._lock_for_swap(conn, info, old_ident):
                return None
            name = old_name if old_schema == info.schema else name
        try:
            # A savepoint (the locks above stay with the transaction): when ATTACH refuses
            # staging, the DETACH and DROP are undone and the old partition is back.
            with conn.transaction():
                if old_ident is not None:
                    conn.execute(sql.SQL("alter table {} detach partition {}").format(info.ident, old_ident))
                    conn.execute(sql.SQL("drop table {}").format(old_ident))
                conn.execute(sql.SQL("alter table {} attach partition {} {}").format(
                    info.ident, stg, q.partition_bounds(info, self.partition_value)))
        except (psycopg.errors.DatatypeMismatch, psycopg.errors.CollationMismatch,
                psycopg.errors.InvalidTableDefinition, psycopg.errors.InvalidObjectDefinition) as e:
            # DDL on the parent since the stage that ATTACH checks and the column check does
            # not: a collation, a NOT NULL or a CHECK constraint added, a column added while
            # this publish waited for its lock
            self._no_swap(info, f"the target's definition changed since the stage ({e.diag.message_primary})")
            return None
        key = info.column(info.partition_key or "")
        if key is None or key.type not in ("timestamp without time zone", "timestamp with time zone"):
            # the partition's bound now says what the pin said: drop it (PostgreSQL 18 refuses
            # some DDL on tables with CHECK constraints). A timestamp day keeps it: the bound
            # admits the whole day, the pin only the value (see safeload.loads.partitions.bounds_one_value).
            conn.execute(sql.SQL("alter table {} drop constraint {}").format(stg, sql.Identifier(q.PARTITION_CHECK)))
        conn.execute(sql.SQL("alter table {} set schema {}").format(stg, sql.Identifier(info.schema)))
        conn.execute(sql.SQL("alter table {} rename to {}").format(
            sql.Identifier(info.schema, staging), sql.Identifier(name)))
        return replaced, rows_loaded

    def _lock_for_swap(self, conn: psycopg.Connection, info: q.TargetInfo, old: sql.Composable) -> bool:
        """ACCESS EXCLUSIVE on the parent and the old partition, asked for in short attempts.

        A lock request waits in a queue, and every reader arriving after it waits behind it:
        one request waiting out a long report for ``lock_timeout`` would stall all readers
        of the table for that long. So each attempt waits at most
        :data:`SWAP_LOCK_ATTEMPT_MS`, gives way (rolled back to a savepoint) and tries again
        after a growing pause, until ``lock_timeout`` is spent. True once held; False when
        ``auto`` gave up (``swap`` raises LockNotAvailable instead).
        """
        budget_ms = int(conn.execute("select setting from pg_settings where name = 'lock_timeout'").fetchone()[0])
        deadline = time.monotonic() + (budget_ms / 1000 if budget_ms else float("inf"))
        pause, attempts = 0.05, 0
        while True:
            attempts += 1
            wait_ms = SWAP_LOCK_ATTEMPT_MS if not budget_ms else \
                max(1, min(SWAP_LOCK_ATTEMPT_MS, int((deadline - time.monotonic()) * 1000)))
            try:
                with conn.transaction():  # a savepoint: a failed attempt leaves nothing behind
                    conn.execute("select set_config('lock_timeout', %s, true)", (f"{wait_ms}ms",))
                    conn.execute(sql.SQL("lock table only {}, only {} in access exclusive mode").format(
                        info.ident, old))
                break
            except psycopg.errors.LockNotAvailable:
                if time.monotonic() + pause >= deadline:
                    if self.publish_strategy == "auto":
                        log.warning("%s partition %s: the table stayed busy for lock_timeout=%s (%s attempts); "
                                    "publishing by DELETE + INSERT instead of swap", info.name,
                                    self.partition_value, self.lock_timeout, attempts)
                        return False
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
        q.set_lock_timeout(conn, self.lock_timeout)  # the attempt's setting outlives the savepoint
        if attempts > 1:
            log.info("%s partition %s: lock for the swap granted at attempt %s", info.name, self.partition_value,
                     attempts)
        return True

    def run(self, source: str | Path | Source, fmt: str | None = None,
            audit_hook: Callable[[StageResult], None] | None = None) -> PublishResult:
        """Stage, optionally audit (``audit_hook`` raises to stop), and publish."""
        staged = self.stage(source, fmt)
        if audit_hook is not None:
            audit_hook(staged)
        return self.publish(staged)

    def swap_blocker(self, conn: psycopg.Connection, info: q.TargetInfo, *, partition: bool = True,
                     old: Any = LOOK_UP) -> tuple[bool, str] | None:
        """Why ``auto`` will not swap this partition: ``(unsafe, reason)``, None when it will
        (:func:`safeload.loads.partitions.swap_blocker`)."""
        return swap_blocker(conn, info, self.partition_value, partition=partition, old=old)


__all__ = ["COPY_BLOCK", "PUBLISH_STRATEGIES", "PartitionLoader", "PublishResult", "QuerySource", "StageResult"]
