"""The one scan a suite compiles into: its aggregates, deduplicated by what they compute
(:class:`Scan`), the compiled checks (:class:`Check`), and the statements that compute
them (:class:`Plan`): one aggregate ``select`` over the table, optionally over groups of
low-cardinality columns, and the distinct counts of uniqueness checks beside it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from safeload.quality.sql.catalog import ColumnInfo, TableInfo
from safeload.quality.sql.results import RawResult
from safeload.quality.suite import ExpectationSpec


@dataclass(frozen=True)
class Slot:
    """One aggregate of the scan and what it computes, so that it can be rendered over
    rows or over groups (see :meth:`Plan.scan`).

    :param kind: ``count_all``, ``count`` (non-null values of ``cols[0]``),
        ``count_where`` (rows where ``pred`` holds), ``agg`` (``fn`` of ``cols[0]``),
        ``same`` (``min(c) = max(c)`` of ``cols[0]``: null when it has no value) or
        ``distinct`` (a distinct count: computed by its own statement)
    :param expr: the aggregate over the table's rows
    :param cols: the columns it reads
    :param regex: ``pred`` evaluates a regular expression (the costly predicate)
    :param pattern: that regular expression (``pred`` is ``not (c ~ pattern)``), for
        :func:`memoize_regexes`
    :param memo: values whose match :func:`memoize_regexes` looked up in advance (0: none)
    """

    kind: str
    expr: sql.Composable
    cols: tuple[str, ...] = ()
    pred: sql.Composable | None = None
    fn: str | None = None
    regex: bool = False
    pattern: str | None = None
    memo: int = 0


def agg_expr(fn: str, col: str) -> sql.Composable:
    return sql.SQL("{}({})").format(sql.SQL(fn), sql.Identifier(col))


class Scan:
    """The aggregates of the suite, deduplicated by what they compute."""

    def __init__(self, not_null: frozenset[str] = frozenset()) -> None:
        self.slots: dict[str, Slot] = {}
        self._names: dict[Any, str] = {}
        self._not_null = not_null

    @property
    def exprs(self) -> dict[str, sql.Composable]:
        return {n: s.expr for n, s in self.slots.items()}

    def slot(self, key: Any, slot: Slot) -> str:
        name = self._names.get(key)
        if name is None:
            name = f"s{len(self._names)}"
            self._names[key] = name
            self.slots[name] = slot
        return name

    def count_all(self) -> str:
        return self.slot(("count",), Slot("count_all", sql.SQL("count(*)")))

    def count(self, col: str) -> str:
        if col in self._not_null:
            # a validated not-null constraint: the same number, one aggregate fewer per row
            # (a primary key column's not-null check, a uniqueness proof's count(r))
            return self.count_all()
        return self.slot(("count", col), Slot("count", sql.SQL("count({})").format(sql.Identifier(col)), (col,)))

    def count_where(self, key: Any, pred: sql.Composable, cols: Sequence[str], *, regex: bool = False,
                    pattern: str | None = None) -> str:
        return self.slot(("count_where", key), Slot("count_where", sql.SQL("count(*) filter (where {})").format(pred),
                                                     tuple(cols), pred=pred, regex=regex, pattern=pattern))

    def agg(self, fn: str, col: str) -> str:
        return self.slot((fn, col), Slot("agg", agg_expr(fn, col), (col,), fn=fn))

    def same(self, col: str) -> str:
        # compared by PostgreSQL, not in Python: its own equality (1.0 = 1.00, a collation's
        # rules), and no value to convert (psycopg cannot load an 'infinity' date)
        return self.slot(("same", col), Slot("same", sql.SQL("{0} = {1}").format(agg_expr("min", col),
                                                                                 agg_expr("max", col)), (col,)))

    def distinct(self, key: Any, expr: sql.Composable, cols: Sequence[str]) -> str:
        return self.slot(("distinct", key), Slot("distinct", expr, tuple(cols)))


@dataclass
class Check:
    index: int
    spec: ExpectationSpec
    slots: list[str]
    evaluate: Callable[[dict[str, Any], Callable[[sql.Composable], list]], RawResult]


@dataclass
class Plan:
    """A compiled suite.

    :param checks: the compiled checks, evaluated from the statements' values
    :param static: results decided from the catalogue alone (existence, types, errors)
    :param unsupported: indexes of expectations for another engine
    :param group_keys: columns the scan groups by first (see :meth:`scan`); empty: none
    """

    table: TableInfo
    where: str | None
    checks: list[Check]
    static: dict[int, RawResult] = field(default_factory=dict)
    unsupported: list[int] = field(default_factory=list)
    slots: dict[str, Slot] = field(default_factory=dict, repr=False)
    group_keys: tuple[str, ...] = ()

    @property
    def _exprs(self) -> dict[str, sql.Composable]:
        return {n: s.expr for n, s in self.slots.items()}

    @property
    def scan(self) -> sql.Composable | None:
        """The one aggregate statement over the table (None when no check needs the data).

        With :attr:`group_keys`, the rows are first grouped by those (low-cardinality)
        columns, each predicate on them is evaluated once per group instead of once per
        row, and the per-group aggregates are added up: a regular expression on a status
        column runs a handful of times instead of millions.
        """
        if not self.checks:
            return None
        slots = {n: s for n, s in self.slots.items() if s.kind != "distinct"}
        if self.group_keys:
            return grouped_select_sql(self.table, self.where, slots, self.group_keys)
        return select_sql(self.table, self.where, {n: s.expr for n, s in slots.items()})

    @property
    def distinct(self) -> sql.Composable | None:
        """The distinct counts of the uniqueness checks, in a statement of their own (None
        when there are none).

        A distinct count sorts the column and cannot run in a parallel plan; inside the
        scan it would make the whole scan serial. On its own it runs beside the scan, on a
        second connection in the same snapshot (:func:`execute_plan`).
        """
        slots = {n: s.expr for n, s in self.slots.items() if s.kind == "distinct"}
        if not self.checks or not slots:
            return None
        return select_sql(self.table, self.where, slots)

    @property
    def queries(self) -> list[sql.Composable]:
        """The statements that always run (the catalogue read aside): the scan, and the
        distinct counts when uniqueness is not proven by an index."""
        return [q for q in (self.scan, self.distinct) if q is not None]

    def scan_for(self, names: Sequence[str]) -> sql.Composable:
        """A scan computing only ``names`` (used to isolate a check whose SQL fails)."""
        return select_sql(self.table, self.where, {n: self.slots[n].expr for n in names})

    def group_candidates(self) -> dict[str, bool]:
        """Columns worth grouping by: each column a per-row predicate reads on its own
        (in set, not in set, between, regex), with True when a regular expression is among
        them. Only types whose equal values are identical byte for byte qualify: a
        predicate gives the same answer for every row of a group."""
        out: dict[str, bool] = {}
        for s in self.slots.values():
            if s.kind != "count_where" or len(s.cols) != 1:
                continue
            info = self.table.find(s.cols[0])
            if info is None or not groupable_column(info):
                continue
            out[s.cols[0]] = out.get(s.cols[0], False) or s.regex
        return out

    def groupable(self) -> bool:
        """Whether every aggregate can be added up over groups (sum and mean only of
        integer, numeric and floating point columns)."""
        for s in self.slots.values():
            if s.kind == "agg" and s.fn in ("sum", "avg"):
                info = self.table.find(s.cols[0])
                if info is None or info.typname not in _SUMMABLE:
                    return False
        return True

    def grouped(self, keys: Sequence[str]) -> Plan:
        """This plan with its scan grouped by ``keys`` (validated; () for none).

        :raises ValueError: a key is not a groupable column, or an aggregate cannot be
            added up over groups
        """
        keys = tuple(dict.fromkeys(keys))
        if keys:
            cols = {c.name: c for c in self.table.columns}
            bad = [k for k in keys if k not in cols or not groupable_column(cols[k])]
            if bad:
                raise ValueError(f"cannot group by {bad}: not a column of a type whose equal values are identical")
            if not self.groupable():
                raise ValueError("a sum or mean of a column that is not integer, numeric or floating point")
        return dataclasses.replace(self, group_keys=keys)


# types whose equal values are identical, so any predicate agrees on a group's rows (not
# citext, not a nondeterministic collation, not a bare bpchar, where 'a' = 'a  ')
_GROUPABLE = frozenset({"int2", "int4", "int8", "numeric", "float4", "float8", "text", "varchar", "bpchar", "date",
                        "timestamp", "timestamptz", "bool", "uuid"})


_SUMMABLE = frozenset({"int2", "int4", "int8", "numeric", "float4", "float8"})


def groupable_column(info: ColumnInfo) -> bool:
    return info.typname in _GROUPABLE and info.deterministic and info.type != "bpchar"


def from_where(table: TableInfo, where: str | None, *extra: sql.Composable) -> sql.Composable:
    preds = ([sql.SQL("({})").format(sql.SQL(where))] if where else []) + list(extra)
    if not preds:
        return sql.SQL("from {}").format(table.ident)
    return sql.SQL("from {} where {}").format(table.ident, sql.SQL(" and ").join(preds))


def select_sql(table: TableInfo, where: str | None, exprs: dict[str, sql.Composable]) -> sql.Composable:
    cols = sql.SQL(", ").join(sql.SQL("{} as {}").format(e, sql.Identifier(n)) for n, e in exprs.items())
    return sql.SQL("select {} {}").format(cols, from_where(table, where))


def grouped_select_sql(table: TableInfo, where: str | None, slots: dict[str, Slot],
                    keys: Sequence[str]) -> sql.Composable:
    """The scan as an aggregate of per-group aggregates.

    Every slot gives the value it gives over rows: counts and per-group counts add up
    (``coalesce(..., 0)``: no groups is no rows), min and max of minima and maxima,
    sums of sums (cast back to ``bigint`` for integer columns, as ``sum`` gives), means
    as ``sum / count`` (which is how PostgreSQL's ``avg`` computes them; float4 is summed
    as float8, as ``avg`` does). A predicate that reads key columns only is evaluated
    per group and weighted by the group's row count.
    """
    prefix = "_g"
    while any(k.startswith(prefix) for k in keys):
        prefix += "_"
    keyset = set(keys)
    n_rows = sql.Identifier(prefix + "n")
    inner: dict[str, sql.Composable] = {prefix + "n": sql.SQL("count(*)")}
    outer: dict[str, sql.Composable] = {}

    def add_inner(expr: sql.Composable) -> sql.Identifier:
        for name, e in inner.items():
            if e == expr:  # e.g. count(c) of a not-null check and of a mean's
                return sql.Identifier(name)
        name = f"{prefix}{len(inner)}"
        inner[name] = expr
        return sql.Identifier(name)

    def total(expr: sql.Composable) -> sql.Composable:
        return sql.SQL("coalesce(sum({}), 0)::bigint").format(expr)

    for name, s in slots.items():
        if s.kind == "count_all":
            outer[name] = total(n_rows)
        elif s.kind == "count" and s.cols[0] in keyset:
            outer[name] = sql.SQL("coalesce(sum({}) filter (where {} is not null), 0)::bigint").format(
                n_rows, sql.Identifier(s.cols[0]))
        elif s.kind == "count_where" and set(s.cols) <= keyset:
            outer[name] = sql.SQL("coalesce(sum({}) filter (where {}), 0)::bigint").format(n_rows, s.pred)
        elif s.kind in ("count", "count_where"):
            outer[name] = total(add_inner(s.expr))
        elif s.kind == "agg" and s.fn in ("min", "max"):
            outer[name] = sql.SQL("{}({})").format(sql.SQL(s.fn), add_inner(s.expr))
        elif s.kind == "same":  # the minimum of the groups' minima against the maximum of their maxima
            outer[name] = sql.SQL("min({}) = max({})").format(add_inner(agg_expr("min", s.cols[0])),
                                                              add_inner(agg_expr("max", s.cols[0])))
        elif s.kind == "agg":
            col = sql.Identifier(s.cols[0])
            typname = table.find(s.cols[0]).typname
            if s.fn == "sum":
                total_sum = sql.SQL("sum({})").format(add_inner(s.expr))
                outer[name] = sql.SQL("{}::bigint").format(total_sum) if typname in ("int2", "int4") else total_sum
            else:  # avg
                floating = typname in ("float4", "float8")
                # built as Scan builds them, so that equal aggregates are computed once
                part = add_inner(sql.SQL("sum({}::float8)").format(col) if floating else
                                 sql.SQL("{}({})").format(sql.SQL("sum"), col))
                cnt = add_inner(sql.SQL("count({})").format(col))
                outer[name] = sql.SQL("sum({}) / nullif(sum({}), 0)::{}").format(
                    part, cnt, sql.SQL("float8" if floating else "numeric"))
        else:
            raise ValueError(f"slot {name} ({s.kind}) cannot be computed over groups")
    idents = sql.SQL(", ").join(sql.Identifier(k) for k in keys)
    inner_cols = sql.SQL(", ").join(sql.SQL("{} as {}").format(e, sql.Identifier(n)) for n, e in inner.items())
    outer_cols = sql.SQL(", ").join(sql.SQL("{} as {}").format(e, sql.Identifier(n)) for n, e in outer.items())
    return sql.SQL("select {} from (select {}, {} {} group by {}) as {}").format(
        outer_cols, idents, inner_cols, from_where(table, where), idents, sql.Identifier(prefix))


#: PostgreSQL (14+) looks a constant ``in`` list up in a hash table from this many
#: elements on, and compares element by element below it
HASHED_IN_LIST = 9


def in_list(values: list) -> sql.Composable:
    """An ``in`` list, with its last value repeated up to :data:`HASHED_IN_LIST` elements
    when it has 2 or more: the same set, looked up by hash instead of up to n comparisons
    per row (measured on PostgreSQL 18, 2M rows: 6 text values 97 -> 78 ms of CPU,
    3 char(3) values 83 -> 50 ms)."""
    if 2 <= len(values) < HASHED_IN_LIST:
        values = values + [values[-1]] * (HASHED_IN_LIST - len(values))
    return sql.SQL(", ").join(sql.Literal(v) for v in values)
