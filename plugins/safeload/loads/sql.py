"""SQL builders and catalogue look-ups for the loader. Every identifier goes through
:class:`psycopg.sql.Identifier`; every value is a parameter or a :class:`psycopg.sql.Literal`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from safeload.errors import LoadRefusedError
from safeload.identifiers import validate_identifier, validate_table_name
from safeload.metadata import STAGING_SCHEMA


@dataclass(frozen=True)
class TargetColumn:
    name: str
    type: str  # as format_type() prints it
    not_null: bool
    has_default: bool
    generated: str = ""  # pg_attribute.attgenerated: 's' stored, 'v' virtual (PostgreSQL 18)
    identity: str = ""  # pg_attribute.attidentity: 'a' always, 'd' by default


@dataclass(frozen=True)
class TargetInfo:
    """What the catalogue says about a target table."""

    schema: str
    table: str
    columns: tuple[TargetColumn, ...]
    partitioned: bool  # natively partitioned (relkind 'p')
    strategy: str | None = None  # 'r' (range) or 'l' (list) for native partitioning
    partition_key: str | None = None

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.table)

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    def column(self, name: str) -> TargetColumn | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def written(self) -> tuple[TargetColumn, ...]:
        """The columns a load writes: all but generated ones, which the table computes."""
        return tuple(c for c in self.columns if not c.generated)


def target_info(conn: Any, table: str) -> TargetInfo:
    """Read a target table's columns and partitioning from the catalogue."""
    schema, name = validate_table_name(table)
    row = conn.execute(
        """
        select c.oid, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = %s and c.relname = %s
        """,
        (schema, name),
    ).fetchone()
    if row is None:
        raise LoadRefusedError(f"target table {schema}.{name} does not exist; create it first "
                               "(the loader never creates targets: their DDL, keys and partitioning "
                               "belong to the warehouse owner, e.g. include/sql/orders.sql)")
    oid, relkind = row
    if relkind not in ("r", "p"):
        raise LoadRefusedError(f"{schema}.{name} is not a table (relkind {relkind!r}); load into a table")
    cols = conn.execute(
        """
        select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef, a.attgenerated::text,
               a.attidentity::text
        from pg_attribute a where a.attrelid = %s and a.attnum > 0 and not a.attisdropped
        order by a.attnum
        """,
        (oid,),
    ).fetchall()
    strategy = key = None
    if relkind == "p":
        pt = conn.execute(
            """
            select p.partstrat, (select attname from pg_attribute where attrelid = p.partrelid
                                 and attnum = p.partattrs[0])
            from pg_partitioned_table p where p.partrelid = %s
            """,
            (oid,),
        ).fetchone()
        strategy, key = pt
    return TargetInfo(schema, name, tuple(TargetColumn(*c) for c in cols), relkind == "p", strategy, key)


def create_like(conn: Any, source_regclass: str, new: sql.Composable, *, unlogged: bool,
                constraints: bool) -> None:
    """Create ``new`` as ``CREATE TABLE new (LIKE source INCLUDING DEFAULTS INCLUDING
    GENERATED [INCLUDING CONSTRAINTS])`` would, from the catalogue, without locking
    ``source``.

    ``LIKE`` takes ACCESS SHARE on the source table until the end of the transaction. The
    stage creates staging in the transaction that then runs the COPY, so that lock would
    stay for the whole COPY: other partitions' swaps (ACCESS EXCLUSIVE on the parent) and
    DDL on the target would wait for it. Reading the catalogue takes no lock on the table.

    Copied as ``LIKE`` copies them: columns in order (dropped ones skipped), type with its
    modifier, collation, NOT NULL, defaults and generation expressions (not identity), and
    with ``constraints`` the CHECK
    constraints with their names (ATTACH matches the parent's by name), ``NO INHERIT`` and
    ``NOT ENFORCED``. Printed and run with ``search_path`` set to ``pg_catalog`` alone (as
    pg_dump does), so every name in a type, default or constraint is schema-qualified and
    means the object it meant on the source; the caller's ``search_path`` is restored.
    The names must be usable by the role: a type in a schema it has no USAGE on is
    refused (``InsufficientPrivilege``), where ``LIKE``, copying by OID, is not.
    tests/integration/loads/test_staging_ddl.py holds the result to ``LIKE``'s own,
    catalogue row by catalogue row.
    """
    # A savepoint: a failure is rolled back, search_path with it, and raised as it is (a
    # statement after a failed one would only say "current transaction is aborted").
    with conn.transaction():
        path = conn.execute("select current_setting('search_path')").fetchone()[0]
        conn.execute("select set_config('search_path', 'pg_catalog', true)")
        cols = conn.execute(
            """
            select a.attname, format_type(a.atttypid, a.atttypmod),
                   case when a.attcollation <> 0
                        then quote_ident(cn.nspname) || '.' || quote_ident(co.collname) end,
                   a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attgenerated::text
            from pg_attribute a
            left join pg_collation co on co.oid = a.attcollation
            left join pg_namespace cn on cn.oid = co.collnamespace
            left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
            where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped
            order by a.attnum
            """,
            (source_regclass,),
        ).fetchall()
        checks = []
        if constraints:
            enforced = "c.conenforced" if conn.info.server_version >= 180000 else "true"
            checks = conn.execute(
                f"""
                select c.conname, pg_get_expr(c.conbin, c.conrelid), c.connoinherit, {enforced}
                from pg_constraint c where c.conrelid = %s::regclass and c.contype = 'c'
                order by c.conname
                """,
                (source_regclass,),
            ).fetchall()
        parts = []
        for name, typ, coll, not_null, expr, generated in cols:
            col = sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(typ))
            if coll is not None:
                col += sql.SQL(" collate {}").format(sql.SQL(coll))
            if not_null:
                col += sql.SQL(" not null")
            if generated:  # computed in staging as in the target (ATTACH wants it generated too)
                col += sql.SQL(" generated always as ({}) {}").format(
                    sql.SQL(expr), sql.SQL("virtual" if generated == "v" else "stored"))
            elif expr is not None:
                col += sql.SQL(" default {}").format(sql.SQL(expr))
            parts.append(col)
        for name, expr, no_inherit, enforced in checks:
            parts.append(sql.SQL("constraint {} check ({}){}{}").format(
                sql.Identifier(name), sql.SQL(expr), sql.SQL(" no inherit" if no_inherit else ""),
                sql.SQL("" if enforced else " not enforced")))
        conn.execute(sql.SQL("create {}table {} ({})").format(
            sql.SQL("unlogged " if unlogged else ""), new, sql.SQL(", ").join(parts)))
        conn.execute("select set_config('search_path', %s, true)", (path,))


def staging_name(target: str, partition_value: str, run_key: str) -> str:
    """A staging table name unique to (target, partition, run), at most 63 bytes."""
    digest = hashlib.sha1(f"{target}\x00{partition_value}\x00{run_key}".encode()).hexdigest()[:12]
    table = target.split(".")[-1][:40]
    return validate_identifier(f"stg_{table}_{digest}")


def partition_lock_key(target: str, partition_value: str) -> int:
    """The advisory lock key of one partition: a signed 64-bit hash of (target, value)."""
    h = int.from_bytes(hashlib.sha256(f"safeload\x00{target}\x00{partition_value}".encode()).digest()[:8], "big")
    return h - (1 << 64) if h >= (1 << 63) else h


# Types with a default hash opclass (directly or, for varchar and cidr, through a
# binary-coercible one): hash_record_extended() hashes their binary values. Anything
# else (json, xml, geometric types, arrays, domains, user types) is hashed as text.
_HASHABLE = frozenset({
    "smallint", "integer", "bigint", "numeric", "real", "double precision", "boolean", "text", "character varying",
    "character", '"char"', "name", "date", "time without time zone", "time with time zone",
    "timestamp without time zone", "timestamp with time zone", "interval", "uuid", "bytea", "jsonb", "inet", "cidr",
    "macaddr", "macaddr8", "oid", "pg_lsn",
})


def _hashable(type_name: str) -> bool:
    """Whether a ``format_type()`` name is hashed by value (typmods such as ``(12,2)`` ignored)."""
    return re.sub(r"\(\d+(,\d+)?\)", "", type_name).strip() in _HASHABLE


def checksum_sql(relation: sql.Composable, columns: list[tuple[str, str]],
                 where: sql.Composable | None = None) -> sql.Composed:
    """An order-independent checksum and row count of a relation (or of one partition of it).

    ``columns`` are ``(name, type)`` as ``format_type()`` prints the type. The checksum is
    the sum of a 64-bit hash of each row: equal row multisets give equal sums whatever
    their physical order, in one scan and constant memory. ``sum(bigint)`` accumulates
    exactly (in 128 bits) and returns numeric. See docs/decisions/006-partition-checksum.md.
    """
    row = sql.SQL(", ").join(
        sql.Identifier(c) if _hashable(t) else sql.SQL("{}::text").format(sql.Identifier(c)) for c, t in columns)
    return sql.SQL(
        "select count(*), coalesce(sum(hash_record_extended(row({row}), 0)), 0)::text "
        "from {rel}{where}"
    ).format(row=row, rel=relation, where=sql.SQL(" where ") + where if where is not None else sql.SQL(""))


def partition_where(column: str, value: str) -> sql.Composed:
    """``column = value``; the value is a literal that PostgreSQL casts to the column's type."""
    return sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(value))


def partition_checksum(conn: Any, table: str, partition_column: str, value: str) -> tuple[int, str]:
    """Row count and checksum of one published partition (what the demo and tests compare)."""
    info = target_info(conn, table)
    n, checksum = conn.execute(
        checksum_sql(info.ident, [(c.name, c.type) for c in info.columns], partition_where(partition_column, value))
    ).fetchone()
    return n, checksum


def staging_ident(name: str) -> sql.Identifier:
    return sql.Identifier(STAGING_SCHEMA, name)


#: staging's CHECK that pins every row to the partition value (kept by a swapped-in partition)
PARTITION_CHECK = "safeload_partition_check"


def regclass(schema: str, name: str) -> str:
    """``"schema"."name"`` for a ``::regclass`` cast: unquoted, PostgreSQL would fold
    ``Orders`` to ``orders`` (the names are validated identifiers: no quote inside)."""
    return f'"{schema}"."{name}"'


def set_lock_timeout(conn: Any, value: str) -> None:
    """SET LOCAL lock_timeout (SET takes no parameters; set_config does)."""
    conn.execute("select set_config('lock_timeout', %s, true)", (value,))


_DAY_TYPES = ("date", "timestamp without time zone", "timestamp with time zone")
_INT_TYPES = ("smallint", "integer", "bigint")


def partition_bounds(info: TargetInfo, value: str) -> sql.Composed:
    """The ``FOR VALUES`` clause of a new partition holding ``value``.

    LIST partitions hold one value. RANGE partitions on a date or timestamp column hold
    one day; on an integer column, one value. Other layouts must be created by the user.
    """
    if info.strategy == "l":
        return sql.SQL("for values in ({})").format(sql.Literal(value))
    col = info.column(info.partition_key or "")
    if info.strategy == "r" and col is not None:
        if col.type in _DAY_TYPES:
            day = dt.date.fromisoformat(str(value)[:10])
            return sql.SQL("for values from ({}) to ({})").format(
                sql.Literal(day.isoformat()), sql.Literal((day + dt.timedelta(days=1)).isoformat()))
        if col.type in _INT_TYPES:
            return sql.SQL("for values from ({}) to ({})").format(sql.Literal(int(value)), sql.Literal(int(value) + 1))
    raise LoadRefusedError(
        f"{info.name} has no partition for {value!r} and safeload creates partitions only for LIST, "
        "or RANGE on a date, timestamp or integer column; create the partition first"
    )


def partition_table_name(info: TargetInfo, value: str) -> str:
    slug = "".join(ch if ch.isalnum() else "_" for ch in str(value))[:20]
    name = f"{info.table}_p{slug}"
    if len(name.encode()) > 63:
        name = f"{info.table[:40]}_p{hashlib.sha1(str(value).encode()).hexdigest()[:12]}"
    return name
