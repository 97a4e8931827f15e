"""Filling a table from a source: one straight COPY where the source allows it (the usual,
fast path), else row by row, each value checked against the target's types, NOT NULL and
the partition, with the rows that do not fit quarantined.

A row that breaks one of the target's CHECK constraints is refused, naming its line: the
checked path checks what Python can (types, NOT NULL, the partition), and a CHECK is an
expression only PostgreSQL evaluates. The counts always add up: source = loaded +
quarantined.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from typing import NamedTuple

import psycopg
from psycopg import sql

from safeload.contracts.types import PgType, check_value, parse_type
from safeload.errors import LoadRefusedError
from safeload.loads import sql as q
from safeload.loads.sources.base import Source, StraightCopy
from safeload.loads.spec import LoadSpec
from safeload.loads.staging.quarantine import Quarantine
from safeload.loads.staging.table import extra_column

log = logging.getLogger(__name__)


class Filled(NamedTuple):
    """What a fill did."""

    path: str  # 'copy' (one straight COPY) or 'checked' (row by row, with quarantine)
    rows_source: int
    rows_loaded: int


def fill(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, relation: sql.Composable, source: Source,
         header: list[str], mapping: dict[str, str | None], quarantine: Quarantine) -> Filled:
    """COPY the source into ``relation`` (staging): its columns are the mapped target columns,
    and a source column the target lacks goes to its ``_extra_`` column."""
    cols = [mapping[h] or extra_column(h) for h in header]
    copy_sql = sql.SQL("copy {} ({}) from stdin").format(
        relation, sql.SQL(", ").join(sql.Identifier(c) for c in cols))
    # Fast path: the source's bytes (a CSV file's, or the source server's COPY text) go
    # straight to COPY. Clean sources (the usual case) load at COPY speed; a value the
    # target refuses falls back to the checked path below (a query: the same snapshot).
    straight = source.straight()
    if straight is not None:
        copied = copy_straight(conn, load, copy_sql, straight, info.name)
        if copied:
            return copied
    return fill_checked(conn, load, info, copy_sql, source, header, mapping, quarantine)


def copy_straight(conn: psycopg.Connection, load: LoadSpec, copy_sql: sql.Composable, straight: StraightCopy,
                  target: str) -> Filled | None:
    """One COPY of the source's blocks in a savepoint; None when the target refused a value.
    A broken CHECK constraint goes to the checked path too: there another partition's row
    (which PostgreSQL may meet the target's CHECK on first) is quarantined, and a row
    breaking the target's CHECK is named by the line Python's CSV reader counts (COPY
    counts lines differently in CRLF files with line feeds in quoted fields)."""
    blocks = straight.blocks
    try:
        with conn.transaction():
            cur = conn.cursor()
            try:
                with cur.copy(copy_sql + straight.options) as copy:
                    for block in blocks:
                        copy.write(block)
            finally:
                blocks.close()  # stop reading the source now, not when garbage-collected
            rows = cur.rowcount  # from COPY's command tag: no scan
            if rows == 0 and not load.allow_empty:
                raise LoadRefusedError(f"{straight.empty}: refusing to replace partition "
                                       f"{load.partition_value} of {target} with nothing "
                                       f"(allow_empty=True accepts {straight.empty_name})")
            return Filled("copy", rows, rows)
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError, psycopg.errors.BadCopyFileFormat,
            psycopg.errors.CharacterNotInRepertoire) as e:
        log.info("%s refused (%s); loading row by row with quarantine", straight.what, str(e).splitlines()[0])
        return None


def fill_checked(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, copy_sql: sql.Composable,
                 source: Source, header: list[str], mapping: dict[str, str | None],
                 quarantine: Quarantine) -> Filled:
    """Row by row: check each value against the target's types; bad rows to quarantine."""
    types: list[PgType | None] = []
    not_null: list[bool] = []
    part_idx = None
    for i, h in enumerate(header):
        col = info.column(mapping[h]) if mapping[h] else None
        types.append(_try_type(col.type) if col else None)
        not_null.append(bool(col and col.not_null))
        if mapping[h] == load.partition_column:
            part_idx = i
    width = len(header)
    empty_is_null = source.empty_is_null
    # COPY's line n is the n-th row written; which source line that is, as runs of
    # consecutive lines (one run per gap left by a quarantined row or a multi-line record)
    runs: list[tuple[int, int]] = []

    def source_line(n: int) -> str:
        start, first = max((r for r in runs if r[0] <= n), default=(n, n))
        return f"{source}, {source.place} {first + n - start}"

    rows_source = rows_loaded = 0
    last = None
    try:
        with conn.cursor().copy(copy_sql) as copy:
            for line, values, raw in source.rows(header):
                rows_source += 1
                reason = None
                if len(values) != width:
                    reason = f"has {len(values)} fields, the header has {width}"
                else:
                    for i, v in enumerate(values):
                        if v is None or (v == "" and empty_is_null):
                            if not_null[i]:
                                reason = (f"column {header[i]!r} is empty, but "
                                          f"{info.name}.{mapping[header[i]]} is NOT NULL")
                                break
                            values[i] = None
                            continue
                        t = types[i]
                        if t is not None:
                            r = check_value(v, t)
                            if r is not None:
                                reason = f"column {header[i]!r}: {r}"
                                break
                        elif "\x00" in v:
                            reason = f"column {header[i]!r}: NUL byte in text"
                            break
                    if reason is None and part_idx is not None and values[part_idx] is None:
                        reason = (f"column {header[part_idx]!r} is empty: the row belongs to no partition "
                                  f"(loading partition {load.partition_value})")
                    elif reason is None and part_idx is not None \
                            and not _same_partition(values[part_idx], load.partition_value, types[part_idx]):
                        reason = (f"column {header[part_idx]!r} is {values[part_idx]!r}: the row belongs to another "
                                  f"partition than {load.partition_value}")
                if reason is None:
                    copy.write_row(values)
                    rows_loaded += 1
                    if last is None or line != last + 1:
                        runs.append((rows_loaded, line))
                    last = line
                else:
                    quarantine.add(line, raw, reason)
    except psycopg.errors.CheckViolation as e:
        raise check_refusal(load, e, info.name, source_line) from None
    if rows_source == 0 and not load.allow_empty:
        raise LoadRefusedError(f"{source} has no rows: refusing to replace partition {load.partition_value} "
                               f"of {info.name} with nothing (allow_empty=True accepts an empty delivery)")
    return Filled("checked", rows_source, rows_loaded)


def check_refusal(load: LoadSpec, e: psycopg.errors.CheckViolation, target: str,
                  where: Callable[[int], str]) -> LoadRefusedError:
    """A row that breaks one of the target's CHECK constraints, as a clear refusal: the
    source's line (COPY's line n, mapped by ``where``), the constraint and its rule. Such
    a row is not quarantined: the checked path checks types and NOT NULL in Python, and
    a CHECK constraint is an expression only PostgreSQL evaluates."""
    m = re.search(r"\bline (\d+)", e.diag.context or "")
    place = where(int(m.group(1))) if m else "a row of the source"
    detail = f" ({e.diag.message_detail})" if e.diag.message_detail else ""
    if e.diag.constraint_name == q.PARTITION_CHECK:  # safeload's own: the value is not the partition's
        return LoadRefusedError(
            f"{place}: its {load.partition_column} is not {load.partition_value!r} as PostgreSQL compares it"
            f"{detail}, though it looked so to the row check (spaces or spelling); nothing was staged and "
            f"{target} is unchanged. Fix the value at the source")
    return LoadRefusedError(
        f"{place} breaks CHECK constraint {e.diag.constraint_name!r} of {target}{detail}; nothing was staged and "
        f"{target} partition {load.partition_value} is unchanged. Fix the row at the source (safeload quarantines "
        "rows whose values do not fit the target's types or NOT NULL, but does not evaluate its CHECK "
        "constraints row by row), or relax the constraint")


def _try_type(text: str) -> PgType | None:
    try:
        return parse_type(text)
    except ValueError:
        return None  # a type safeload does not check (PostgreSQL still does, on COPY)


def _same_partition(value: str, partition_value: str, t: PgType | None) -> bool:
    if t is not None and t.name == "date":
        # as dates: the check accepts the ISO basic form (20240502) too, and so does PostgreSQL
        try:
            return dt.date.fromisoformat(value.strip()) == dt.date.fromisoformat(str(partition_value).strip()[:10])
        except ValueError:
            return value.strip()[:10] == str(partition_value)[:10]
    if t is not None and t.name in ("text", "varchar"):
        return value == str(partition_value)  # as PostgreSQL compares text: 'eu ' is not 'eu'
    return value.strip() == str(partition_value)
