"""Uniqueness checks: a column's values, or a set of columns' combined values, are unique.

A unique index proves them without counting (:meth:`TableInfo.proven_unique`), or does
so once the scan shows its other key columns non-null and constant over the checked
rows (:meth:`TableInfo.unique_given_constant`: a partition's ``(order_id, order_date)``
key for a check of ``order_id`` on one day). Otherwise a distinct count runs beside
the scan, and only when there are duplicates does a ``group by`` count the duplicated
rows, exactly as GX does (every row of a repeated value is unexpected)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from safeload.quality.sql.catalog import ColumnInfo, TableInfo
from safeload.quality.sql.names import COMPOUND_UNIQUE, UNIQUE
from safeload.quality.sql.plan import Check, Scan, from_where
from safeload.quality.sql.results import RawResult, map_result, plain
from safeload.quality.suite import ExpectationSpec

TYPES = frozenset({UNIQUE, COMPOUND_UNIQUE})


def type_error(spec: ExpectationSpec, col: ColumnInfo) -> str | None:
    """Errors GX (or PostgreSQL) would raise for this column's type, found before the scan
    so that one bad check cannot take the others' scan down."""
    if col.typname in ("json", "xml", "point"):
        return (f"column {col.name!r} is {col.gx_type}, which has no equality operator; it cannot be checked for "
                "uniqueness")
    return None


def compile(i: int, spec: ExpectationSpec, cols: Sequence[ColumnInfo], scan: Scan, table: TableInfo,
            where: str | None, sample_size: int) -> Check | RawResult:
    """The counts, proof or distinct count of the check, and its follow-up queries."""
    names = [c.name for c in cols]  # the catalogue's spelling
    if spec.type == COMPOUND_UNIQUE:
        return _compile_compound(i, spec, names, scan, table, where, sample_size)
    return _compile_unique(i, spec, names[0], scan, table, where, sample_size)


def _not_null_all(cols: Sequence[str]) -> sql.Composable:
    return sql.SQL(" and ").join(sql.SQL("{} is not null").format(sql.Identifier(c)) for c in cols)


def _duplicate_rows(table: TableInfo, where: str | None, cols: Sequence[str]) -> sql.Composable:
    """Rows whose (non-null) value occurs more than once: GX's unexpected count for uniqueness."""
    idents = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    return sql.SQL("select coalesce(sum(k), 0)::bigint from (select count(*) as k {} group by {} "
                   "having count(*) > 1) as dup").format(from_where(table, where, _not_null_all(cols)), idents)


def _duplicate_samples(table: TableInfo, where: str | None, cols: Sequence[str], limit: int) -> sql.Composable:
    idents = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    return sql.SQL("select {} {} group by {} having count(*) > 1 limit {}").format(
        idents, from_where(table, where, _not_null_all(cols)), idents, sql.Literal(limit))


@dataclass(frozen=True)
class _ConstantProof:
    """The scan's slots that tell whether the columns R of
    :meth:`TableInfo.unique_given_constant` are non-null and constant over the checked
    rows: then those rows are unique on the checked columns, without a distinct count."""

    n: str
    slots: tuple[tuple[str, str], ...]  # (count(r), min(r) = max(r)) per column r

    @classmethod
    def add(cls, scan: Scan, rest: Sequence[str]) -> _ConstantProof:
        return cls(scan.count_all(), tuple((scan.count(r), scan.same(r)) for r in rest))

    @property
    def names(self) -> list[str]:
        return [self.n] + [x for pair in self.slots for x in pair]

    def holds(self, v: dict[str, Any]) -> bool:
        # "is True": on no rows min = max is null, and the caller has nothing to prove then
        return all(v[c] == v[self.n] and v[same] is True for c, same in self.slots)


def _compile_unique(i: int, spec: ExpectationSpec, col: str, scan: Scan, table: TableInfo,
                    where: str | None, sample_size: int) -> Check:
    n, nn = scan.count_all(), scan.count(col)
    mostly = spec.kwargs.get("mostly", 1)
    if table.proven_unique([col]):  # a unique index: no duplicates, nothing to count
        return Check(i, spec, [n, nn], lambda v, q: map_result(
            element_count=v[n], nonnull_count=v[nn], unexpected_count=0, mostly=mostly))
    rest = table.unique_given_constant([col])
    proof = _ConstantProof.add(scan, rest) if rest else None
    nd = None if proof else scan.distinct(col, sql.SQL("count(distinct {})").format(sql.Identifier(col)), [col])
    dup_q = _duplicate_rows(table, where, [col])
    sample_q = _duplicate_samples(table, where, [col], sample_size) if sample_size > 0 else None

    def ev(v, q):
        if proof is not None:
            # no value to compare, or an index proves them unique: no second statement;
            # else (the rare case) the duplicated rows are counted exactly, after the scan
            u = 0 if v[nn] == 0 or proof.holds(v) else int(q(dup_q)[0][0])
        else:
            # as many distinct values as values: no duplicates, no second statement
            u = 0 if v[nd] == v[nn] else int(q(dup_q)[0][0])
        res = map_result(element_count=v[n], nonnull_count=v[nn], unexpected_count=u, mostly=mostly)
        if not res["success"] and sample_q is not None:
            res["result"]["partial_unexpected_list"] = [plain(r[0]) for r in q(sample_q)]
        return res

    return Check(i, spec, list(dict.fromkeys([n, nn, nd] if proof is None else [n, nn, *proof.names])), ev)


def _compile_compound(i: int, spec: ExpectationSpec, cols: list[str], scan: Scan, table: TableInfo,
                      where: str | None, sample_size: int) -> Check:
    # GX joins each row to its group's count on col = col, so a row with a NULL in any of
    # the columns is never unexpected; ignore_row_if decides only which rows are counted
    n = scan.count_all()
    key = tuple(cols)
    ignore = spec.kwargs.get("ignore_row_if", "all_values_are_missing")
    proven = table.proven_unique(cols)
    rest = None if proven else table.unique_given_constant(cols)
    proof = _ConstantProof.add(scan, rest) if rest else None
    all_nn = scan.count_where(("all_not_null", key), _not_null_all(cols), cols)
    nd = None if proven or proof else scan.distinct(
        key, sql.SQL("count(distinct ({})) filter (where {})").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in cols), _not_null_all(cols)), cols)
    if ignore == "never":
        considered = n
    elif ignore == "any_value_is_missing":
        considered = all_nn
    else:
        any_nn = sql.SQL(" or ").join(sql.SQL("{} is not null").format(sql.Identifier(c)) for c in cols)
        considered = scan.count_where(("any_not_null", key), any_nn, cols)
    dup_q = _duplicate_rows(table, where, cols)
    sample_q = _duplicate_samples(table, where, cols, sample_size) if sample_size > 0 else None
    mostly = spec.kwargs.get("mostly", 1)

    def ev(v, q):
        if proof is not None:
            u = 0 if v[all_nn] == 0 or proof.holds(v) else int(q(dup_q)[0][0])
        else:
            u = 0 if nd is None or v[nd] == v[all_nn] else int(q(dup_q)[0][0])
        res = map_result(element_count=v[n], nonnull_count=v[considered], unexpected_count=u, mostly=mostly)
        if not res["success"] and sample_q is not None:
            res["result"]["partial_unexpected_list"] = [
                {c: plain(x) for c, x in zip(cols, r)} for r in q(sample_q)]
        return res

    slots = [n, all_nn, nd, considered] + (proof.names if proof else [])
    return Check(i, spec, [x for x in dict.fromkeys(slots) if x], ev)
