"""Checking a contract's value rules on the blocks of a source, in the same pass as its shape.

:class:`ValueCheck` takes the blocks the readers of :mod:`safeload.contracts.introspect`
already make (an Arrow table and the line number of each row: CSV and JSON lines give
text, Parquet gives typed columns) and evaluates every :class:`~safeload.contracts.rules.Rule`
of the contract on them with vectorised Arrow kernels; values a kernel cannot decide
(an unusual spelling of a number, a bound that needs exact decimals) go to Python one
by one. Uniqueness is found by :class:`~safeload.contracts.duplicates.DuplicateFinder`,
in bounded memory. :meth:`ValueCheck.finish` gives one :class:`RuleResult` per rule:
passed, broken, warning, or not checked (a column missing from the source, a pattern
neither engine can compile), each with its count and the first offending lines.

Pure Python: no Airflow import. pyarrow is imported where used.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from safeload.contracts.naming import normalise
from safeload.contracts.rules import Rule

if TYPE_CHECKING:
    from safeload.contracts.model import Contract
    from safeload.contracts.types import PgType

MAX_EXAMPLES = 5
_NUMBER = r"^\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*$"
_NUMERIC_TYPES = ("smallint", "integer", "bigint", "numeric", "real", "double precision")
_INT_TYPES = ("smallint", "integer", "bigint")


@dataclass
class RuleResult:
    """What checking one rule found.

    :param status: ``passed``, ``broken`` (an error rule outside its threshold),
        ``warning`` (a warning rule outside it) or ``not checked``
    :param offending: rows that break the rule (for ``row_count``: the rows)
    :param observed: the metric held to the threshold (rows, or percent with ``unit: percent``)
    :param examples: ``(line, value, note)`` of the first offending rows
    """

    rule: Rule
    status: str
    offending: int = 0
    observed: float | None = None
    rows: int = 0
    examples: list[tuple[int, str, str]] = field(default_factory=list)
    reason: str = ""

    def to_dict(self, unit: str = "line") -> dict[str, Any]:
        d = {"path": self.rule.path, "rule": self.rule.describe(), "kind": self.rule.kind,
             "columns": list(self.rule.columns), "severity": self.rule.severity, "status": self.status}
        if self.status == "not checked":
            d["reason"] = self.reason
            return d
        d.update(offending=self.offending, observed=self.observed, threshold=str(self.rule.threshold),
                 rows=self.rows, examples=[{unit: ln, "value": v, **({"note": n} if n else {})}
                                           for ln, v, n in self.examples])
        return d


def typed_value(text: str, pg_type: PgType) -> Any:
    """The value of a text field as the column's type holds it, or None when it is not one."""
    name = pg_type.name
    t = text.strip()
    try:
        if name in _NUMERIC_TYPES:
            d = Decimal(t)
            return d if d.is_finite() else None
        if name == "date":
            return dt.date.fromisoformat(t)
        if name in ("timestamp", "timestamptz"):
            return dt.datetime.fromisoformat(t)
        if name == "time":
            return dt.time.fromisoformat(t)
        if name == "boolean":
            return {"t": True, "true": True, "y": True, "yes": True, "on": True, "1": True, "f": False,
                    "false": False, "n": False, "no": False, "off": False, "0": False}.get(t.lower())
    except (ValueError, InvalidOperation):
        return None
    return text


def _bound(value: Any, pg_type: PgType) -> Any:
    """A contract's bound or allowed value in the column's type (YAML gives numbers, dates or text)."""
    if isinstance(value, (dt.date, dt.datetime, dt.time)) or isinstance(value, bool):
        return value
    if pg_type.name in _NUMERIC_TYPES and isinstance(value, (int, float, Decimal)):
        return Decimal(str(value))
    return typed_value(str(value), pg_type)


def _compare(v: Any, b: Any) -> int | None:
    try:
        if isinstance(v, dt.datetime) and isinstance(b, dt.datetime) and (v.tzinfo is None) != (b.tzinfo is None):
            v, b = v.replace(tzinfo=None), b.replace(tzinfo=None)
        elif isinstance(v, dt.datetime) and type(b) is dt.date:
            b = dt.datetime.combine(b, dt.time(), v.tzinfo)
        return (v > b) - (v < b)
    except TypeError:
        return None


class _Evaluator:
    """One rule on one column: the offending mask of a block, and the Python fallbacks."""

    def __init__(self, rule: Rule, pg_type: PgType, text: bool):
        self.rule, self.type, self.text = rule, pg_type, text
        self.error: str | None = None
        self.regex = None
        pattern = rule.arg if rule.kind == "pattern" else (rule.arg or {}).get("pattern") \
            if rule.kind == "invalid_values" else None
        self.re2 = pattern
        if pattern is not None:
            self._compile(pattern)
        values = rule.arg if rule.kind in ("allowed_values", "missing_values") else \
            (rule.arg or {}).get("values") if rule.kind == "invalid_values" else None
        self.values = values
        self.texts = None if values is None else sorted({_text(v) for v in values if v is not None})
        self.typed = None if values is None else {_bound(v, pg_type) for v in values if v is not None}
        self.bound = None if rule.kind not in ("minimum", "maximum") else _bound(rule.arg, pg_type)
        if rule.kind in ("minimum", "maximum") and self.bound is None:
            self.error = f"the bound {rule.arg!r} is not a {pg_type} value"

    def _compile(self, pattern: str) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            pc.match_substring_regex(pa.array([""]), pattern)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            self.re2 = None
            try:
                self.regex = re.compile(pattern)
            except re.error as e:
                self.error = f"the pattern {pattern!r} is not a regular expression safeload can run ({e})"

    def _matches(self, col: Any) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.re2 is not None:
            return pc.match_substring_regex(col, self.re2)
        return pa.array([v is None or self.regex.search(v) is not None for v in col.to_pylist()], pa.bool_())

    def offending(self, col: Any, null: Any) -> Any:
        """A boolean array: true where the row breaks the rule (never null)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        kind = self.rule.kind
        if kind == "not_null":
            return null
        if kind == "missing_values":
            hit = pc.is_in(_as_string(col), value_set=pa.array(self.texts, pa.string())) if self.texts else None
            nulls_count = any(v is None for v in self.values) or "" in (self.texts or [])
            out = null if nulls_count else pc.and_not(pa.array([False] * len(col)), null)
            return out if hit is None else pc.or_(out, pc.fill_null(hit, False))
        present = pc.invert(null)
        if kind in ("min_length", "max_length"):
            length = pc.utf8_length(_as_string(col))
            bad = pc.less(length, self.rule.arg) if kind == "min_length" else pc.greater(length, self.rule.arg)
            return pc.and_(present, pc.fill_null(bad, False))
        if kind == "pattern":
            return pc.and_(present, pc.invert(pc.fill_null(self._matches(_as_string(col)), True)))
        if kind in ("allowed_values", "invalid_values"):
            bad = pa.array([False] * len(col))
            if self.texts is not None:
                bad = pc.invert(pc.fill_null(pc.is_in(_as_string(col), value_set=pa.array(self.texts, pa.string())),
                                             True))
                bad = self._recheck_typed(col, pc.and_(present, bad))
            if kind == "invalid_values" and self.rule.arg.get("pattern") is not None:
                bad = pc.or_(bad, pc.invert(pc.fill_null(self._matches(_as_string(col)), True)))
            return pc.and_(present, bad)
        if kind in ("minimum", "maximum"):
            return pc.and_(present, self._out_of_bounds(col, present))
        raise ValueError(f"no evaluator for {kind}")

    def _recheck_typed(self, col: Any, bad: Any) -> Any:
        """Values whose text is not among the allowed ones may still equal one in the column's
        type (``1.0`` for ``1``, ``TRUE`` for ``true``): decided in Python, one by one."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.type.name not in (*_NUMERIC_TYPES, "boolean", "date", "timestamp", "timestamptz", "time"):
            return bad
        idx = pc.indices_nonzero(bad)
        if len(idx) == 0:
            return bad
        fine = [k for k, v in zip(idx.to_pylist(), pc.take(col, idx).to_pylist())
                if (typed_value(v, self.type) if isinstance(v, str) else v) in self.typed]
        if not fine:
            return bad
        mask = bad.to_numpy(zero_copy_only=False).copy()
        mask[fine] = False
        return pa.array(mask)

    def _out_of_bounds(self, col: Any, present: Any) -> Any:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        low = self.rule.kind == "minimum"
        exclusive = self.rule.exclusive
        out = np.zeros(len(col), dtype=bool)
        todo = present
        if self.type.name in _NUMERIC_TYPES:
            if self.text:
                looks = pc.and_(present, pc.fill_null(pc.match_substring_regex(col, _NUMBER), False))
                idx = pc.indices_nonzero(looks)
                nums = pc.cast(pc.utf8_trim_whitespace(pc.take(col, idx)), pa.float64())
            else:
                idx = pc.indices_nonzero(pc.fill_null(present, False))
                nums = pc.cast(pc.take(col, idx), pa.float64())
            b = float(self.bound)
            vals = nums.to_numpy(zero_copy_only=False)
            beyond = vals < b if low else vals > b
            close = np.abs(vals - b) <= 1e-9 * max(1.0, abs(b))  # float cannot say: exact check below
            ix = idx.to_numpy()
            out[ix[beyond & ~close]] = True
            todo = np.zeros(len(col), dtype=bool)
            todo[ix[close]] = True
            if self.text:  # spellings the regex did not take (and values that are not numbers)
                rest = pc.and_not(present, looks).to_numpy(zero_copy_only=False)
                todo |= rest
            todo = pa.array(todo)
        idx = pc.indices_nonzero(todo)
        if len(idx):
            for k, v in zip(idx.to_pylist(), pc.take(col, idx).to_pylist()):
                value = typed_value(v, self.type) if isinstance(v, str) else _pythonic(v)
                c = None if value is None else _compare(value, self.bound)
                if c is not None and (c < 0 or (exclusive and c == 0) if low else c > 0 or (exclusive and c == 0)):
                    out[k] = True
        return pa.array(out)


def _pythonic(v: Any) -> Any:
    if isinstance(v, float):
        return Decimal(repr(v))
    if isinstance(v, int) and not isinstance(v, bool):
        return Decimal(v)
    return v


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dt.date, dt.datetime, dt.time)):
        return v.isoformat()
    return str(v)


def _as_string(col: Any) -> Any:
    import pyarrow as pa

    return col if pa.types.is_string(col.type) or pa.types.is_large_string(col.type) else col.cast(pa.string())


def match_columns(contract: Contract, source_columns: list[str]) -> dict[str, str]:
    """Contract column -> source column, as the drift diff matches them (exact name, else
    ignoring case and whitespace)."""
    exact = set(source_columns)
    by_norm = {normalise(s): s for s in source_columns}
    out = {}
    for c in contract.columns:
        if c.name in exact:
            out[c.name] = c.name
        elif normalise(c.name) in by_norm:
            out[c.name] = by_norm[normalise(c.name)]
    return out


def value_check(contract: Contract | None, source_columns: list[str], *, text: bool) -> ValueCheck | None:
    """A :class:`ValueCheck` for the contract's rules on this source, or None (no rules)."""
    if contract is None or not contract.rules:
        return None
    return ValueCheck(contract, source_columns, text=text, match=match_columns(contract, source_columns))


class ValueCheck:
    """Every value rule of a contract, checked on blocks of one source.

    :param contract: the contract (its ``rules``)
    :param source_columns: the source's column names, in its order
    :param text: the blocks hold text (CSV, JSON lines: ``""`` is null) rather than typed values
    :param match: contract column name -> source column name (as the drift diff matches them)
    """

    def __init__(self, contract: Contract, source_columns: list[str], *, text: bool, match: dict[str, str]):
        self.text = text
        self.rows = 0
        self.results: dict[int, RuleResult] = {}
        self._evals: list[tuple[int, Rule, list[str], Any]] = []
        types = {c.name: c.type for c in contract.columns}
        self._finders: dict[int, Any] = {}
        self.needed: set[str] = set()
        for i, rule in enumerate(contract.rules):
            missing = [c for c in rule.columns if c not in match]
            if missing:
                self.results[i] = RuleResult(rule, "not checked", reason=f"column {missing[0]!r} is not in the source "
                                                                           "(reported as drift)")
                continue
            cols = [match[c] for c in rule.columns]
            if rule.kind in ("unique", "primary_key"):
                from safeload.contracts.duplicates import DuplicateFinder

                integer = len(cols) == 1 and types[rule.columns[0]].name in _INT_TYPES
                self._finders[i] = DuplicateFinder(integer, MAX_EXAMPLES)
                self._evals.append((i, rule, cols, None))
            elif rule.kind == "row_count":
                self._evals.append((i, rule, cols, None))
            else:
                ev = _Evaluator(rule, types[rule.columns[0]], text)
                if ev.error:
                    self.results[i] = RuleResult(rule, "not checked", reason=ev.error)
                    continue
                self._evals.append((i, rule, cols, ev))
            self.needed.update(cols)
            self.results[i] = RuleResult(rule, "passed")

    @property
    def active(self) -> bool:
        return bool(self._evals)

    def feed(self, table: Any, lines: Any) -> None:
        """Check one block: ``table`` has (at least) the needed columns by source name;
        ``lines`` (int64) numbers its rows as the report will name them."""
        import pyarrow as pa
        import pyarrow.compute as pc

        n = table.num_rows
        if n == 0:
            return
        self.rows += n
        lines = pa.array(lines, pa.int64()) if not isinstance(lines, pa.Array) else lines
        nulls: dict[str, Any] = {}

        def null_of(name: str) -> Any:
            if name not in nulls:
                col = table.column(name).combine_chunks() if hasattr(table.column(name), "combine_chunks") \
                    else table.column(name)
                null = pc.is_null(col)
                if self.text:  # an empty field is a null in CSV (and a JSON "" is read the same)
                    null = pc.or_(null, pc.fill_null(pc.equal(_as_string(col), ""), False))
                nulls[name] = (col, null)
            return nulls[name]

        for i, rule, cols, ev in self._evals:
            if rule.kind == "row_count":
                continue
            if i in self._finders:
                self._feed_keys(i, [null_of(c) for c in cols], lines)
                continue
            col, null = null_of(cols[0])
            bad = ev.offending(col, null)
            count = pc.sum(bad).as_py() or 0
            if not count:
                continue
            result = self.results[i]
            result.offending += count
            if len(result.examples) < MAX_EXAMPLES or pc.min(pc.filter(lines, bad)).as_py() < result.examples[-1][0]:
                idx = pc.indices_nonzero(bad)[:MAX_EXAMPLES]
                new = [(ln, "" if v is None else _text(v)[:80], "")
                       for ln, v in zip(pc.take(lines, idx).to_pylist(), pc.take(col, idx).to_pylist())]
                result.examples = sorted(result.examples + new)[:MAX_EXAMPLES]

    def _feed_keys(self, i: int, parts: list[tuple[Any, Any]], lines: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        finder = self._finders[i]
        any_null = parts[0][1]
        for _, null in parts[1:]:
            any_null = pc.or_(any_null, null)
        keep = pc.invert(any_null)
        cols = [pc.filter(col, keep) for col, _ in parts]
        kept_lines = pc.filter(lines, keep)
        if finder.integer:
            col = cols[0]
            if pa.types.is_integer(col.type):
                keys = col.cast(pa.int64())
            else:  # text: the values that are integers (others do not fit the type: reported as such)
                ok = pc.fill_null(pc.match_substring_regex(col, r"^\s*[+-]?[0-9]{1,18}\s*$"), False)
                keys = pc.cast(pc.utf8_trim_whitespace(pc.filter(col, ok)), pa.int64())
                kept_lines = pc.filter(kept_lines, ok)
        elif len(cols) == 1:
            keys = _as_string(cols[0])
        else:
            keys = pc.binary_join_element_wise(*[_as_string(c) for c in cols], "\x1f")
        finder.add(keys, kept_lines)

    def finish(self, rows: int | None = None) -> list[RuleResult]:
        """The results, in the contract's order of rules; spill files are removed."""
        total = self.rows if rows is None else rows
        try:
            for i, rule, _cols, _ev in self._evals:
                result = self.results[i]
                result.rows = total
                if i in self._finders:
                    count, found = self._finders[i].finish()
                    result.offending = count
                    result.examples = [(ln, str(k).replace("\x1f", ", "), f"repeats line {first}")
                                       for ln, k, first in found]
                if rule.kind == "row_count":
                    result.offending = total
                    result.observed = total
                elif rule.threshold.unit == "percent":
                    result.observed = round(100.0 * result.offending / total, 6) if total else 0.0
                else:
                    result.observed = result.offending
                if not rule.threshold.holds(result.observed):
                    result.status = "broken" if rule.severity == "error" else "warning"
        finally:
            self.close()
        return [self.results[i] for i in sorted(self.results)]

    def close(self) -> None:
        for finder in self._finders.values():
            finder.close()
