"""The catalogue reads a lineage event needs: a table's columns, a relation's size.

Catalogue look-ups only, never a scan of the data: the provider emits events under a
time limit (``[openlineage] execution_timeout``), and a scan of a large partition would
outlast it. Pure psycopg; no Airflow.
"""

from __future__ import annotations

from typing import Any

_COLUMNS = """
select a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum),
       a.attgenerated <> ''
from pg_attribute a
where a.attrelid = to_regclass(%s) and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""


def _qualified(schema: str, table: str) -> str:
    from psycopg import sql

    return sql.Identifier(schema, table).as_string(None)


def table_columns(conn: Any, schema: str, table: str) -> list[tuple[str, str, str | None, bool]]:
    """``(name, type, comment, computed)`` of the table's columns in order (``computed``: a
    generated column, which no load writes); [] when there is no such table."""
    return [tuple(r) for r in conn.execute(_COLUMNS, (_qualified(schema, table),)).fetchall()]


def relation_size(conn: Any, schema: str, table: str) -> int | None:
    """Bytes of the table with its indexes and TOAST (``pg_total_relation_size``); None
    when there is no such table."""
    row = conn.execute("select pg_total_relation_size(to_regclass(%s))", (_qualified(schema, table),)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def partition_size(conn: Any, schema: str, table: str, column: str, value: str) -> int | None:
    """Bytes of the partition of a natively partitioned table that holds ``value``, found
    by one pruned look-up of a single row. None when the table is not partitioned or the
    partition has no row."""
    from psycopg import sql

    kind = conn.execute("select relkind from pg_class where oid = to_regclass(%s)",
                        (_qualified(schema, table),)).fetchone()
    if kind is None or kind[0] != "p":
        return None
    column_type = next((t for name, t, *_ in table_columns(conn, schema, table) if name == column), None)
    if column_type is None:
        return None
    leaf = conn.execute(sql.SQL("select tableoid from {} where {} = cast(%s as {}) limit 1").format(
        sql.Identifier(schema, table), sql.Identifier(column), sql.SQL(column_type)), (value,)).fetchone()
    if leaf is None:
        return None
    return int(conn.execute("select pg_total_relation_size(%s)", (leaf[0],)).fetchone()[0])
