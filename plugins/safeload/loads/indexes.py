"""The target's indexes, built on a staging table that will become a partition.

ATTACH adopts an index of the partition that matches one of the parent's instead of
building it under the parent's lock; built at the stage, the unique ones also let the
quality gate prove uniqueness from the index.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from safeload.loads import sql as q
from safeload.metadata import STAGING_SCHEMA


def build_indexes(conn: psycopg.Connection, info: q.TargetInfo, staging: str) -> None:
    """Give the staging table the parent's primary key, unique constraints and plain
    column indexes, so that ATTACH can adopt them instead of building them under lock.
    (Expression, partial, non-btree and INCLUDE indexes are left for ATTACH to build.)"""
    stg = q.staging_ident(staging)
    existing = conn.execute("select count(*) from pg_index where indrelid = %s::regclass",
                            (q.regclass(STAGING_SCHEMA, staging),)).fetchone()[0]
    if existing:
        return  # a retried publish: already built
    rows = conn.execute(
        """
        select coalesce(con.contype, 'i'),
               array_agg(a.attname order by k.ord)
        from pg_index i
        cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
        join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
        left join pg_constraint con on con.conindid = i.indexrelid and con.contype in ('p', 'u')
        where i.indrelid = %s::regclass and i.indexprs is null and i.indpred is null
          -- btree only (built as btree below): a hash, GiST or GIN index as a btree may not
          -- build at all (no btree class, entries over 2704 bytes) and would not match
          and (select relam from pg_class where oid = i.indexrelid) = (select oid from pg_am where amname = 'btree')
          -- INCLUDE columns would become key columns here (NOT NULL in a primary key)
          and i.indnatts = i.indnkeyatts
        group by i.indexrelid, con.contype
        """,
        (q.regclass(info.schema, info.table),),
    ).fetchall()
    with conn.transaction():
        for k, (kind, cols) in enumerate(rows):
            collist = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
            # Named after the staging table (unique per target, partition and run; at
            # most 57 bytes): the swap moves them into the target's schema, where names
            # PostgreSQL chose (the staging name truncated to fit the columns' names)
            # would be the same for every partition of a long-named table
            idx = sql.Identifier(f"{staging}_i{k}")
            if kind == "p":
                conn.execute(sql.SQL("alter table {} add constraint {} primary key ({})").format(stg, idx, collist))
            elif kind == "u":
                conn.execute(sql.SQL("alter table {} add constraint {} unique ({})").format(stg, idx, collist))
            else:
                conn.execute(sql.SQL("create index {} on {} ({})").format(idx, stg, collist))
