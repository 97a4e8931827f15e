"""A direct load in several streams (:class:`SharedFill`): the publishing transaction and
helper sessions COPY one CSV file at once.

One session parses and writes every row on one core, and a plain table's load adds the
DELETE of the old day before its COPY, in the same transaction. With N streams
(``parallel=``; by default two for a CSV file of 2 MiB or more,
:func:`~safeload.loads.staging.stage.split_source`), N - 1 helper sessions COPY pieces of
the file into an UNLOGGED side table while the publishing transaction DELETEs the old
rows and then COPYs the pieces the helpers have not taken
(:class:`~safeload.loads.staging.shared.SharedCopy`); once the helpers have committed, the
transaction copies their rows into the target (``INSERT ... SELECT``: no parsing), drops
the side table, audits the partition as it sees it, and commits. Readers see the old
rows until that COMMIT, as with one stream; a crash before it leaves the target as it
was, and at most a side table whose registry row says it was never finished (the next
load of the partition drops it).

A value that the target or the side table refuses (in any stream), or a row outside the
partition, rolls it all back: the side table is dropped and the file loaded again in one
stream, where the bad rows are quarantined with their lines. docs/decisions/047.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import psycopg
from psycopg import sql

from safeload.errors import LoadRefusedError
from safeload.loads import sql as q
from safeload.loads.sources.base import COPY_BLOCK, StraightCopy
from safeload.loads.spec import LoadSpec
from safeload.loads.staging import registry
from safeload.loads.staging.fill import Filled, copy_options
from safeload.loads.staging.shared import SharedCopy
from safeload.loads.staging.split import record_blocks
from safeload.loads.staging.streams import open_sessions
from safeload.loads.staging.stage import DATA_ERRORS
from safeload.loads.staging.table import create_staging
from safeload.metadata import STAGING_SCHEMA

log = logging.getLogger(__name__)


class OneStream(Exception):
    """The streams stopped on something one stream handles (a value refused, a row outside
    the partition): load the source again in one stream."""


class SharedFill:
    """The rows of a direct load, by the publishing transaction's own COPY and ``streams - 1``
    helpers' (see the module docstring); called by the publishing transaction
    (:class:`~safeload.loads.publish.direct.FillRows`), which it leaves holding every row."""

    def __init__(self, conn: psycopg.Connection, connect: Callable[[], psycopg.Connection], load: LoadSpec,
                 info: q.TargetInfo, label: str, header: list[str], mapping: dict[str, str | None],
                 straight: StraightCopy, streams: int):
        self.conn, self.load, self.info, self.label = conn, load, info, label
        self.straight, self.streams = straight, streams
        self.side = q.staging_name(info.name, load.partition_value, load.run_key)
        self.columns = sql.SQL(", ").join(sql.Identifier(mapping[h]) for h in header)
        self.options = copy_options(replace(straight, header=False))
        self.helpers = open_sessions(connect, streams - 1, label)
        if self.helpers is None:
            straight.blocks.close()
            raise OneStream("no session for a helper stream")
        try:
            with conn.transaction():  # committed before the streams start: their sessions must see it
                q.set_lock_timeout(conn, load.lock_timeout)
                create_staging(conn, load, info, self.side, header, mapping, as_partition=False)
                registry.reserve(conn, load, info, self.side, label)
        except BaseException:
            self.close()
            raise

    def __call__(self, conn: psycopg.Connection, now: q.TargetInfo, scan: sql.Composable,
                 delete: Callable[[], int]) -> tuple[int, Filled, tuple[int, str]]:
        load, side, helpers = self.load, q.staging_ident(self.side), self.helpers or []
        try:
            # pieces of COPY_BLOCK / N: the pieces waiting in the queue add up to the same few
            # blocks whatever N is (as for streams into staging)
            pieces = record_blocks(self.straight.blocks, skip_header=self.straight.header,
                                   size=max(COPY_BLOCK // self.streams, 1 << 16))
            copy_side = sql.SQL("copy {} ({}) from stdin{}").format(side, self.columns, self.options)
            with SharedCopy(helpers, copy_side, pieces, prepare=lambda c: q.set_lock_timeout(c, load.lock_timeout)) \
                    as shared:
                replaced = delete()
                here = shared.copy_here(conn.cursor(), sql.SQL("copy {} ({}) from stdin{}").format(
                    now.ident, self.columns, self.options))
                beside = shared.helper_rows()
        except DATA_ERRORS as e:
            if isinstance(e, (psycopg.errors.UniqueViolation, psycopg.errors.ForeignKeyViolation)):
                raise  # a key of the target itself: one stream would meet it too
            raise OneStream(f"a stream refused a value ({str(e).splitlines()[0]})") from None
        finally:
            self.straight.blocks.close()
            for c in helpers:  # done with them: not held through the INSERT and the audit
                c.close()
        inserted = conn.execute(sql.SQL("insert into {} ({}) select {} from {}").format(
            now.ident, self.columns, self.columns, side)).rowcount
        if inserted != sum(beside):
            raise LoadRefusedError(f"{STAGING_SCHEMA}.{self.side} holds {inserted} rows but its streams loaded "
                                   f"{sum(beside)}; nothing was loaded. Load the partition again")
        registry.forget(conn, self.side, drop=True)  # in the publishing transaction: gone with its COMMIT
        rows = here + inserted
        if rows == 0 and not load.allow_empty:
            raise LoadRefusedError(f"{self.straight.empty}: refusing to replace partition {load.partition_value} "
                                   f"of {self.info.name} with nothing (allow_empty=True accepts "
                                   f"{self.straight.empty_name})")
        audited = conn.execute(scan).fetchone()
        if audited[0] != rows:
            raise OneStream(f"rows outside partition {load.partition_value} were loaded")
        log.info("%s: %s rows in %s COPY streams (%s straight into %s, %s beside it)", self.label, rows,
                 self.streams, here, self.info.name, ", ".join(str(r) for r in beside))
        return replaced, Filled("copy", rows, rows), audited

    def close(self) -> None:
        """Close the helpers' sessions, and drop the side table if the publishing transaction
        did not (it rolled back)."""
        for c in self.helpers or []:
            c.close()
        registry.discard(self.conn, self.side)
