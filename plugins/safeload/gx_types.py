"""The names Great Expectations gives PostgreSQL column types.

GX 1.x reports a column's type as SQLAlchemy compiles it (``NUMERIC(12, 2)``,
``VARCHAR(40)``, ``TIMESTAMP WITH TIME ZONE``), and ``expect_column_values_to_be_of_type``
compares its ``type_`` with that name. Both the contracts (which generate such
expectations from a contract's types) and the quality engines (which evaluate them)
need the same mapping, so it lives here, below both. Pure Python: no GX import.
"""

from __future__ import annotations

import re

_SCALAR_TYPES = {
    "smallint": "SMALLINT", "int2": "SMALLINT", "integer": "INTEGER", "int": "INTEGER", "int4": "INTEGER",
    "bigint": "BIGINT", "int8": "BIGINT", "real": "REAL", "float4": "REAL", "double precision": "DOUBLE PRECISION",
    "float8": "DOUBLE PRECISION", "text": "TEXT", "boolean": "BOOLEAN", "bool": "BOOLEAN", "date": "DATE",
    "uuid": "UUID", "json": "JSON", "jsonb": "JSONB", "bytea": "BYTEA", "interval": "INTERVAL",
    "timestamptz": "TIMESTAMP WITH TIME ZONE", "timetz": "TIME WITH TIME ZONE",
}
_PARAM_RE = re.compile(r"^(?P<base>[a-z ]+?)\s*(?:\((?P<args>[\d,\s]+)\))?(?P<rest>(?:\s+with(?:out)? time zone)?)$")


def gx_type_name(pg_type: str) -> str:
    """The name GX 1.x reports for a PostgreSQL column type (SQLAlchemy's compiled type).

    ``expect_column_values_to_be_of_type`` compares ``type_`` with this name, ignoring
    case.

    :param pg_type: ``format_type()`` output or a contract's type

    >>> gx_type_name("numeric(12,2)"), gx_type_name("character varying(40)"), gx_type_name("timestamptz")
    ('NUMERIC(12, 2)', 'VARCHAR(40)', 'TIMESTAMP WITH TIME ZONE')
    """
    t = re.sub(r"\s+", " ", pg_type.strip().lower())
    if t.endswith("[]"):
        return gx_type_name(t[:-2]) + "[]"
    if t in _SCALAR_TYPES:
        return _SCALAR_TYPES[t]
    m = _PARAM_RE.match(t)
    if not m:
        return pg_type.upper()
    base, args, rest = m.group("base").strip(), m.group("args"), m.group("rest").strip()
    nums = [a.strip() for a in args.split(",")] if args else []
    arg = f"({', '.join(nums)})" if nums else ""
    if base in ("numeric", "decimal"):
        return f"NUMERIC{arg}"
    if base in ("character varying", "varchar"):
        return f"VARCHAR{arg}"
    if base in ("character", "char", "bpchar"):
        return f"CHAR{arg}"
    if base in ("timestamp", "time"):
        zone = "WITH TIME ZONE" if rest == "with time zone" else "WITHOUT TIME ZONE"
        return f"{base.upper()}{arg} {zone}"
    if base == "timestamptz":
        return f"TIMESTAMP{arg} WITH TIME ZONE"
    if base == "timetz":
        return f"TIME{arg} WITH TIME ZONE"
    if base in ("double precision", "float8"):
        return "DOUBLE PRECISION"
    if base == "float" and nums:  # float(p): real up to 24 bits, else double
        return "REAL" if int(nums[0]) <= 24 else "DOUBLE PRECISION"
    return t.upper()
