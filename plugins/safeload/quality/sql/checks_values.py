"""Checks of each value of a column (GX's column map expectations): not null, between,
in a set, not in a set, matching a regular expression. Each counts its unexpected rows
in the scan (``count(*) filter (where not cond)``); a failed one fetches a few
unexpected values for the report. A literal regular expression becomes a ``like``
(:func:`regex_as_like`), and short ``in`` lists are padded to the length PostgreSQL
looks up by hash (:func:`safeload.quality.sql.plan.in_list`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from safeload.quality.sql.catalog import ColumnInfo, TableInfo
from safeload.quality.sql.names import BETWEEN, IN_SET, NOT_IN_SET, NOT_NULL, REGEX
from safeload.quality.sql.plan import Check, Scan, from_where, in_list
from safeload.quality.sql.results import RawResult, map_result, plain
from safeload.quality.suite import ExpectationSpec, comparable

TYPES = frozenset({NOT_NULL, BETWEEN, IN_SET, NOT_IN_SET, REGEX})


def type_error(spec: ExpectationSpec, col: ColumnInfo) -> str | None:
    """Errors GX (or PostgreSQL) would raise for this column's type, found before the scan
    so that one bad check cannot take the others' scan down."""
    gx_type = col.gx_type
    if spec.type == BETWEEN and col.category in ("S", "B"):
        return (f"ColumnValuesBetween metrics cannot be computed on column of type {gx_type} (column {col.name!r}); "
                "use expect_column_values_to_be_in_set or _match_regex for text columns")
    if spec.type == REGEX and col.category != "S":
        return (f"column {col.name!r} is {gx_type}; regular expressions apply to text columns only "
                "(cast it in a view, or use expect_column_values_to_be_between)")
    return None


def compile(i: int, spec: ExpectationSpec, cols: Sequence[ColumnInfo], scan: Scan, table: TableInfo,
            where: str | None, sample_size: int) -> Check | RawResult:
    """The check's counts in the scan, and its sample query."""
    if spec.type == NOT_NULL:
        return _compile_not_null(i, spec, cols[0].name, scan)
    return _compile_condition(i, spec, cols[0].name, scan, table, where, sample_size)


def _compile_not_null(i: int, spec: ExpectationSpec, col: str, scan: Scan) -> Check:
    n, nn = scan.count_all(), scan.count(col)
    mostly = spec.kwargs.get("mostly", 1)

    def ev(v, q, n=n, nn=nn, mostly=mostly):
        u = None if v[n] == 0 else v[n] - v[nn]
        return map_result(element_count=v[n], nonnull_count=None, unexpected_count=u, mostly=mostly)

    return Check(i, spec, [n, nn], ev)


def _compile_condition(i: int, spec: ExpectationSpec, col: str, scan: Scan, table: TableInfo,
                       where: str | None, sample_size: int) -> Check:
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
            ident, from_where(table, where, unexpected_pred), sql.Literal(sample_size))

    def ev(v, q):
        if v[n] == 0:
            u = None
        else:
            u = 0 if u_slot is None else v[u_slot]
        res = map_result(element_count=v[n], nonnull_count=v[nn], unexpected_count=u, mostly=mostly)
        if not res["success"] and sample_q is not None:
            res["result"]["partial_unexpected_list"] = [plain(r[0]) for r in q(sample_q)]
        return res

    return Check(i, spec, [s for s in (n, nn, u_slot) if s], ev)


_INT_TYPES = ("int2", "int4", "int8")


def _bound_literal(value: Any, info: ColumnInfo | None) -> sql.Composable:
    # GX's bounds are floats (5 -> 5.0), and "int_col >= 5.0" casts every row to numeric;
    # against an integer column an integral bound means the same as an integer literal
    if (info is not None and info.typname in _INT_TYPES and isinstance(value, float) and value.is_integer()
            and abs(value) < 2**53):
        return sql.Literal(int(value))
    return sql.Literal(value)


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
            return sql.SQL("{} like {}").format(col, sql.Literal(like))
        return sql.SQL("{} ~ {}").format(col, sql.Literal(kw["regex"]))
    values = kw.get("value_set")
    if spec.type == IN_SET:
        if values is None:
            return True
        # NULL in the set can match nothing (rows with NULL are not considered); GX drops it
        values = [v for v in values if v is not None]
        if not values:
            return False
        return sql.SQL("{} in ({})").format(col, in_list(values))
    # NOT_IN_SET: GX counts NOT (c NOT IN (set)), i.e. c IN (the set's non-NULL values)
    if not values:
        return True
    values = [v for v in values if v is not None]
    if not values:
        return True
    return sql.SQL("not ({} in ({}))").format(col, in_list(values))


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
