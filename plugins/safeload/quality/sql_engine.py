"""The ``sql`` engine: a suite compiled into one aggregate scan of the table.

Great Expectations computes most of a suite's metrics in bundled queries, but still
issues several statements per expectation (row counts, null counts, unexpected counts,
window queries for uniqueness, samples of unexpected values). This engine compiles
every supported expectation of a suite into **one** ``select count(*), count(a),
count(*) filter (where ...), min(b), ... from t where <partition>`` statement, evaluates
the results in Python with GX's own rules, and reads the catalogue once for column
existence and types. Other statements run only when a check needs them:

- uniqueness not proven by a unique index: the distinct counts run as a statement of their
  own, at the same time as the scan on a second connection in the same snapshot (a
  distinct count cannot run in a parallel plan, and would make the whole scan serial);
  only when there are duplicates does a ``group by`` count the duplicated rows exactly
  as GX does (every row of a repeated value is unexpected). An index proves uniqueness
  when its key columns are among the checked ones, or when its other key columns are
  non-null and constant over the checked rows, which the scan itself tells (a
  partition's primary key ``(order_id, order_date)`` for a check of ``order_id`` on one
  day; see :meth:`TableInfo.unique_given_constant`);
- failed map checks: a ``limit``-ed query fetches a few unexpected values for the report.

Rewrites keep the per-row work down, with the same results: a regular expression that
is a literal with anchors becomes a ``like``; short ``in`` lists are padded to the length
PostgreSQL looks up by hash; a regular expression on an analysed column is matched once
per most common value and looked up per row (:func:`memoize_regexes`); a column with a
validated not-null constraint is counted by ``count(*)``; and when a regular expression
still checks a low-cardinality column (by a small sample when the table has no
statistics), the scan groups the rows by such columns first and evaluates their
predicates once per group (:meth:`Plan.scan`, :func:`choose_group_keys`). See
docs/decisions/007.

Results are GX-shaped dicts (``{"success", "result": {...}, "exception"}``) with the
fields GX reports: ``observed_value`` for aggregate checks; ``element_count``,
``unexpected_count``, ``unexpected_percent``, ``missing_count``... for map checks,
with GX's null handling (nulls leave the denominator of every map check except
``not_null``), its ``mostly`` rule, its results on empty tables and all-null columns.

Expectation types not listed in :data:`SUPPORTED` (or using ``row_condition`` or
suite parameters) are reported as unsupported; :func:`safeload.quality.gate.run_gate`
hands them to the ``gx`` engine. Identifiers go through :class:`psycopg.sql.Identifier`,
values through :class:`psycopg.sql.Literal`; the ``where`` partition filter is SQL
written by the DAG's author and is used as given.

No Airflow and no Great Expectations import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from psycopg import sql

from safeload.gx_types import gx_type_name
from safeload.quality.suite import ExpectationSpec, comparable

if TYPE_CHECKING:
    import psycopg

RawResult = dict[str, Any]

NOT_NULL = "expect_column_values_to_not_be_null"
UNIQUE = "expect_column_values_to_be_unique"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
NOT_IN_SET = "expect_column_values_to_not_be_in_set"
REGEX = "expect_column_values_to_match_regex"
MIN = "expect_column_min_to_be_between"
MAX = "expect_column_max_to_be_between"
MEAN = "expect_column_mean_to_be_between"
SUM = "expect_column_sum_to_be_between"
ROW_COUNT = "expect_table_row_count_to_be_between"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"
EXISTS = "expect_column_to_exist"
OF_TYPE = "expect_column_values_to_be_of_type"

#: The expectation types this engine evaluates itself.
SUPPORTED = frozenset({NOT_NULL, UNIQUE, BETWEEN, IN_SET, NOT_IN_SET, REGEX, MIN, MAX, MEAN, SUM, ROW_COUNT,
                       COMPOUND_UNIQUE, EXISTS, OF_TYPE})
_AGG_FN = {MIN: "min", MAX: "max", MEAN: "avg", SUM: "sum"}
_CONDITION_TYPES = (BETWEEN, IN_SET, NOT_IN_SET, REGEX)


# --------------------------------------------------------------------------- catalogue

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


# --------------------------------------------------------------------------- results

def _error(message: str) -> RawResult:
    return {"success": False, "result": {}, "exception": message}


def _plain(value: Any) -> Any:
    """A database value as GX reports it: decimals as floats, NaN as None."""
    if isinstance(value, Decimal):
        if value.is_nan():
            return None
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _mostly(considered: int, unexpected: int, mostly: float) -> bool:
    # GX's _mostly_success, float for float
    return (float(considered) - float(unexpected)) / float(considered) >= mostly


def map_result(*, element_count: int, nonnull_count: int | None, unexpected_count: int | None,
               mostly: float, samples: list | None = None) -> RawResult:
    """GX's result of a map expectation (``ColumnMapExpectation._validate`` and
    ``_format_map_output``, BASIC format).

    :param element_count: rows in the table (or partition)
    :param nonnull_count: rows considered (non-null values; for compound uniqueness, rows
        ``ignore_row_if`` keeps); None means every row (``not_null``), and GX then reports
        no ``missing_*`` fields
    :param unexpected_count: unexpected rows; None when GX's SQL sum had no rows to add
    :param mostly: the fraction of considered rows that must be expected
    :param samples: unexpected values to report, or None
    """
    n, u = element_count, unexpected_count
    considered = n if nonnull_count is None else nonnull_count
    if u is None or n == 0 or considered == 0:
        success = True  # vacuously
    else:
        success = _mostly(considered, u, mostly)
    result: dict[str, Any] = {"element_count": n, "unexpected_count": u, "unexpected_percent": None}
    missing_percent = pct_total = pct_nonmissing = None
    if u is not None and n > 0:
        pct_total = u / n * 100
        if nonnull_count is None:
            pct_nonmissing = pct_total
        else:
            missing_percent = (n - nonnull_count) / n * 100
            pct_nonmissing = u / nonnull_count * 100 if nonnull_count > 0 else None
    result["unexpected_percent"] = pct_nonmissing
    if samples is not None:
        result["partial_unexpected_list"] = samples
    if nonnull_count is not None:
        result.update(missing_count=n - nonnull_count, missing_percent=missing_percent,
                      unexpected_percent_total=pct_total, unexpected_percent_nonmissing=pct_nonmissing)
    return {"success": success, "result": result, "exception": None}


def metric_between(value: Any, kwargs: dict[str, Any], *, integer_bounds: bool = False) -> RawResult:
    """GX's ``_validate_metric_value_between`` for an observed metric value.

    A missing metric (empty table, all nulls, NaN) fails with ``observed_value`` None.
    Bounds are coerced as GX's pydantic fields coerce them (numbers to float, ISO
    strings to dates); comparing incomparable values (a date with a number) is an error,
    as in GX.

    :param value: the metric (min, max, mean, sum or row count)
    :param kwargs: the expectation's ``min_value``, ``max_value``, ``strict_min``, ``strict_max``
    :param integer_bounds: coerce bounds to int, as GX's row count expectation does
    """
    value = _plain(value)
    if value is None:
        return {"success": False, "result": {"observed_value": None}, "exception": None}

    def bound(v):
        if integer_bounds and isinstance(v, (int, float)) and not isinstance(v, bool):
            return int(v)  # row count bounds are pydantic ints in GX (5.5 -> 5)
        return comparable(v)

    lo, hi = bound(kwargs.get("min_value")), bound(kwargs.get("max_value"))
    try:
        above = True if lo is None else (value > lo if kwargs.get("strict_min") else value >= lo)
        below = True if hi is None else (value < hi if kwargs.get("strict_max") else value <= hi)
    except TypeError:
        return {"success": False, "result": {"observed_value": value},
                "exception": f"cannot compare the observed {type(value).__name__} {value!r} with the bounds "
                             f"{kwargs.get('min_value')!r}..{kwargs.get('max_value')!r}; give bounds of the "
                             "column's kind (numbers, or ISO dates for date columns)"}
    return {"success": bool(above and below), "result": {"observed_value": value}, "exception": None}


# --------------------------------------------------------------------------- compilation

@dataclass(frozen=True)
class _Slot:
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


def _agg_expr(fn: str, col: str) -> sql.Composable:
    return sql.SQL("{}({})").format(sql.SQL(fn), sql.Identifier(col))


class _Scan:
    """The aggregates of the suite, deduplicated by what they compute."""

    def __init__(self, not_null: frozenset[str] = frozenset()) -> None:
        self.slots: dict[str, _Slot] = {}
        self._names: dict[Any, str] = {}
        self._not_null = not_null

    @property
    def exprs(self) -> dict[str, sql.Composable]:
        return {n: s.expr for n, s in self.slots.items()}

    def slot(self, key: Any, slot: _Slot) -> str:
        name = self._names.get(key)
        if name is None:
            name = f"s{len(self._names)}"
            self._names[key] = name
            self.slots[name] = slot
        return name

    def count_all(self) -> str:
        return self.slot(("count",), _Slot("count_all", sql.SQL("count(*)")))

    def count(self, col: str) -> str:
        if col in self._not_null:
            # a validated not-null constraint: the same number, one aggregate fewer per row
            # (a primary key column's not-null check, a uniqueness proof's count(r))
            return self.count_all()
        return self.slot(("count", col), _Slot("count", sql.SQL("count({})").format(sql.Identifier(col)), (col,)))

    def count_where(self, key: Any, pred: sql.Composable, cols: Sequence[str], *, regex: bool = False,
                    pattern: str | None = None) -> str:
        return self.slot(("count_where", key), _Slot("count_where", sql.SQL("count(*) filter (where {})").format(pred),
                                                     tuple(cols), pred=pred, regex=regex, pattern=pattern))

    def agg(self, fn: str, col: str) -> str:
        return self.slot((fn, col), _Slot("agg", _agg_expr(fn, col), (col,), fn=fn))

    def same(self, col: str) -> str:
        # compared by PostgreSQL, not in Python: its own equality (1.0 = 1.00, a collation's
        # rules), and no value to convert (psycopg cannot load an 'infinity' date)
        return self.slot(("same", col), _Slot("same", sql.SQL("{0} = {1}").format(_agg_expr("min", col),
                                                                                 _agg_expr("max", col)), (col,)))

    def distinct(self, key: Any, expr: sql.Composable, cols: Sequence[str]) -> str:
        return self.slot(("distinct", key), _Slot("distinct", expr, tuple(cols)))


@dataclass
class _Check:
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
    checks: list[_Check]
    static: dict[int, RawResult] = field(default_factory=dict)
    unsupported: list[int] = field(default_factory=list)
    slots: dict[str, _Slot] = field(default_factory=dict, repr=False)
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
            return _grouped_select(self.table, self.where, slots, self.group_keys)
        return _select(self.table, self.where, {n: s.expr for n, s in slots.items()})

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
        return _select(self.table, self.where, slots)

    @property
    def queries(self) -> list[sql.Composable]:
        """The statements that always run (the catalogue read aside): the scan, and the
        distinct counts when uniqueness is not proven by an index."""
        return [q for q in (self.scan, self.distinct) if q is not None]

    def scan_for(self, names: Sequence[str]) -> sql.Composable:
        """A scan computing only ``names`` (used to isolate a check whose SQL fails)."""
        return _select(self.table, self.where, {n: self.slots[n].expr for n in names})

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
            if info is None or not _groupable(info):
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
            bad = [k for k in keys if k not in cols or not _groupable(cols[k])]
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


def _groupable(info: ColumnInfo) -> bool:
    return info.typname in _GROUPABLE and info.deterministic and info.type != "bpchar"


def _from_where(table: TableInfo, where: str | None, *extra: sql.Composable) -> sql.Composable:
    preds = ([sql.SQL("({})").format(sql.SQL(where))] if where else []) + list(extra)
    if not preds:
        return sql.SQL("from {}").format(table.ident)
    return sql.SQL("from {} where {}").format(table.ident, sql.SQL(" and ").join(preds))


def _select(table: TableInfo, where: str | None, exprs: dict[str, sql.Composable]) -> sql.Composable:
    cols = sql.SQL(", ").join(sql.SQL("{} as {}").format(e, sql.Identifier(n)) for n, e in exprs.items())
    return sql.SQL("select {} {}").format(cols, _from_where(table, where))


def _grouped_select(table: TableInfo, where: str | None, slots: dict[str, _Slot],
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
            outer[name] = sql.SQL("min({}) = max({})").format(add_inner(_agg_expr("min", s.cols[0])),
                                                              add_inner(_agg_expr("max", s.cols[0])))
        elif s.kind == "agg":
            col = sql.Identifier(s.cols[0])
            typname = table.find(s.cols[0]).typname
            if s.fn == "sum":
                total_sum = sql.SQL("sum({})").format(add_inner(s.expr))
                outer[name] = sql.SQL("{}::bigint").format(total_sum) if typname in ("int2", "int4") else total_sum
            else:  # avg
                floating = typname in ("float4", "float8")
                # built as _Scan builds them, so that equal aggregates are computed once
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
        outer_cols, idents, inner_cols, _from_where(table, where), idents, sql.Identifier(prefix))


def _is_param(v: Any) -> bool:
    return isinstance(v, dict) and "$PARAMETER" in v


def unsupported_reason(spec: ExpectationSpec) -> str | None:
    """Why the ``sql`` engine hands ``spec`` to GX, or None when it evaluates it.

    :param spec: the expectation
    """
    if spec.type not in SUPPORTED:
        return f"{spec.type} is not one of the sql engine's types"
    if spec.kwargs.get("row_condition"):
        return "row_condition is evaluated by GX's condition parser"
    if any(_is_param(v) for v in spec.kwargs.values()):
        return "suite parameters ($PARAMETER) are resolved by GX"
    if isinstance(spec.kwargs.get("value_set"), list) and any(_is_param(v) for v in spec.kwargs["value_set"]):
        return "suite parameters ($PARAMETER) are resolved by GX"
    return None


def _missing_column(name: str, table: TableInfo) -> RawResult:
    cols = ", ".join(c.name for c in table.columns[:30]) or "(none)"
    return _error(f"column {name!r} does not exist in {table.name}; its columns are: {cols}")


def _literal(value: Any) -> sql.Composable:
    return sql.Literal(value)


_INT_TYPES = ("int2", "int4", "int8")


def _bound_literal(value: Any, info: ColumnInfo | None) -> sql.Composable:
    # GX's bounds are floats (5 -> 5.0), and "int_col >= 5.0" casts every row to numeric;
    # against an integer column an integral bound means the same as an integer literal
    if (info is not None and info.typname in _INT_TYPES and isinstance(value, float) and value.is_integer()
            and abs(value) < 2**53):
        return sql.Literal(int(value))
    return _literal(value)


def _condition(spec: ExpectationSpec, col: sql.Identifier, info: ColumnInfo | None = None) -> sql.Composable | bool:
    """The expected condition of a map check: SQL, or True/False when constant (GX's
    vacuous cases: ``value_set`` None or empty)."""
    kw = spec.kwargs
    if spec.type == BETWEEN:
        lo, hi = comparable(kw.get("min_value")), comparable(kw.get("max_value"))
        parts = []
        if lo is not None:
            parts.append(sql.SQL("{} {} {}").format(col, sql.SQL(">" if kw.get("strict_min") else ">="),
                                                    _bound_literal(lo, info)))
        if hi is not None:
            parts.append(sql.SQL("{} {} {}").format(col, sql.SQL("<" if kw.get("strict_max") else "<="),
                                                    _bound_literal(hi, info)))
        return sql.SQL(" and ").join(parts)
    if spec.type == REGEX:
        like = regex_as_like(kw["regex"])
        if like is not None and (info is None or info.deterministic):
            # the same match as "~" for a literal pattern, several times cheaper per row
            return sql.SQL("{} like {}").format(col, _literal(like))
        return sql.SQL("{} ~ {}").format(col, _literal(kw["regex"]))
    values = kw.get("value_set")
    if spec.type == IN_SET:
        if values is None:
            return True
        # NULL in the set can match nothing (rows with NULL are not considered); GX drops it
        values = [v for v in values if v is not None]
        if not values:
            return False
        return sql.SQL("{} in ({})").format(col, _in_list(values))
    # NOT_IN_SET: GX counts NOT (c NOT IN (set)), i.e. c IN (the set's non-NULL values)
    if not values:
        return True
    values = [v for v in values if v is not None]
    if not values:
        return True
    return sql.SQL("not ({} in ({}))").format(col, _in_list(values))


#: PostgreSQL (14+) looks a constant ``in`` list up in a hash table from this many
#: elements on, and compares element by element below it
_HASHED_IN_LIST = 9


def _in_list(values: list) -> sql.Composable:
    """An ``in`` list, with its last value repeated up to :data:`_HASHED_IN_LIST` elements
    when it has 2 or more: the same set, looked up by hash instead of up to n comparisons
    per row (measured on PostgreSQL 18, 2M rows: 6 text values 97 -> 78 ms of CPU,
    3 char(3) values 83 -> 50 ms)."""
    if 2 <= len(values) < _HASHED_IN_LIST:
        values = values + [values[-1]] * (_HASHED_IN_LIST - len(values))
    return sql.SQL(", ").join(_literal(v) for v in values)


_RE_META = frozenset(".[](){}*+?|^$\\")


def regex_as_like(regex: str) -> str | None:
    r"""The LIKE pattern matching exactly what the regular expression ``regex`` matches
    with PostgreSQL's ``~``, when ``regex`` is a literal with optional anchors
    (``^INV-``, ``\.csv$``, ``@``); None for any other regular expression.

    PostgreSQL's ``^`` and ``$`` anchor at the start and end of the string (newlines are
    ordinary characters unless the pattern sets an option, which this refuses), and a
    backslash before a punctuation character makes it literal. LIKE compares the same
    characters, case-sensitively, without the regular expression machinery. Only for
    columns with a deterministic collation (the caller's test): there LIKE compares bytes.

    :param regex: the expectation's regular expression

    >>> regex_as_like("^INV-"), regex_as_like("\\.csv$"), regex_as_like("50%"), regex_as_like("^[A-Z]{3}$")
    ('INV-%', '%.csv', '%50\\%%', None)
    """
    chars: list[str] = []
    start = end = False
    i = 0
    while i < len(regex):
        c = regex[i]
        if c == "\\":
            if i + 1 >= len(regex) or not (regex[i + 1] in _RE_META or regex[i + 1] in "-/#%&'\"!,;:<>=@~`_ "):
                return None  # \d, \w, \m... are classes and constraints, not characters
            chars.append(regex[i + 1])
            i += 2
            continue
        if c == "^" and i == 0:
            start = True
        elif c == "$" and i == len(regex) - 1:
            end = True
        elif c in _RE_META:
            return None
        else:
            chars.append(c)
        i += 1
    body = "".join(chars).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return ("" if start else "%") + body + ("" if end else "%")


def _type_error(spec: ExpectationSpec, col: ColumnInfo) -> str | None:
    """Errors GX (or PostgreSQL) would raise for this column's type, found before the scan
    so that one bad check cannot take the others' scan down."""
    gx_type = col.gx_type
    if spec.type == BETWEEN and col.category in ("S", "B"):
        return (f"ColumnValuesBetween metrics cannot be computed on column of type {gx_type} (column {col.name!r}); "
                "use expect_column_values_to_be_in_set or _match_regex for text columns")
    if spec.type == REGEX and col.category != "S":
        return (f"column {col.name!r} is {gx_type}; regular expressions apply to text columns only "
                "(cast it in a view, or use expect_column_values_to_be_between)")
    if spec.type in (MEAN, SUM) and col.category not in ("N", "T"):
        return f"column {col.name!r} is {gx_type}; {spec.type} needs a numeric column"
    if spec.type in (MIN, MAX) and (col.category in ("B", "A") or col.typname in ("json", "xml", "point")):
        return f"column {col.name!r} is {gx_type}, which has no min/max; {spec.type} needs an ordered type"
    if spec.type in (UNIQUE, COMPOUND_UNIQUE) and col.typname in ("json", "xml", "point"):
        return f"column {col.name!r} is {gx_type}, which has no equality operator; it cannot be checked for uniqueness"
    return None


def compile_plan(specs: Sequence[ExpectationSpec], table: TableInfo, where: str | None = None, *,
                 sample_size: int = 5) -> Plan:
    """Compile the supported expectations into one scan. Pure: no database access.

    :param specs: the suite's expectations (their positions are the result indexes)
    :param table: the table's catalogue information (:func:`read_table_info`)
    :param where: a SQL predicate selecting the partition, or None
    :param sample_size: unexpected values fetched for each failed map check (0: none)
    """
    scan = _Scan(frozenset(c.name for c in table.columns if c.not_null))
    checks: list[_Check] = []
    static: dict[int, RawResult] = {}
    unsupported: list[int] = []
    for i, spec in enumerate(specs):
        if unsupported_reason(spec):
            unsupported.append(i)
            continue
        kw = spec.kwargs
        if spec.type == EXISTS:
            static[i] = _exists(kw, table)
            continue
        if spec.type == ROW_COUNT:
            n = scan.count_all()
            checks.append(_Check(i, spec, [n], lambda v, q, n=n, kw=kw: metric_between(v[n], kw, integer_bounds=True)))
            continue
        names = spec.columns
        infos = [table.find(c) for c in names]
        missing = [c for c, info in zip(names, infos) if info is None]
        if missing:
            static[i] = _missing_column(missing[0], table)
            continue
        errors = [e for e in (_type_error(spec, info) for info in infos) if e]
        if errors:
            static[i] = _error(errors[0])
            continue
        if spec.type == OF_TYPE:
            static[i] = _of_type(kw, infos[0])
            continue
        real = [info.name for info in infos]  # the catalogue's spelling
        if spec.type == COMPOUND_UNIQUE:
            checks.append(_compile_compound(i, spec, real, scan, table, where, sample_size))
        elif spec.type == UNIQUE:
            checks.append(_compile_unique(i, spec, real[0], scan, table, where, sample_size))
        elif spec.type == NOT_NULL:
            n, nn = scan.count_all(), scan.count(real[0])
            mostly = kw.get("mostly", 1)

            def ev(v, q, n=n, nn=nn, mostly=mostly):
                u = None if v[n] == 0 else v[n] - v[nn]
                return map_result(element_count=v[n], nonnull_count=None, unexpected_count=u, mostly=mostly)

            checks.append(_Check(i, spec, [n, nn], ev))
        elif spec.type in _CONDITION_TYPES:
            checks.append(_compile_condition(i, spec, real[0], scan, table, where, sample_size))
        else:  # MIN, MAX, MEAN, SUM
            s = scan.agg(_AGG_FN[spec.type], real[0])
            checks.append(_Check(i, spec, [s], lambda v, q, s=s, kw=kw: metric_between(v[s], kw)))
    return Plan(table=table, where=where, checks=checks, static=static, unsupported=unsupported,
                slots=dict(scan.slots))


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


def _not_null_all(cols: Sequence[str]) -> sql.Composable:
    return sql.SQL(" and ").join(sql.SQL("{} is not null").format(sql.Identifier(c)) for c in cols)


def _compile_condition(i: int, spec: ExpectationSpec, col: str, scan: _Scan, table: TableInfo,
                       where: str | None, sample_size: int) -> _Check:
    ident = sql.Identifier(col)
    cond = _condition(spec, ident, table.find(col))
    n, nn = scan.count_all(), scan.count(col)
    if cond is True:
        u_slot = None  # nothing is unexpected
        unexpected_pred = None
    elif cond is False:
        u_slot = nn  # every non-null value is unexpected
        unexpected_pred = sql.SQL("{} is not null").format(ident)
    else:
        unexpected_pred = sql.SQL("{} is not null and not ({})").format(ident, cond)
        key = (spec.type, col, repr(sorted(spec.kwargs.items(), key=lambda kv: kv[0])))
        # GX's "c is not null and not (cond)": every cond here (comparisons, in, ~, like) is
        # NULL for a NULL c, and filter counts only true, so the null test is redundant work
        regex = spec.type == REGEX and regex_as_like(spec.kwargs["regex"]) is None
        u_slot = scan.count_where(key, sql.SQL("not ({})").format(cond), [col], regex=regex,
                                  pattern=spec.kwargs["regex"] if regex else None)
    mostly = spec.kwargs.get("mostly", 1)
    sample_q = None
    if unexpected_pred is not None and sample_size > 0:
        sample_q = sql.SQL("select {} {} limit {}").format(
            ident, _from_where(table, where, unexpected_pred), sql.Literal(sample_size))

    def ev(v, q):
        if v[n] == 0:
            u = None
        else:
            u = 0 if u_slot is None else v[u_slot]
        res = map_result(element_count=v[n], nonnull_count=v[nn], unexpected_count=u, mostly=mostly)
        if not res["success"] and sample_q is not None:
            res["result"]["partial_unexpected_list"] = [_plain(r[0]) for r in q(sample_q)]
        return res

    return _Check(i, spec, [s for s in (n, nn, u_slot) if s], ev)


def _duplicate_rows(table: TableInfo, where: str | None, cols: Sequence[str]) -> sql.Composable:
    """Rows whose (non-null) value occurs more than once: GX's unexpected count for uniqueness."""
    idents = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    return sql.SQL("select coalesce(sum(k), 0)::bigint from (select count(*) as k {} group by {} "
                   "having count(*) > 1) as dup").format(_from_where(table, where, _not_null_all(cols)), idents)


def _duplicate_samples(table: TableInfo, where: str | None, cols: Sequence[str], limit: int) -> sql.Composable:
    idents = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    return sql.SQL("select {} {} group by {} having count(*) > 1 limit {}").format(
        idents, _from_where(table, where, _not_null_all(cols)), idents, sql.Literal(limit))


@dataclass(frozen=True)
class _ConstantProof:
    """The scan's slots that tell whether the columns R of
    :meth:`TableInfo.unique_given_constant` are non-null and constant over the checked
    rows: then those rows are unique on the checked columns, without a distinct count."""

    n: str
    slots: tuple[tuple[str, str], ...]  # (count(r), min(r) = max(r)) per column r

    @classmethod
    def add(cls, scan: _Scan, rest: Sequence[str]) -> _ConstantProof:
        return cls(scan.count_all(), tuple((scan.count(r), scan.same(r)) for r in rest))

    @property
    def names(self) -> list[str]:
        return [self.n] + [x for pair in self.slots for x in pair]

    def holds(self, v: dict[str, Any]) -> bool:
        # "is True": on no rows min = max is null, and the caller has nothing to prove then
        return all(v[c] == v[self.n] and v[same] is True for c, same in self.slots)


def _compile_unique(i: int, spec: ExpectationSpec, col: str, scan: _Scan, table: TableInfo,
                    where: str | None, sample_size: int) -> _Check:
    n, nn = scan.count_all(), scan.count(col)
    mostly = spec.kwargs.get("mostly", 1)
    if table.proven_unique([col]):  # a unique index: no duplicates, nothing to count
        return _Check(i, spec, [n, nn], lambda v, q: map_result(
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
            res["result"]["partial_unexpected_list"] = [_plain(r[0]) for r in q(sample_q)]
        return res

    return _Check(i, spec, list(dict.fromkeys([n, nn, nd] if proof is None else [n, nn, *proof.names])), ev)


def _compile_compound(i: int, spec: ExpectationSpec, cols: list[str], scan: _Scan, table: TableInfo,
                      where: str | None, sample_size: int) -> _Check:
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
                {c: _plain(x) for c, x in zip(cols, r)} for r in q(sample_q)]
        return res

    slots = [n, all_nn, nd, considered] + (proof.names if proof else [])
    return _Check(i, spec, [x for x in dict.fromkeys(slots) if x], ev)


# --------------------------------------------------------------------------- execution

#: groups the grouped scan may make at most (by the estimates), so that its hash table
#: stays small; a wrong estimate costs time (the hash spills to disk), never correctness
MAX_GROUPS = 1000
#: tables smaller than this (pages of 8 kB) are scanned row by row: grouping would save
#: milliseconds, and the cardinality probe costs some
GROUP_MIN_PAGES = 1000
#: pages the cardinality probe samples when the table has no statistics
PROBE_PAGES = 64


def estimate_cardinality(conn: psycopg.Connection, table: TableInfo, where: str | None,
                         cols: Sequence[str]) -> dict[str, float]:
    """Estimated distinct values of ``cols``: from ``pg_stats`` when the table has been
    analysed, else from a sample of about :data:`PROBE_PAGES` pages (``tablesample
    system``, repeatable); a column the sample shows fewer than 20 rows per value for is
    left out (too many values to group by). Empty for tables under
    :data:`GROUP_MIN_PAGES` pages.

    :param conn: a psycopg connection
    :param table: from :func:`read_table_info`
    :param where: the partition filter, or None
    :param cols: the candidate columns
    """
    if not cols or table.pages < GROUP_MIN_PAGES:
        return {}
    infos = [table.find(c) for c in cols]
    if table.rows and all(i is not None and i.n_distinct for i in infos):
        return {i.name: (i.n_distinct if i.n_distinct > 0 else -i.n_distinct * table.rows) for i in infos}
    pct = min(100.0, 100.0 * PROBE_PAGES / table.pages)
    exprs = [sql.SQL("count(distinct {})").format(sql.Identifier(c)) for c in cols]
    query = sql.SQL("select count(*), {} from {} tablesample system ({}) repeatable (0){}").format(
        sql.SQL(", ").join(exprs), table.ident, sql.Literal(round(pct, 4)),
        sql.SQL(" where ({})").format(sql.SQL(where)) if where else sql.SQL(""))
    import psycopg

    try:
        with conn.transaction():
            row = conn.execute(query).fetchone()
    except psycopg.OperationalError:
        raise
    except psycopg.Error:
        return {}  # grouping only saves time: a sample PostgreSQL refuses means row by row
    sampled, counts = row[0], row[1:]
    if sampled < 20 * 10:
        return {}
    return {c: float(d) for c, d in zip(cols, counts) if d * 20 <= sampled}


def choose_group_keys(candidates: dict[str, bool], cardinality: dict[str, float]) -> tuple[str, ...]:
    """The columns to group the scan by, or () to scan row by row.

    Grouping pays when it replaces a regular expression per row (about 140 ns a row on
    PostgreSQL 18, against 55 ns for hashing a key): it happens when a column with a
    regex check has at most :data:`MAX_GROUPS` values. The other low-cardinality columns
    with per-row checks (sets, ranges) then join the key, as long as the estimated groups
    stay within :data:`MAX_GROUPS` (a second key costs about 30 ns a row, an ``in`` list
    about 45).

    :param candidates: :meth:`Plan.group_candidates`
    :param cardinality: :func:`estimate_cardinality`
    """
    low = {c: d for c, d in cardinality.items() if c in candidates and d <= MAX_GROUPS}
    if not any(candidates[c] for c in low):
        return ()
    keys: list[str] = []
    groups = 1.0
    for c in sorted(low, key=lambda c: (not candidates[c], low[c], c)):
        if groups * max(low[c], 1.0) <= MAX_GROUPS:
            keys.append(c)
            groups *= max(low[c], 1.0)
    return tuple(keys)


def plan_groups(conn: psycopg.Connection, plan: Plan) -> Plan:
    """``plan`` with its scan grouped when that pays (:func:`choose_group_keys`)."""
    candidates = plan.group_candidates()
    if not any(candidates.values()) or not plan.groupable():
        return plan  # no regex to save: no grouping, and no need to estimate anything
    keys = choose_group_keys(candidates, estimate_cardinality(conn, plan.table, plan.where, sorted(candidates)))
    return plan.grouped(keys) if keys else plan


#: most common values of a column a regular expression memo may list (the most common
#: first; pg_stats holds up to the column's statistics target, 100 by default)
MEMO_MAX_VALUES = 1000
#: fewest rows (a fraction of the non-null ones, by pg_stats) the most common values must
#: cover for the memo to pay: it adds a hashed lookup per row (about 20 ns on PostgreSQL 18)
#: and saves the regular expression (about 130 ns) for the rows it covers
MEMO_MIN_COVERAGE = 0.2


def memoize_regexes(conn: psycopg.Connection, plan: Plan) -> Plan:
    """``plan`` with each regular expression on an analysed column evaluated once per
    most common value of the column (``pg_stats.most_common_vals``), in a small statement
    before the scan; the scan then looks a row's value up in those values instead of
    matching it::

        case when c in (<values that match>) then true
             when c in (<values that do not>) then false
             else c ~ <regex> end

    Exact whatever the statistics say: a value outside the lists (a rare one, one added
    since the last ``analyze``) still runs the regular expression, a null gives null as
    ``c ~ <regex>`` does, and the values are matched by PostgreSQL itself, as the column's
    type (``char(n)`` padded as stored) under the column's collation. Statistics only decide
    whether it pays (the values cover :data:`MEMO_MIN_COVERAGE` of the rows). Only columns
    whose equal values are identical (deterministic collation, no bare ``bpchar``), so that
    a value found in a list is the value that was matched. The lists are ``in`` lists
    padded as :func:`_in_list` pads them, so PostgreSQL looks them up by hash. The scan no
    longer needs grouping for those expressions (:func:`plan_groups` then groups only for
    regular expressions left). A statement PostgreSQL refuses (an invalid regular
    expression) leaves the plan as it was: the scan reports the error, as before.

    Measured on 2M rows (PostgreSQL 18, CPU of the statement over a plain scan of 196-202
    ms): a regex on a char(3) column of 3 values +257 ms, grouped by that column +88, with
    the memo +43 (unpadded lists +68).

    :param conn: a psycopg connection
    :param plan: from :func:`compile_plan`
    """
    import psycopg

    table = plan.table
    eligible: dict[str, _Slot] = {}
    for name, slot in plan.slots.items():
        if not slot.regex or slot.pattern is None or len(slot.cols) != 1:
            continue
        info = table.find(slot.cols[0])
        # n_distinct: the column has statistics; -1: every value distinct, no common values
        if info is None or not _groupable(info) or info.n_distinct is None or info.n_distinct == -1:
            continue
        eligible[name] = slot
    if not eligible:
        return plan
    parts = []
    for k, (name, slot) in enumerate(eligible.items()):
        info = table.find(slot.cols[0])
        value = sql.SQL("m.v")
        if info.collation:
            value = sql.SQL("(m.v collate {})").format(sql.Identifier(*info.collation))
        parts.append(sql.SQL(
            # m.v as text (one type for the union): char(n) loses its padding, which its
            # equality ignores, so the value still finds the same rows
            "(select {k}, m.v::text, {value} ~ {pattern}, s.coverage"
            " from (select most_common_vals, (select sum(f) from unnest(most_common_freqs) as f)"
            "              / nullif(1 - null_frac, 0) as coverage"
            "       from pg_stats where schemaname = {schema} and tablename = {table} and attname = {col}"
            "       order by inherited limit 1) as s,"
            " unnest(s.most_common_vals::text::{type}[]) with ordinality as m(v, i)"
            " where m.i <= {limit} order by m.i)").format(
            k=sql.Literal(k), value=value, pattern=sql.Literal(slot.pattern), schema=sql.Literal(table.schema),
            table=sql.Literal(table.table), col=sql.Literal(info.name), type=sql.SQL(info.type),
            limit=sql.Literal(MEMO_MAX_VALUES)))
    try:
        with conn.transaction():
            rows = conn.execute(sql.SQL(" union all ").join(parts)).fetchall()
    except psycopg.OperationalError:
        raise
    except psycopg.Error:
        return plan  # an invalid regular expression: the scan reports it per check, as without the memo
    found: dict[int, list[tuple[Any, bool]]] = {}
    for k, v, matched, coverage in rows:
        if coverage is not None and coverage >= MEMO_MIN_COVERAGE:
            found.setdefault(k, []).append((v, matched))
    slots = dict(plan.slots)
    for k, (name, slot) in enumerate(eligible.items()):
        values = found.get(k)
        if not values:
            continue
        col = sql.Identifier(slot.cols[0])
        branches = [sql.SQL("when {} in ({}) then {}").format(col, _in_list(vs), sql.SQL(answer))
                    for vs, answer in (([v for v, m in values if m], "true"), ([v for v, m in values if not m], "false"))
                    if vs]
        memo = sql.SQL("case {} else {} ~ {} end").format(sql.SQL(" ").join(branches), col, _literal(slot.pattern))
        pred = sql.SQL("not ({})").format(memo)
        slots[name] = dataclasses.replace(slot, expr=sql.SQL("count(*) filter (where {})").format(pred), pred=pred,
                                          regex=False, memo=len(values))
    return dataclasses.replace(plan, slots=slots)


def execute_plan(conn: psycopg.Connection, plan: Plan, *, work_mem: str | None = None,
                 connect: Callable[[], psycopg.Connection] | None = None) -> dict[int, RawResult]:
    """Run a compiled plan; return a GX-shaped result per supported expectation index.

    :param conn: a psycopg connection (idle: a transaction is opened; in a transaction:
        savepoints are used)
    :param plan: from :func:`compile_plan`
    :param work_mem: PostgreSQL's ``work_mem`` for this transaction only (e.g. ``256MB``):
        uniqueness checks sort the column, and a sort that fits in memory is several
        times faster than one that spills to disk; None keeps the server's setting
    :param connect: opens a second connection to the same database: the distinct counts
        of uniqueness checks (:attr:`Plan.distinct`) then run on it at the same time as
        the scan, in the scan's snapshot (exported and imported); None, or ``conn`` in
        the caller's transaction: one after the other on ``conn``

    Everything runs in one read-only snapshot (repeatable read), so the scan and any
    follow-up statement see the same rows. When the scan fails (a value of the wrong
    type in a ``value_set``, an invalid regular expression), each check is run on its
    own, so one bad check reports its error and the others still report results.
    """
    import psycopg

    results: dict[int, RawResult] = dict(plan.static)
    if not plan.checks:
        return results

    def followup(query: sql.Composable) -> list:
        with conn.transaction():  # a savepoint: a failing follow-up fails its check only
            return conn.execute(query).fetchall()

    def evaluate(chk: _Check, values: dict[str, Any]) -> None:
        try:
            results[chk.index] = chk.evaluate(values, followup)
        except psycopg.Error as e:
            results[chk.index] = _error(_pg_message(e, chk.spec))

    values = None
    try:
        with _snapshot(conn, work_mem) as fresh:
            values = _run_statements(conn, plan, work_mem, connect if fresh else None)
            for chk in plan.checks:
                evaluate(chk, values)
        return results
    except psycopg.OperationalError:
        raise  # the connection, not a check
    except psycopg.Error:
        if values is not None:
            raise
    # a statement failed: isolate the check PostgreSQL refuses by running each on its own
    with _snapshot(conn, work_mem):
        for chk in plan.checks:
            try:
                with conn.transaction():
                    v = _fetch(conn, plan.scan_for(chk.slots))
            except psycopg.OperationalError:
                raise
            except psycopg.Error as e:
                results[chk.index] = _error(_pg_message(e, chk.spec))
                continue
            evaluate(chk, v)
    return results


def _fetch(conn: psycopg.Connection, query: sql.Composable) -> dict[str, Any]:
    cur = conn.execute(query)
    row = cur.fetchone()
    return {d.name: v for d, v in zip(cur.description, row)}


#: how long the distinct-count statement on the second connection waits for the table's
#: lock before running on the scan's connection instead (see :func:`_run_statements`)
DISTINCT_LOCK_TIMEOUT = "2s"


def _run_statements(conn: psycopg.Connection, plan: Plan, work_mem: str | None,
                    connect: Callable[[], psycopg.Connection] | None) -> dict[str, Any]:
    """The scan's and the distinct counts' values, by slot name: concurrently when a
    second connection can be had, else one after the other."""
    import threading

    import psycopg

    if plan.distinct is None:
        return _fetch(conn, plan.scan)
    other = None
    if connect is not None:
        snapshot = conn.execute("select pg_export_snapshot()").fetchone()[0]
        try:
            other = connect()
        except psycopg.Error:
            other = None  # no second connection (e.g. the server's limit): one after the other
    if other is None:
        values = _fetch(conn, plan.scan)
        values.update(_fetch(conn, plan.distinct))
        return values
    got: dict[str, Any] = {}
    failed: list[BaseException] = []

    def distinct() -> None:
        try:
            other.isolation_level, other.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
            with other.transaction():
                other.execute(sql.SQL("set transaction snapshot {}").format(sql.Literal(snapshot)))
                # The scan holds the table's lock. A DDL queued behind it makes this statement
                # queue behind the DDL, which waits for the scan's transaction, which waits for
                # this statement: a cycle through this process that PostgreSQL cannot detect.
                # Give up the wait soon instead; the statement then runs after the scan.
                other.execute("select set_config('lock_timeout', %s, true)", (DISTINCT_LOCK_TIMEOUT,))
                if work_mem:
                    other.execute("select set_config('work_mem', %s, true)", (str(work_mem),))
                got.update(_fetch(other, plan.distinct))
        except BaseException as e:  # re-raised in the caller's thread
            failed.append(e)

    worker = threading.Thread(target=distinct, name="safeload-quality-distinct", daemon=True)
    try:
        worker.start()
        values = _fetch(conn, plan.scan)
    except BaseException:
        # the scan failed (or the task is being stopped): cancel the distinct count rather
        # than wait for its sort, which takes about as long as the scan itself
        with contextlib.suppress(Exception):
            other.cancel_safe(timeout=10)
        raise
    finally:
        worker.join()
        other.close()
    if failed:
        # a lock wait given up, a second connection that dropped or that a pooler could not
        # serve: the scan's connection is fine (and holds the table's lock), so the
        # statement runs there. Any other error is the statement's own (reported per check).
        if not isinstance(failed[0], psycopg.OperationalError):
            raise failed[0]
        got = _fetch(conn, plan.distinct)
    values.update(got)
    return values


@contextlib.contextmanager
def _snapshot(conn: psycopg.Connection, work_mem: str | None) -> Iterator[bool]:
    """One read-only, repeatable-read transaction (a single BEGIN), or, inside the
    caller's transaction, a savepoint. Yields whether the transaction is this one's own."""
    import psycopg

    fresh = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    saved = (conn.isolation_level, conn.read_only)
    if fresh:
        conn.isolation_level, conn.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
    try:
        with conn.transaction():
            if work_mem:
                conn.execute("select set_config('work_mem', %s, true)", (str(work_mem),))
            yield fresh
    finally:
        if fresh and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            conn.isolation_level, conn.read_only = saved


def _pg_message(e: Exception, spec: ExpectationSpec) -> str:
    diag = getattr(e, "diag", None)
    msg = (diag.message_primary if diag is not None and diag.message_primary else str(e)).strip()
    return f"{spec.label()}: PostgreSQL refused the check: {msg}"


def run_sql(conn: psycopg.Connection, *, schema: str, table: str, specs: Sequence[ExpectationSpec],
            where: str | None = None, sample_size: int = 5, work_mem: str | None = None,
            connect: Callable[[], psycopg.Connection] | None = None,
            group_by: Sequence[str] | str = "auto", regex_memo: bool = True,
            ) -> tuple[dict[int, RawResult], list[int]]:
    """Evaluate the supported expectations of ``specs`` on ``schema.table``.

    :param conn: a psycopg connection to the warehouse
    :param schema: the table's schema
    :param table: the table (or view)
    :param specs: the suite's expectations
    :param where: a SQL predicate selecting the partition, or None
    :param sample_size: unexpected values fetched per failed map check (0: none)
    :param work_mem: ``work_mem`` for the transaction, or None (see :func:`execute_plan`)
    :param connect: opens a second connection for the distinct counts (see :func:`execute_plan`)
    :param group_by: ``"auto"`` (group the scan when that pays, :func:`plan_groups`), or
        the columns to group by (``()``: row by row); the results are the same either way
    :param regex_memo: evaluate regular expressions once per most common value of an
        analysed column (:func:`memoize_regexes`); the results are the same either way

    :returns: (results by index, indexes of the expectations left for the gx engine)
    :raises LookupError: when the table does not exist
    """
    with conn.transaction():  # not left open: execute_plan opens its own snapshot on an idle connection
        info = read_table_info(conn, schema, table)
    if info is None:
        raise LookupError(f"table {schema}.{table} does not exist; check the name (schema.table) and the "
                          "connection's database")
    plan = compile_plan(specs, info, where, sample_size=sample_size)
    if regex_memo:
        plan = memoize_regexes(conn, plan)  # before grouping: a memoized regex needs none
    if group_by == "auto":
        plan = plan_groups(conn, plan)
    else:
        plan = plan.grouped([group_by] if isinstance(group_by, str) else group_by)
    return execute_plan(conn, plan, work_mem=work_mem, connect=connect), plan.unsupported
