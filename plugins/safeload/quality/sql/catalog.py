"""What the catalogue says about the checked table, read in one statement
(:func:`read_table_info`): its columns (types, collations, validated NOT NULLs,
statistics) and the column sets its unique indexes guarantee, which prove uniqueness
checks without counting (:meth:`TableInfo.proven_unique`,
:meth:`TableInfo.unique_given_constant`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import sql

from safeload.gx_types import gx_type_name

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class ColumnInfo:
    """A column as the catalogue describes it.

    :param name: the column name
    :param type: ``format_type()`` of its type, e.g. ``numeric(12,2)``
    :param category: ``pg_type.typcategory`` (N numeric, S string, D date/time, B boolean, ...)
    :param typname: the base type's name (``int4``, ``json``, ...)
    :param deterministic: False when the column's collation is nondeterministic (equal
        values may differ byte for byte, so a check cannot be evaluated once per value)
    :param n_distinct: ``pg_stats.n_distinct`` (negative: a fraction of the rows), None
        when the table has not been analysed
    :param not_null: the column has a *validated* not-null constraint (a primary key
        column, ``not null``): its ``count(c)`` is ``count(*)``. PostgreSQL 18 sets
        ``attnotnull`` for a ``not valid`` constraint too, whose column may hold nulls:
        that one does not count
    :param collation: (schema, name) of the column's collation, None when it has none
        (a regular expression's character classes follow it)
    """

    name: str
    type: str
    category: str
    typname: str
    deterministic: bool = True
    n_distinct: float | None = None
    not_null: bool = False
    collation: tuple[str, str] | None = None

    @property
    def gx_type(self) -> str:
        return gx_type_name(self.type)


#: column types a uniqueness proof may require to be constant (:meth:`TableInfo.unique_given_constant`):
#: ordered by their default btree operator class, so ``min(r) = max(r)`` (compared by PostgreSQL, with
#: that class's equality and the column's collation) means every value equals every other under the
#: equality a unique index on the column enforces
_CONSTANT_TYPES = frozenset({"int2", "int4", "int8", "numeric", "float4", "float8", "text", "varchar", "bpchar",
                             "date", "time", "timestamp", "timestamptz"})


@dataclass(frozen=True)
class TableInfo:
    """A table's columns, in order, and the column sets its unique indexes guarantee.

    :param unique_sets: key columns of each valid, non-partial unique index on plain
        columns (primary key and unique constraints included): a uniqueness check on
        those columns, or on any superset of them, cannot fail, so it costs nothing
    :param rows: the planner's row estimate (``pg_class.reltuples``), None if unknown
    :param pages: the table's size in pages (``pg_relation_size``), 0 for a view
    :param exact_unique_sets: the key columns of those of :attr:`unique_sets`' indexes
        that enforce the columns' own equality at every statement: not deferrable, and
        every key column indexed with its type's default operator class and its own
        collation (used by :meth:`unique_given_constant`)
    """

    schema: str
    table: str
    columns: tuple[ColumnInfo, ...]
    unique_sets: tuple[frozenset[str], ...] = ()
    rows: float | None = None
    pages: int = 0
    exact_unique_sets: tuple[frozenset[str], ...] = ()

    def proven_unique(self, cols: Sequence[str]) -> bool:
        # exact indexes only: one with another operator class or collation may enforce an
        # equality finer than the one GX's GROUP BY uses ('a' and 'A' distinct to it)
        return any(u <= set(cols) for u in self.exact_unique_sets)

    def unique_given_constant(self, cols: Sequence[str]) -> tuple[str, ...] | None:
        """The fewest columns R such that the checked rows are unique on ``cols`` when
        every column of R is non-null and has one value over them; None when there is
        no such index.

        A unique index on K = ``cols`` + R forbids two rows equal on all of K with no null
        among them. If R is non-null and constant over the checked rows, two of them with
        the same non-null ``cols`` would be such rows: so the rows GX considers are unique,
        exactly (the usual case: a natively partitioned table's primary key
        ``(order_id, order_date)``, checked on one day's partition or on a staging table
        of one day). R must be of a type whose ``min = max`` means every value is equal
        under the index's own equality (:data:`_CONSTANT_TYPES`, an exact index); not
        bool (no min/max), not json, not arrays or anything less certain.

        :param cols: the checked columns (the catalogue's spelling)
        """
        have = set(cols)
        best: tuple[str, ...] | None = None
        for key in self.exact_unique_sets:
            rest = key - have
            if not rest:
                continue  # proven outright (proven_unique)
            infos = [self.find(r) for r in rest]
            if not all(i is not None and i.name in rest and i.category in ("N", "D", "S")
                       and i.typname in _CONSTANT_TYPES for i in infos):
                continue
            candidate = tuple(sorted(rest))
            if best is None or (len(candidate), candidate) < (len(best), best):
                best = candidate
        return best

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    def find(self, name: str) -> ColumnInfo | None:
        """The column called ``name``; failing that, the only one equal to it ignoring case
        (GX's PostgreSQL dialect matches column names without regard to case)."""
        for c in self.columns:
            if c.name == name:
                return c
        folded = [c for c in self.columns if c.name.casefold() == name.casefold()]
        return folded[0] if len(folded) == 1 else None


def read_table_info(conn: psycopg.Connection, schema: str, table: str) -> TableInfo | None:
    """Read a table's (or view's) columns and unique indexes from the catalogue, in one
    statement; None when it does not exist.

    :param conn: a psycopg connection
    :param schema: the schema
    :param table: the table
    """
    row = conn.execute(
        """
        select
          (select coalesce(json_agg(json_build_array(
                      a.attname, format_type(a.atttypid, a.atttypmod),
                      coalesce(bt.typcategory, t.typcategory), coalesce(bt.typname, t.typname),
                      coalesce(coll.collisdeterministic, true),
                      (select s.n_distinct from pg_stats s
                       where s.schemaname = n.nspname and s.tablename = c.relname and s.attname = a.attname
                       order by s.inherited limit 1),
                      a.attnotnull and (c.relkind = 'r' and not c.relhassubclass
                                        or c.relkind = 'p' and not exists (
                                            select from pg_partition_tree(c.oid) pt
                                            join pg_class l on l.oid = pt.relid where l.relkind = 'f')) and not exists (
                          -- PostgreSQL 18: a "not valid" not-null constraint sets attnotnull too,
                          -- and a NO INHERIT one leaves inheritance children's NULLs to the scan;
                          -- a foreign table's (or foreign partition's) is not enforced at all
                          select from pg_constraint nc
                          where nc.conrelid = a.attrelid and nc.contype = 'n' and not nc.convalidated
                                and nc.conkey[1] = a.attnum),
                      (select json_build_array(cn.nspname, coll.collname)
                       from pg_namespace cn where cn.oid = coll.collnamespace))
                   order by a.attnum), '[]')
           from pg_attribute a
           join pg_type t on t.oid = a.atttypid
           left join pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
           left join pg_collation coll on coll.oid = a.attcollation
           where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped),
          (select coalesce(json_agg(json_build_array(u.cols, u.exact)), '[]')
           from (select array_agg(a.attname::text) as cols,
                        -- enforced at every statement, with each column's own equality
                        bool_and(i.indimmediate and opc.opcdefault and k.coll = a.attcollation) as exact
                 from pg_index i
                 cross join lateral unnest(i.indkey::int2[], i.indclass::oid[], i.indcollation::oid[])
                      with ordinality as k(attnum, cls, coll, pos)
                 join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
                 join pg_opclass opc on opc.oid = k.cls
                 where i.indrelid = c.oid and i.indisunique and i.indisvalid
                       -- an index covers its own table only: not the rows of inheritance
                       -- children, which a scan of the table reads (a partitioned table's does)
                       and (c.relkind = 'p' or not c.relhassubclass)
                       and i.indpred is null and i.indexprs is null and k.pos <= i.indnkeyatts
                 group by i.indexrelid) as u),
          case when c.reltuples >= 0 then c.reltuples end,
          case when c.relkind in ('r', 'm', 't') then pg_relation_size(c.oid) / current_setting('block_size')::int
               when c.relkind = 'p' then (select sum(pg_relation_size(pt.relid)) from pg_partition_tree(c.oid) pt)
                                         / current_setting('block_size')::int
               else 0 end
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = %s and c.relname = %s
        """,
        (schema, table),
    ).fetchone()
    if row is None:
        return None
    columns, unique, rows, pages = row
    return TableInfo(schema, table, tuple(ColumnInfo(*c[:7], collation=tuple(c[7]) if c[7] else None)
                                          for c in columns),
                     tuple(frozenset(u) for u, _ in unique if u), rows=rows, pages=int(pages or 0),
                     exact_unique_sets=tuple(frozenset(u) for u, exact in unique if u and exact))
