"""The ``delete_insert`` strategy: DELETE the partition's rows, INSERT the staged ones.

Works on any target (plain or natively partitioned) and never blocks a reader; the rows
are written twice (by the stage and by the INSERT). On a natively partitioned target
the value's partition is created first when it is missing.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from safeload.loads import sql as q
from safeload.loads.partitions import LOOK_UP, ensure_partition
from safeload.loads.publish.strategy import Blocker, PublishJob, PublishStrategy, Written
from safeload.loads.results import StageResult
from safeload.loads.staging.table import check_staged_columns, exists, staged_columns


class DeleteInsert(PublishStrategy):
    """DELETE + INSERT ... SELECT from staging, in the publishing transaction."""

    name = "delete_insert"
    label = "DELETE + INSERT"

    def blocker(self, conn: psycopg.Connection, info: q.TargetInfo, *, partition: bool = False,
                old: Any = LOOK_UP) -> Blocker | None:
        return None  # runs anywhere

    def prepare(self, conn: psycopg.Connection, info: q.TargetInfo, staged: StageResult) -> None:
        if not info.partitioned:
            return
        # the re-checks of the publish first (again under the lock), so that a refused
        # publish does not leave the new, empty partition behind
        if exists(conn, staged.staging_table):
            evolved = {c[0] for c in staged.add_columns}  # added to the target by this publish
            check_staged_columns(self.load, info, {c: t for c, t in staged_columns(
                conn, staged.staging_table).items() if c not in evolved})
        ensure_partition(conn, info, self.load.partition_value, self.load.lock_timeout)

    def publish(self, conn: psycopg.Connection, job: PublishJob) -> Written:
        load, info, now = self.load, job.info, job.now
        if job.prepared_by != self.name and info.partitioned:
            # another strategy gave way: the partition may be missing (prepare() makes it)
            ensure_partition(conn, info, load.partition_value, load.lock_timeout)
        # the staged columns (all in the target, checked by the transaction); a column
        # added to the target since the stage gets its default (generated columns are
        # computed by the target; identity values are the staged ones, which GENERATED
        # ALWAYS takes only when told to)
        written = [c for c in now.written if c.name in job.staged_columns]
        cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in written)
        overriding = any(c.identity == "a" for c in written)
        replaced = conn.execute(sql.SQL("delete from {} where {}").format(
            info.ident, q.partition_where(load.partition_column, load.partition_value))).rowcount
        inserted = conn.execute(sql.SQL("insert into {} ({}){} select {} from {}").format(
            info.ident, cols, sql.SQL(" overriding system value" if overriding else ""), cols,
            q.staging_ident(job.staging))).rowcount
        return Written(replaced, inserted)
