"""Checks of one aggregate against bounds: the row count, and a column's min, max, mean
and sum (GX's ``_validate_metric_value_between``)."""

from __future__ import annotations

from collections.abc import Sequence

from safeload.quality.sql.catalog import ColumnInfo, TableInfo
from safeload.quality.sql.names import MAX, MEAN, MIN, ROW_COUNT, SUM
from safeload.quality.sql.plan import Check, Scan
from safeload.quality.sql.results import RawResult, metric_between
from safeload.quality.suite import ExpectationSpec

TYPES = frozenset({ROW_COUNT, MIN, MAX, MEAN, SUM})


_AGG_FN = {MIN: "min", MAX: "max", MEAN: "avg", SUM: "sum"}


def type_error(spec: ExpectationSpec, col: ColumnInfo) -> str | None:
    """Errors GX (or PostgreSQL) would raise for this column's type, found before the scan
    so that one bad check cannot take the others' scan down."""
    gx_type = col.gx_type
    if spec.type in (MEAN, SUM) and col.category not in ("N", "T"):
        return f"column {col.name!r} is {gx_type}; {spec.type} needs a numeric column"
    if spec.type in (MIN, MAX) and (col.category in ("B", "A") or col.typname in ("json", "xml", "point")):
        return f"column {col.name!r} is {gx_type}, which has no min/max; {spec.type} needs an ordered type"
    return None


def compile(i: int, spec: ExpectationSpec, cols: Sequence[ColumnInfo], scan: Scan, table: TableInfo,
            where: str | None, sample_size: int) -> Check | RawResult:
    """One aggregate of the scan (``cols`` is empty for the row count)."""
    kw = spec.kwargs
    if spec.type == ROW_COUNT:
        n = scan.count_all()
        return Check(i, spec, [n], lambda v, q, n=n, kw=kw: metric_between(v[n], kw, integer_bounds=True))
    s = scan.agg(_AGG_FN[spec.type], cols[0].name)
    return Check(i, spec, [s], lambda v, q, s=s, kw=kw: metric_between(v[s], kw))
