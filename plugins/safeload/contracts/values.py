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

    def settle(self, rows: int) -> None:
        """Hold the rule's metric to its threshold, with ``offending`` counted over ``rows``."""
        self.rows = rows
        if self.rule.kind == "row_count":
            self.offending = rows
            self.observed = rows
        elif self.rule.threshold.unit == "percent":
            self.observed = round(100.0 * self.offending / rows, 6) if rows else 0.0
        else:
            self.observed = self.offending
        if not self.rule.threshold.holds(self.observed):
            self.status = "broken" if self.rule.severity == "error" else "warning"

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
        self._set: Any = None
        self.typed = None if values is None else {_bound(v, pg_type) for v in values if v is not None}
        self.bound = None if rule.kind not in ("minimum", "maximum") else _bound(rule.arg, pg_type)
        if rule.kind in ("minimum", "maximum") and self.bound is None:
            self.error = f"the bound {rule.arg!r} is not a {pg_type} value"

    @property
    def _value_set(self) -> Any:
        import pyarrow as pa

        if self._set is None:
            self._set = pa.array(self.texts, pa.string())
        return self._set

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

    def offending(self, column: BlockColumn) -> Any:
        """A boolean array: true where the row breaks the rule (never null)."""
        import pyarrow.compute as pc

        kind = self.rule.kind
        col, null = column.values, column.null
        if kind == "not_null":
            return null
        if kind == "missing_values":
            hit = pc.is_in(column.string, value_set=self._value_set) if self.texts else None
            nulls_count = any(v is None for v in self.values) or "" in (self.texts or [])
            out = null if nulls_count else pc.and_not(null, null)
            return out if hit is None else pc.or_(out, pc.fill_null(hit, False))
        present = column.present
        if kind in ("min_length", "max_length"):
            length = column.lengths
            bad = pc.less(length, self.rule.arg) if kind == "min_length" else pc.greater(length, self.rule.arg)
            return pc.and_(present, pc.fill_null(bad, False))
        if kind == "pattern":
            return pc.and_(present, pc.invert(pc.fill_null(self._matches(column.string), True)))
        if kind in ("allowed_values", "invalid_values"):
            bad = None
            if self.texts is not None:
                bad = pc.invert(pc.fill_null(pc.is_in(column.string, value_set=self._value_set), True))
                bad = self._recheck_typed(col, pc.and_(present, bad))
            if kind == "invalid_values" and self.rule.arg.get("pattern") is not None:
                unmatched = pc.invert(pc.fill_null(self._matches(column.string), True))
                bad = unmatched if bad is None else pc.or_(bad, unmatched)
            return pc.and_(present, bad) if bad is not None else pc.and_not(present, present)
        if kind in ("minimum", "maximum"):
            return pc.and_(present, self._out_of_bounds(column))
        raise ValueError(f"no evaluator for {kind}")

    def _met_by_size(self, digits: int, negative: bool) -> bool:
        """Whether every number of at most ``digits`` digits before its dot (and of no minus
        sign, unless ``negative``) meets the bound: then no value needs reading."""
        reach = Decimal(10) ** digits  # every value v has |v| < reach
        b = self.bound
        if self.rule.kind == "maximum":
            return reach <= b
        return (not negative and (b < 0 or (b == 0 and not self.rule.exclusive))) or -reach >= b

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

    def _out_of_bounds(self, column: BlockColumn) -> Any:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        low = self.rule.kind == "minimum"
        exclusive = self.rule.exclusive
        col = column.values
        out = np.zeros(len(col), dtype=bool)
        todo = column.present
        if self.type.name in _NUMERIC_TYPES:
            if column.spelling is not None and self._met_by_size(**column.spelling):
                return pa.array(out)
            ix, vals, rest = column.numbers
            b = float(self.bound)
            beyond = vals < b if low else vals > b
            close = np.abs(vals - b) <= 1e-9 * max(1.0, abs(b))  # float cannot say: exact check below
            out[ix[beyond & ~close]] = True
            todo = np.zeros(len(col), dtype=bool)
            todo[ix[close]] = True
            if rest is not None:  # spellings the cast did not take (and values that are not numbers)
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


class BlockColumn:
    """One column of a block, and what several rules share: its nulls, numbers, lengths.

    Each is computed once, when a rule first asks. A reader that already knows some of
    it hands it over: the CSV scan has counted the empty fields and knows whether the
    type test cleared every value (``canonical``: each value present is spelt the way
    :func:`~safeload.contracts.types.fast_filter` accepts, so it casts without a
    regular expression).

    :param values: an Arrow array (one chunk)
    :param text: the values are text, where ``""`` is a null
    :param null: boolean array, true for a null (computed when not given)
    :param nulls: how many nulls
    :param canonical: every value present is in the fast filter's spelling (text only)
    :param spelling: for canonical numbers, what the spelling shows of their size:
        ``digits`` (the most digits before a dot) and ``negative`` (one has a minus sign)
    """

    def __init__(self, values: Any, text: bool, null: Any = None, nulls: int | None = None,
                 canonical: bool = False, spelling: dict[str, Any] | None = None):
        self.values = values
        self.text = text
        self._null = null
        self._nulls = nulls
        self.canonical = canonical
        self.spelling = spelling or None
        self._cache: dict[str, Any] = {}

    @property
    def null(self) -> Any:
        import pyarrow.compute as pc

        if self._null is None:
            null = pc.is_null(self.values)
            if self.text:  # an empty field is a null in CSV (and a JSON "" is read the same)
                null = pc.or_(null, pc.fill_null(pc.equal(self.string, ""), False))
            self._null = null
        return self._null

    @property
    def null_count(self) -> int:
        import pyarrow.compute as pc

        if self._nulls is None:
            self._nulls = pc.sum(self.null).as_py() or 0
        return self._nulls

    def _cached(self, key: str, make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def present(self) -> Any:
        import pyarrow.compute as pc

        return self._cached("present", lambda: pc.invert(self.null))

    @property
    def string(self) -> Any:
        return self._cached("string", lambda: _as_string(self.values))

    @property
    def lengths(self) -> Any:
        import pyarrow.compute as pc

        return self._cached("lengths", lambda: pc.utf8_length(self.string))

    @property
    def numbers(self) -> tuple[Any, Any, Any]:
        """``(indices, float64 values, rest)`` of the values that are numbers; ``rest`` (a
        numpy mask or None) marks present values to decide one by one."""
        return self._cached("numbers", self._numbers)

    def _numbers(self) -> tuple[Any, Any, Any]:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        col = self.values
        if not self.text:
            idx = pc.indices_nonzero(pc.fill_null(self.present, False))
            return idx.to_numpy(), pc.cast(pc.take(col, idx), pa.float64()).to_numpy(zero_copy_only=False), None
        if self.canonical:
            try:
                if self.null_count == 0:
                    ix = np.arange(len(col), dtype=np.int64)
                    return ix, pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), None
                idx = pc.indices_nonzero(self.present)
                vals = pc.cast(pc.take(col, idx), pa.float64()).to_numpy(zero_copy_only=False)
                return idx.to_numpy(), vals, None
            except pa.ArrowInvalid:  # a spelling Arrow does not read: the regular expression decides
                pass
        looks = pc.and_(self.present, pc.fill_null(pc.match_substring_regex(col, _NUMBER), False))
        idx = pc.indices_nonzero(looks)
        nums = pc.cast(pc.utf8_trim_whitespace(pc.take(col, idx)), pa.float64())
        return idx.to_numpy(), nums.to_numpy(zero_copy_only=False), \
            pc.and_not(self.present, looks).to_numpy(zero_copy_only=False)

    def integers(self, keep: Any) -> tuple[Any, Any]:
        """``(int64 keys, rows kept)`` of the rows in ``keep`` (None: all) whose value is an
        integer: text keeps the values of an integer's spelling (others do not fit the type
        and are reported as such); ``rows kept`` is a mask, or None for all rows."""
        import pyarrow as pa
        import pyarrow.compute as pc

        col = self.values
        if pa.types.is_integer(col.type) or self.canonical:
            try:
                return pc.cast(col if keep is None else pc.filter(col, keep), pa.int64()), keep
            except pa.ArrowInvalid:  # pragma: no cover - canonical integers are digits only
                pass
        ok = pc.fill_null(pc.match_substring_regex(col, r"^\s*[+-]?[0-9]{1,18}\s*$"), False)
        ok = ok if keep is None else pc.and_(keep, ok)
        return pc.cast(pc.utf8_trim_whitespace(pc.filter(col, ok)), pa.int64()), ok


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

    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return col
    if pa.types.is_nested(col.type) or hasattr(col.type, "extension_name"):
        # a struct or list (a jsonb column) as the JSON text the load writes; a uuid as its text
        import json

        return pa.array([None if v is None else v if isinstance(v, str) else
                         json.dumps(v, sort_keys=True, default=str) if isinstance(v, (dict, list)) else str(v)
                         for v in col.to_pylist()], pa.string())
    return col.cast(pa.string())


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

    def feed(self, table: Any, lines: Any, columns: dict[str, BlockColumn] | None = None) -> None:
        """Check one block: ``table`` has (at least) the needed columns by source name;
        ``lines`` (int64) numbers its rows as the report will name them; ``columns`` gives
        what the reader already knows of some of them (:class:`BlockColumn`)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        n = table.num_rows
        if n == 0:
            return
        self.rows += n
        lines = pa.array(lines, pa.int64()) if not isinstance(lines, pa.Array) else lines
        known = dict(columns or {})

        def column(name: str) -> BlockColumn:
            if name not in known:
                values = table.column(name)
                values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
                known[name] = BlockColumn(values, self.text)
            return known[name]

        for i, rule, cols, ev in self._evals:
            if rule.kind == "row_count":
                continue
            if i in self._finders:
                self._feed_keys(i, [column(c) for c in cols], lines)
                continue
            col = column(cols[0])
            if rule.kind == "not_null":
                count = col.null_count
                bad = col.null if count else None
            else:
                bad = ev.offending(col)
                count = pc.sum(bad).as_py() or 0
            if not count:
                continue
            result = self.results[i]
            result.offending += count
            if len(result.examples) < MAX_EXAMPLES or pc.min(pc.filter(lines, bad)).as_py() < result.examples[-1][0]:
                idx = pc.indices_nonzero(bad)[:MAX_EXAMPLES]
                new = [(ln, "" if v is None else _text(v)[:80], "")
                       for ln, v in zip(pc.take(lines, idx).to_pylist(), pc.take(col.values, idx).to_pylist())]
                result.examples = sorted(result.examples + new)[:MAX_EXAMPLES]

    def _feed_keys(self, i: int, parts: list[BlockColumn], lines: Any) -> None:
        import pyarrow.compute as pc

        finder = self._finders[i]
        if all(part.null_count == 0 for part in parts):
            keep = None
        else:
            keep = parts[0].present
            for part in parts[1:]:
                keep = pc.and_(keep, part.present)
        if finder.integer:
            keys, kept = parts[0].integers(keep)
            finder.add(keys, lines if kept is None else pc.filter(lines, kept))
            return
        cols = [part.string if keep is None else pc.filter(part.string, keep) for part in parts]
        keys = cols[0] if len(cols) == 1 else pc.binary_join_element_wise(*cols, "\x1f")
        finder.add(keys, lines if keep is None else pc.filter(lines, keep))

    def finish(self, rows: int | None = None) -> list[RuleResult]:
        """The results, in the contract's order of rules; spill files are removed."""
        total = self.rows if rows is None else rows
        try:
            for i, _rule, _cols, _ev in self._evals:
                result = self.results[i]
                if i in self._finders:
                    count, found = self._finders[i].finish()
                    result.offending = count
                    result.examples = [(ln, str(k).replace("\x1f", ", "), f"repeats line {first}")
                                       for ln, k, first in found]
                result.settle(total)
        finally:
            self.close()
        return [self.results[i] for i in sorted(self.results)]

    def close(self) -> None:
        for finder in self._finders.values():
            finder.close()
