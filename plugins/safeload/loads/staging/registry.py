"""``safeload.staging``: the registry of staging tables and what was staged into each.

The stage records its table in the transaction that fills it (a crash mid-COPY leaves
neither). A stage in parallel streams (:mod:`.stage`) fills it from several sessions, so it
reserves the row first, in the transaction that creates the table, with no checksum (the
table is *unfinished*: never published), and completes it once every stream has committed
and the audit counted them. The publish claims the row ``FOR UPDATE`` (a second publish of the same staging
waits, then finds it gone) and deletes it with the table, in the publishing transaction.
The next stage of a partition drops what crashed or abandoned runs left behind.
"""

from __future__ import annotations

import json
import logging
from typing import NamedTuple

import psycopg
from psycopg import sql

from safeload.errors import LoadRefusedError
from safeload.loads import sql as q
from safeload.metadata import STAGING_SCHEMA
from safeload.loads.spec import LoadSpec

log = logging.getLogger(__name__)


class Staged(NamedTuple):
    """A staging table's registry row: what the stage counted and audited."""

    rows_loaded: int
    rows_quarantined: int
    rows_source: int
    checksum: str
    add_columns: list[list[str]]
    source: str


def drop_stale(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, name: str) -> None:
    """Drop this run's previous staging (a retry) and other runs' stale staging."""
    rows = conn.execute(
        """select staging_table from safeload.staging
           where target = %s and partition_value = %s
             and (staging_table = %s or created_at < now() - %s::interval)""",
        (info.name, load.partition_value, name, load.stale_staging_after),
    ).fetchall()
    rows.append((name,))  # an orphan without a registry row cannot exist, but be sure
    with conn.transaction():
        q.set_lock_timeout(conn, load.lock_timeout)
        for (stale,) in rows:
            conn.execute(sql.SQL("drop table if exists {}").format(q.staging_ident(stale)))
            conn.execute("delete from safeload.staging where staging_table = %s", (stale,))


def register(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, name: str, staged: Staged) -> None:
    """Record the staging table and what was staged into it (in the stage's transaction)."""
    conn.execute(
        """insert into safeload.staging (staging_table, target, partition_value, run_key,
               rows_loaded, rows_quarantined, rows_source, checksum, source, add_columns)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (name, info.name, load.partition_value, load.run_key, staged.rows_loaded, staged.rows_quarantined,
         staged.rows_source, staged.checksum, staged.source, json.dumps(staged.add_columns)),
    )


#: the checksum of a reserved registry row, whose table the streams are still filling
UNFINISHED = ""


def reserve(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, name: str, source: str) -> None:
    """Record a staging table that several sessions will fill (in the transaction that
    creates it): a crash before :func:`complete` leaves a row the next stage finds and drops."""
    register(conn, load, info, name, Staged(0, 0, 0, UNFINISHED, load.add_columns, source))


def complete(conn: psycopg.Connection, name: str, staged: Staged) -> None:
    """Record what the streams staged into a reserved table, and its audited checksum."""
    done = conn.execute(
        """update safeload.staging set rows_loaded = %s, rows_quarantined = %s, rows_source = %s, checksum = %s
           where staging_table = %s and checksum = %s""",
        (staged.rows_loaded, staged.rows_quarantined, staged.rows_source, staged.checksum, name, UNFINISHED),
    ).rowcount
    if done != 1:
        raise LoadRefusedError(f"{STAGING_SCHEMA}.{name} is no longer reserved for this stage (dropped as stale by "
                               "another run?); stage the partition again")


def claim(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, staging: str) -> Staged:
    """The staging table's registry row, locked to the end of the publishing transaction;
    refused when it is gone (published by an earlier try, or dropped as stale)."""
    reg = conn.execute(
        "select rows_loaded, rows_quarantined, rows_source, checksum, add_columns, source "
        "from safeload.staging where staging_table = %s for update",
        (staging,),
    ).fetchone()
    if reg is None:
        raise LoadRefusedError(
            f"staging table {STAGING_SCHEMA}.{staging} for {info.name} partition "
            f"{load.partition_value} is gone (already published by an earlier try, or dropped as "
            "stale); stage the partition again")
    if reg[3] == UNFINISHED:
        raise LoadRefusedError(
            f"staging table {STAGING_SCHEMA}.{staging} for {info.name} partition {load.partition_value} was never "
            "finished (its stage stopped while its streams were filling it); stage the partition again")
    return Staged(*reg)


def discard(conn: psycopg.Connection, name: str) -> None:
    """Drop an unfinished staging table and its reserved registry row, in a transaction of
    their own; best effort (a warning when the server refuses): the next stage of the
    partition drops them anyway."""
    try:
        with conn.transaction():
            conn.execute(sql.SQL("drop table if exists {}").format(q.staging_ident(name)))
            conn.execute("delete from safeload.staging where staging_table = %s and checksum = %s",
                         (name, UNFINISHED))
    except psycopg.Error as e:
        log.warning("could not drop the unfinished staging table %s.%s (%s); the next stage of the partition "
                    "drops it", STAGING_SCHEMA, name, str(e).splitlines()[0] if str(e) else type(e).__name__)


def forget(conn: psycopg.Connection, staging: str, *, drop: bool) -> None:
    """Delete the staging table's registry row, and the table itself when ``drop`` (a swap
    has made it the partition: then it is not dropped)."""
    if drop:
        conn.execute(sql.SQL("drop table {}").format(q.staging_ident(staging)))
    conn.execute("delete from safeload.staging where staging_table = %s", (staging,))
