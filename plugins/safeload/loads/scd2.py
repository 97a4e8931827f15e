"""SCD Type 2 from daily snapshots, rebuilt deterministically.

The dimension is a *function of the snapshots*: each day's snapshot is loaded as one
partition (idempotently, by the partition loader), and the history is recomputed from
the snapshots in one transaction. So re-running a date, running dates out of order, or
backfilling gives the same history by construction: there is no "apply today's changes
to yesterday's state" step whose result depends on the order of runs.

For each business key, ordered by snapshot date, a new version starts when the hash of
the tracked columns differs from the previous snapshot's, or when the key reappears
after being absent. A version ends (``valid_to``) the day the next version starts or the
first snapshot the key is missing from (a deletion). ``is_current`` marks versions still
open in the latest snapshot.

Pure SQL building: no Airflow import.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from safeload.identifiers import validate_identifier, validate_table_name
from safeload.loads.sql import partition_lock_key

OPEN_END = "9999-12-31"


def scd2_rebuild_sql(snapshots: str, dimension: str, *, key: str, tracked: list[str],
                     snapshot_column: str) -> sql.Composed:
    """INSERT ... SELECT of every version of ``dimension``, computed from ``snapshots``
    (run after deleting the dimension's rows, in the same transaction)."""
    s_schema, s_table = validate_table_name(snapshots)
    d_schema, d_table = validate_table_name(dimension)
    k, d = sql.Identifier(validate_identifier(key)), sql.Identifier(validate_identifier(snapshot_column))
    cols = [sql.Identifier(validate_identifier(c)) for c in tracked]
    hash_expr = sql.SQL("md5(row({})::text)").format(sql.SQL(", ").join(cols))
    col_list = sql.SQL(", ").join(cols)
    return sql.SQL("""
with days as (
    select distinct {d} as day from {snap}
), days_ordered as (
    select day, lead(day) over (order by day) as next_day from days
), rows as (
    select s.{k}, s.{d} as day, {hash} as row_hash, {cols_s},
           lag({hash}) over w as prev_hash,
           lag(s.{d}) over w as prev_day
    from {snap} s
    window w as (partition by s.{k} order by s.{d})
), starts as (
    -- a version starts at a key's first snapshot, after a change, or when it reappears
    select r.*, (select max(day) from days where day < r.day) as day_before
    from rows r
), versions as (
    select st.{k}, st.day as valid_from, st.row_hash, {cols_st}
    from starts st
    where st.prev_hash is null or st.prev_hash <> st.row_hash or st.prev_day is distinct from st.day_before
), bounded as (
    select v.*,
           lead(v.valid_from) over (partition by v.{k} order by v.valid_from) as next_start,
           -- the first snapshot day after valid_from in which the key is missing
           (select min(dd.day) from days dd
             where dd.day > v.valid_from
               and not exists (select 1 from {snap} x where x.{k} = v.{k} and x.{d} = dd.day)) as gone_on
    from versions v
), final as (
    select {k}, valid_from,
           coalesce(least(next_start, gone_on), next_start, gone_on, {open_end}::date) as valid_to,
           row_hash, {col_list}
    from bounded
)
insert into {dim} ({k}, valid_from, valid_to, is_current, row_hash, {col_list})
select {k}, valid_from, valid_to, valid_to = {open_end}::date, row_hash, {col_list}
from final
""").format(
        d=d, k=k, snap=sql.Identifier(s_schema, s_table), dim=sql.Identifier(d_schema, d_table), hash=hash_expr,
        cols_s=sql.SQL(", ").join(sql.SQL("s.{}").format(c) for c in cols),
        cols_st=sql.SQL(", ").join(sql.SQL("st.{}").format(c) for c in cols),
        col_list=col_list, open_end=sql.Literal(OPEN_END),
    )


def rebuild_scd2(conn: Any, snapshots: str, dimension: str, *, key: str, tracked: list[str],
                 snapshot_column: str = "snapshot_date", lock_timeout: str = "30s") -> dict[str, int]:
    """Rebuild the dimension in one transaction, serialised with other rebuilds of it.

    Returns counts of versions and current rows. ``conn`` is an autocommit psycopg connection.
    """
    with conn.transaction():
        conn.execute("select set_config('lock_timeout', %s, true)", (lock_timeout,))
        conn.execute("select pg_advisory_xact_lock(%s)", (partition_lock_key(dimension, "*scd2*"),))
        d_schema, d_table = validate_table_name(dimension)
        # readers see the old history or the new one: the rebuild is one transaction
        conn.execute(sql.SQL("delete from {}").format(sql.Identifier(d_schema, d_table)))
        conn.execute(scd2_rebuild_sql(snapshots, dimension, key=key, tracked=tracked,
                                      snapshot_column=snapshot_column))
        versions, current = conn.execute(sql.SQL("select count(*), count(*) filter (where is_current) from {}").format(
            sql.Identifier(d_schema, d_table))).fetchone()
    return {"versions": versions, "current": current}
