"""Checks the catalogue decides alone, before any row is read: a column exists, a column
is of a type (GX's name for it, :func:`safeload.gx_types.gx_type_name`).

Every family of checks gives :mod:`safeload.quality.sql.compile` the same three things:
``TYPES`` (what it compiles), ``type_error`` (a column type it cannot check) and
``compile`` (a :class:`~safeload.quality.sql.plan.Check` of the scan, or a result).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from safeload.quality.sql.catalog import ColumnInfo, TableInfo
from safeload.quality.sql.names import EXISTS, OF_TYPE
from safeload.quality.sql.plan import Check, Scan
from safeload.quality.sql.results import RawResult
from safeload.quality.suite import ExpectationSpec

TYPES = frozenset({EXISTS, OF_TYPE})


def type_error(spec: ExpectationSpec, col: ColumnInfo) -> str | None:
    return None  # any column exists, and has a type


def compile(i: int, spec: ExpectationSpec, cols: Sequence[ColumnInfo], scan: Scan, table: TableInfo,
            where: str | None, sample_size: int) -> Check | RawResult:
    """The result, from the catalogue (``cols`` is empty for ``expect_column_to_exist``)."""
    if spec.type == EXISTS:
        return _exists(spec.kwargs, table)
    return _of_type(spec.kwargs, cols[0])


def _exists(kw: dict[str, Any], table: TableInfo) -> RawResult:
    # GX: table.columns (case-insensitive names on PostgreSQL); a falsy column_index
    # (None or 0) checks existence only, any other is a Python index into the column list
    names = [c.name.casefold() for c in table.columns]
    want = kw["column"].casefold()
    idx = kw.get("column_index")
    if idx:
        try:
            success = names[idx] == want
        except IndexError:
            success = False
    else:
        success = want in names
    return {"success": success, "result": {}, "exception": None}


def _of_type(kw: dict[str, Any], col: ColumnInfo) -> RawResult:
    # GX on PostgreSQL: case-insensitive comparison with SQLAlchemy's compiled type name
    expected = kw.get("type_")
    observed = col.gx_type
    success = True if expected is None else observed.casefold() == str(expected).casefold()
    return {"success": success, "result": {"observed_value": observed}, "exception": None}
