"""The ``swap`` strategy: the staging table becomes the partition.

DETACH and DROP the value's partition, ATTACH staging in its place: metadata only, the
rows are written once (by the stage). The price is a brief ACCESS EXCLUSIVE lock on the
parent, asked for in short attempts so that readers wait at most one attempt
(:data:`SWAP_LOCK_ATTEMPT_MS`). Where a swap would scan or lose something under that
lock (:func:`safeload.loads.partitions.swap_blocker`), or the target changed since the
stage in a way a partition would keep, ``auto`` gives way to DELETE + INSERT and ``swap``
refuses. See docs/decisions/002-write-audit-publish.md.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from psycopg import sql

from safeload.errors import LoadRefusedError
from safeload.loads import sql as q
from safeload.loads.indexes import build_indexes
from safeload.metadata import STAGING_SCHEMA
from safeload.loads.partitions import LOOK_UP, free_partition_name, partition_for, swap_blocker
from safeload.loads.publish.strategy import Blocker, PublishJob, PublishStrategy, Staging, Written
from safeload.loads.results import StageResult
from safeload.loads.staging.table import persistence

log = logging.getLogger(__name__)

#: a swap asks for the parent's ACCESS EXCLUSIVE lock in attempts this long: a reader
#: arriving meanwhile queues behind the request for at most this (plus the swap itself)
SWAP_LOCK_ATTEMPT_MS = 200


class Swap(PublishStrategy):
    """DETACH the old partition, ATTACH staging: on natively partitioned targets."""

    name = "swap"
    label = "swap"
    staging = Staging(as_partition=True)

    def blocker(self, conn: psycopg.Connection, info: q.TargetInfo, *, partition: bool = False,
                old: Any = LOOK_UP, mapping: dict[str, str | None] | None = None) -> Blocker | None:
        found = swap_blocker(conn, info, self.load.partition_value, partition=partition, old=old)
        if found is None:
            return None
        unsafe, why = found
        return Blocker(why, unsafe=unsafe, inapplicable=not info.partitioned)

    def accepts(self, conn: psycopg.Connection, info: q.TargetInfo, staging: str) -> bool:
        # staged for a swap (a permanent table); whether it still swaps is decided under
        # the publish's advisory lock, where the partition cannot change
        return info.partitioned and persistence(conn, staging) == "p"

    def prepare(self, conn: psycopg.Connection, info: q.TargetInfo, staged: StageResult) -> None:
        # Normally built by the stage; a staging table without them (its keys were
        # duplicated) fails here, before any lock on the target is taken.
        build_indexes(conn, info, staged.staging_table)

    def publish(self, conn: psycopg.Connection, job: PublishJob) -> Written | None:
        # the value's partition, looked up once under the lock, for the rules and the swap
        old = partition_for(conn, job.info, self.load.partition_value)
        if not self._same_columns(conn, job.now, job.staging, job.staged_columns):
            return None
        blocker = self.blocker(conn, job.info, partition=True, old=old)
        if blocker is not None and self.gives_way(job.info, blocker):
            return None
        return self._swap(conn, job.info, job.staging, job.rows_loaded, old)

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
        logs why and gives way (to DELETE + INSERT)."""
        if self.insisted:
            raise LoadRefusedError(f"{now.name} partition {self.load.partition_value}: cannot swap the staged table "
                                   f"in: {why}; nothing was published. Stage the partition again, or publish it with "
                                   "publish_strategy='auto' (DELETE + INSERT of the staged columns)")
        log.info("%s partition %s: publishing by %s, not by %s: %s", now.name, self.load.partition_value, self.then,
                 self.label, why)

    def _swap(self, conn: psycopg.Connection, info: q.TargetInfo, staging: str,
              rows_loaded: int, old: str | None) -> Written | None:
        """Make the staging table the partition: DETACH and DROP the old one, ATTACH staging.

        Metadata only: no row is copied. The staging table's CHECK constraint
        (``partition = value``) implies the partition bound, so ATTACH skips its scan.
        ``old`` is the value's current partition (None: none yet), looked up by the caller
        under the publish's advisory lock. Returns what was written, or None when ``auto``
        could not lock the parent within ``lock_timeout`` or ATTACH refused staging (the
        next strategy then publishes).
        """
        stg = q.staging_ident(staging)
        extras = [r[0] for r in conn.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped "
            "and attname like '\\_extra\\_%%'", (q.regclass(STAGING_SCHEMA, staging),)).fetchall()]
        for col in extras:  # source columns the target does not have: ATTACH wants exactly the parent's
            conn.execute(sql.SQL("alter table {} drop column {}").format(stg, sql.Identifier(col)))
        replaced = 0
        name = free_partition_name(conn, info, self.load.partition_value)
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
                    info.ident, stg, q.partition_bounds(info, self.load.partition_value)))
        except (psycopg.errors.DatatypeMismatch, psycopg.errors.CollationMismatch,
                psycopg.errors.InvalidTableDefinition, psycopg.errors.InvalidObjectDefinition) as e:
            # DDL on the parent since the stage that ATTACH checks and the column check does
            # not: a collation, a NOT NULL or a CHECK constraint added, a column added while
            # this publish waited for its lock
            self._no_swap(info, f"the target's definition changed since the stage ({e.diag.message_primary})")
            return None
        # a partition now: autovacuum looks after it again (staging is created without it)
        conn.execute(sql.SQL("alter table {} reset (autovacuum_enabled)").format(stg))
        key = info.column(info.partition_key or "")
        if key is None or key.type not in ("timestamp without time zone", "timestamp with time zone"):
            # the partition's bound now says what the pin said: drop it (PostgreSQL 18 refuses
            # some DDL on tables with CHECK constraints). A timestamp day keeps it: the bound
            # admits the whole day, the pin only the value (see partitions.bounds_one_value).
            conn.execute(sql.SQL("alter table {} drop constraint {}").format(stg, sql.Identifier(q.PARTITION_CHECK)))
        conn.execute(sql.SQL("alter table {} set schema {}").format(stg, sql.Identifier(info.schema)))
        conn.execute(sql.SQL("alter table {} rename to {}").format(
            sql.Identifier(info.schema, staging), sql.Identifier(name)))
        return Written(replaced, rows_loaded, staging_consumed=True)

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
                    if not self.insisted:
                        log.warning("%s partition %s: the table stayed busy for lock_timeout=%s (%s attempts); "
                                    "publishing by %s instead of %s", info.name, self.load.partition_value,
                                    self.load.lock_timeout, attempts, self.then, self.label)
                        return False
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
        q.set_lock_timeout(conn, self.load.lock_timeout)  # the attempt's setting outlives the savepoint
        if attempts > 1:
            log.info("%s partition %s: lock for the swap granted at attempt %s", info.name, self.load.partition_value,
                     attempts)
        return True
