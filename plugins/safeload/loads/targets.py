"""The target of a load as the catalogue has it, and the refusals of a target or partition
value a load cannot go to, before any row moves. Read again under the publish's lock,
where DDL since the stage may have changed the target."""

from __future__ import annotations

import psycopg
from psycopg import sql

from safeload.contracts.types import parse_type
from safeload.errors import LoadRefusedError
from safeload.loads import sql as q
from safeload.metadata import SCHEMA as METADATA_SCHEMA
from safeload.metadata import STAGING_SCHEMA
from safeload.loads.spec import LoadSpec


def read_target(conn: psycopg.Connection, load: LoadSpec) -> q.TargetInfo:
    """The target's columns and partitioning; refused when it is one of safeload's own tables."""
    info = q.target_info(conn, load.table)
    if info.schema in (METADATA_SCHEMA, STAGING_SCHEMA):
        raise LoadRefusedError(f"{info.name}: schema {info.schema} holds safeload's own tables (load history, "
                               "staging, quarantine) and is never a load target; load into another schema")
    return info


def check_partition_column(load: LoadSpec, info: q.TargetInfo) -> None:
    """Refuse a partition column the target does not have, or is not partitioned by."""
    if info.column(load.partition_column) is None:
        raise LoadRefusedError(f"{info.name} has no column {load.partition_column!r}; "
                               "set partition_column to one of " + ", ".join(c.name for c in info.columns))
    if info.partitioned and info.partition_key != load.partition_column:
        raise LoadRefusedError(f"{info.name} is partitioned by {info.partition_key!r}, not "
                               f"{load.partition_column!r}; use partition_column={info.partition_key!r}")


def check_partition_value(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo) -> None:
    """Refuse a partition value the partition column cannot hold, before it reaches any SQL."""
    col_type = info.column(load.partition_column).type
    try:
        with conn.transaction():
            conn.execute(sql.SQL("select {}::{}").format(sql.Literal(load.partition_value), sql.SQL(col_type)))
    except psycopg.DataError as e:
        reason = e.diag.message_primary if e.diag and e.diag.message_primary else str(e)
        raise LoadRefusedError(f"partition value {load.partition_value!r} is not a {col_type} ({reason}), "
                               f"which {info.name}.{load.partition_column} holds; pass a valid partition "
                               "value") from None


def add_columns(conn: psycopg.Connection, info: q.TargetInfo, columns: list[list[str]]) -> list[str]:
    """Add the staged load's new columns (schema evolution) that the target lacks; returns
    the names added. Runs inside the publishing transaction: rolled back with it."""
    added = []
    for col, pg_type in columns:
        if info.column(col) is None:
            conn.execute(sql.SQL("alter table {} add column if not exists {} {}").format(
                info.ident, sql.Identifier(col), sql.SQL(str(parse_type(pg_type)))))
            added.append(col)
    return added
