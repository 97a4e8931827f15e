"""Grouping the scan by low-cardinality columns, when that pays: a regular expression on
a status column is then evaluated once per group instead of once per row
(:func:`plan_groups`; :meth:`safeload.quality.sql.plan.Plan.grouped` builds the SQL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from psycopg import sql

from safeload.quality.sql.catalog import TableInfo
from safeload.quality.sql.plan import Plan

if TYPE_CHECKING:
    import psycopg


#: groups the grouped scan may make at most (by the estimates), so that its hash table
#: stays small; a wrong estimate costs time (the hash spills to disk), never correctness
MAX_GROUPS = 1000

#: tables smaller than this (pages of 8 kB) are scanned row by row: grouping would save
#: milliseconds, and the cardinality probe costs some
GROUP_MIN_PAGES = 1000

#: pages the cardinality probe samples when the table has no statistics
PROBE_PAGES = 64


def estimate_cardinality(conn: psycopg.Connection, table: TableInfo, where: str | None,
                         cols: Sequence[str]) -> dict[str, float]:
    """Estimated distinct values of ``cols``: from ``pg_stats`` when the table has been
    analysed, else from a sample of about :data:`PROBE_PAGES` pages (``tablesample
    system``, repeatable); a column the sample shows fewer than 20 rows per value for is
    left out (too many values to group by). Empty for tables under
    :data:`GROUP_MIN_PAGES` pages.

    :param conn: a psycopg connection
    :param table: from :func:`read_table_info`
    :param where: the partition filter, or None
    :param cols: the candidate columns
    """
    if not cols or table.pages < GROUP_MIN_PAGES:
        return {}
    infos = [table.find(c) for c in cols]
    if table.rows and all(i is not None and i.n_distinct for i in infos):
        return {i.name: (i.n_distinct if i.n_distinct > 0 else -i.n_distinct * table.rows) for i in infos}
    pct = min(100.0, 100.0 * PROBE_PAGES / table.pages)
    exprs = [sql.SQL("count(distinct {})").format(sql.Identifier(c)) for c in cols]
    query = sql.SQL("select count(*), {} from {} tablesample system ({}) repeatable (0){}").format(
        sql.SQL(", ").join(exprs), table.ident, sql.Literal(round(pct, 4)),
        sql.SQL(" where ({})").format(sql.SQL(where)) if where else sql.SQL(""))
    import psycopg

    try:
        with conn.transaction():
            row = conn.execute(query).fetchone()
    except psycopg.OperationalError:
        raise
    except psycopg.Error:
        return {}  # grouping only saves time: a sample PostgreSQL refuses means row by row
    sampled, counts = row[0], row[1:]
    if sampled < 20 * 10:
        return {}
    return {c: float(d) for c, d in zip(cols, counts) if d * 20 <= sampled}


def choose_group_keys(candidates: dict[str, bool], cardinality: dict[str, float]) -> tuple[str, ...]:
    """The columns to group the scan by, or () to scan row by row.

    Grouping pays when it replaces a regular expression per row (about 140 ns a row on
    PostgreSQL 18, against 55 ns for hashing a key): it happens when a column with a
    regex check has at most :data:`MAX_GROUPS` values. The other low-cardinality columns
    with per-row checks (sets, ranges) then join the key, as long as the estimated groups
    stay within :data:`MAX_GROUPS` (a second key costs about 30 ns a row, an ``in`` list
    about 45).

    :param candidates: :meth:`Plan.group_candidates`
    :param cardinality: :func:`estimate_cardinality`
    """
    low = {c: d for c, d in cardinality.items() if c in candidates and d <= MAX_GROUPS}
    if not any(candidates[c] for c in low):
        return ()
    keys: list[str] = []
    groups = 1.0
    for c in sorted(low, key=lambda c: (not candidates[c], low[c], c)):
        if groups * max(low[c], 1.0) <= MAX_GROUPS:
            keys.append(c)
            groups *= max(low[c], 1.0)
    return tuple(keys)


def plan_groups(conn: psycopg.Connection, plan: Plan) -> Plan:
    """``plan`` with its scan grouped when that pays (:func:`choose_group_keys`)."""
    candidates = plan.group_candidates()
    if not any(candidates.values()) or not plan.groupable():
        return plan  # no regex to save: no grouping, and no need to estimate anything
    keys = choose_group_keys(candidates, estimate_cardinality(conn, plan.table, plan.where, sorted(candidates)))
    return plan.grouped(keys) if keys else plan
