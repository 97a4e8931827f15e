"""Sources a careful producer would deliver for a contract, and sources that break one rule each.

The tests that hold ``safeload contract check`` to contracts written elsewhere (real ODCS v3
files, shapes of our own in tests/unit/contracts/data/) use it: :func:`plan_for` reads a
parsed contract (and, for ODCS, the document's properties: string formats, examples,
nested structures) and gives a :class:`Plan` whose

- :meth:`Plan.conforming` rows hold values of each column's declared type, within its
  bounds (exclusive ones too), lengths, pattern and allowed values, unique where the
  contract says unique or primary key, never null where required, as many rows as its
  row counts ask;
- :meth:`Plan.mutations` change those rows so that each breaks one value rule (as far as
  the generator can make it the only one), or say why a rule cannot be broken by a file.

:func:`write` spells the rows as CSV, JSON lines or Parquet, as a producer of that format
would (a timestamp of an ODCS ``timestamp`` without ``timezone`` in ODCS's default format
``yyyy-MM-ddTHH:mm:ss.SSSZ``, an ODCS ``integer`` as Parquet int32, ODCS's default width).

What is valid is decided here, by reading the contract, never with safeload's own code: a
check that agreed with itself would prove nothing. The rows are small (3 unless a rule
needs more) so that a contract runs in milliseconds.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import regex_sample

ROWS = 3
#: rows the generator writes at most for one file (a row count rule may ask for more)
MAX_ROWS = 1_100_000
_INT_RANGE = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
_NUMBERS = ("smallint", "integer", "bigint", "numeric", "real", "double precision")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass
class Mutation:
    """Rows that break one rule of the contract.

    :param index: the rule's index in ``contract.rules``
    :param rows: the rows, or None when no file can break the rule (``reason`` says why)
    :param formats: the formats in which the rows break the rule (an empty string is a
        null in CSV and JSON lines, a value of length 0 in Parquet)
    """

    index: int
    rule: Any
    rows: list[list[Any]] | None
    reason: str = ""
    formats: tuple[str, ...] = ("csv", "jsonl", "parquet")


@dataclass
class ColumnGen:
    """Values of one column: what the contract allows, and values that break one rule."""

    column: Any
    rules: list[Any]
    prop: dict[str, Any] = field(default_factory=dict)
    examples: bool = False

    def __post_init__(self) -> None:
        self.type = self.column.type
        self.logical = self.prop.get("logicalType")
        self.options = self.prop.get("logicalTypeOptions") or {}
        self.fmt = self.options.get("format")

    # ------------------------------------------------------------------ the domain
    @property
    def kind(self) -> str:
        """What Python values the column holds: int, decimal, date, timestamp, timestamptz,
        time, bool, json, text."""
        name = self.type.name
        if name in _INT_RANGE:
            return "int"
        if name in ("numeric", "real", "double precision"):
            return "decimal"
        if name in ("date", "timestamp", "timestamptz", "time"):
            return name
        if name == "boolean":
            return "bool"
        if name in ("json", "jsonb"):
            return "json"
        return "text"

    def fits(self, value: Any, skip: Any = None) -> bool:
        """Whether a value holds every rule of the column (but ``skip``) and fits its type."""
        return self.fits_type(value) and all(self.holds(r, value) for r in self.rules if r is not skip)

    def fits_type(self, value: Any) -> bool:
        name, kind = self.type.name, self.kind
        if value is None:
            return True
        if kind == "int":
            lo, hi = _INT_RANGE[name]
            return isinstance(value, int) and lo <= value <= hi
        if kind == "decimal" and name == "numeric" and self.type.length is not None:
            scale = self.type.scale or 0
            return value == value.quantize(Decimal(1).scaleb(-scale)) and abs(value) < Decimal(10) ** (
                self.type.length - scale)
        if name in ("varchar", "char") and self.type.length is not None:
            return len(value) <= self.type.length
        return True

    def holds(self, rule: Any, value: Any) -> bool:
        """Whether a present value (None always holds: nulls are their own rules) keeps the rule."""
        if value is None:
            return True
        kind = rule.kind
        if kind in ("minimum", "maximum"):
            bound = self.convert(rule.arg)
            if bound is None:
                return True
            c = _cmp(value, bound)
            return c > 0 or (c == 0 and not rule.exclusive) if kind == "minimum" else \
                c < 0 or (c == 0 and not rule.exclusive)
        text = self.text(value)
        if kind == "min_length":
            return len(text) >= rule.arg
        if kind == "max_length":
            return len(text) <= rule.arg
        if kind == "pattern":
            return re.search(rule.arg, text) is not None
        if kind == "allowed_values":
            return self._among(value, rule.arg)
        if kind == "invalid_values":
            values, pattern = rule.arg.get("values"), rule.arg.get("pattern")
            return (values is None or self._among(value, values)) and (
                pattern is None or re.search(pattern, text) is not None)
        if kind == "missing_values":
            return not self._among(value, [v for v in rule.arg if v is not None and v != ""])
        return True

    def _among(self, value: Any, allowed: Any) -> bool:
        return any(self.convert(a) == value for a in allowed if a is not None)

    def convert(self, v: Any) -> Any:
        """A value written in the contract (YAML: a number, a string, a date) in the column's domain."""
        kind = self.kind
        try:
            if kind == "int":
                d = Decimal(str(v))
                return int(d) if d == int(d) else d
            if kind == "decimal":
                return Decimal(str(v))
            if kind == "date":
                return v if type(v) is dt.date else dt.date.fromisoformat(str(v)[:10])
            if kind in ("timestamp", "timestamptz"):
                if isinstance(v, dt.datetime):
                    out = v
                elif isinstance(v, dt.date):
                    out = dt.datetime.combine(v, dt.time())
                else:
                    out = dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
                return out.replace(tzinfo=None) if kind == "timestamp" else \
                    (out if out.tzinfo else out.replace(tzinfo=dt.timezone.utc))
            if kind == "time":
                return v if isinstance(v, dt.time) else dt.time.fromisoformat(str(v))
            if kind == "bool":
                return v if isinstance(v, bool) else {"true": True, "false": False}.get(str(v).lower())
            if kind == "json":
                return v if isinstance(v, (dict, list)) else json.loads(v)
        except (ValueError, ArithmeticError, TypeError):
            return None
        return v if isinstance(v, str) else json.dumps(v) if isinstance(v, (dict, list)) else _plain(v)

    def text(self, value: Any) -> str:
        """The value as a CSV field spells it (the form the contract's length and pattern rules see)."""
        return spell(self, value, "csv")

    # ------------------------------------------------------------------ values
    def candidates(self, n: int):
        """Values of the column's type in its bounds, most typical first (more than ``n`` where it can)."""
        if self.examples:
            for e in self.prop.get("examples") or []:
                v = self.convert(e)
                if v is not None:
                    yield v
        for r in self.rules:
            if r.kind == "allowed_values" or (r.kind == "invalid_values" and r.arg.get("values")):
                for a in (r.arg if r.kind == "allowed_values" else r.arg["values"]):
                    v = self.convert(a) if a is not None and a != "" else None
                    if v is not None:
                        yield v
        pattern = next((r.arg if r.kind == "pattern" else r.arg.get("pattern") for r in self.rules
                        if r.kind == "pattern" or (r.kind == "invalid_values" and r.arg.get("pattern"))), None)
        if pattern is not None and self.kind == "text":
            lengths = self._lengths()
            for seed in range(40 * n + 40):
                text = regex_sample.sample(pattern, seed, lengths)
                if text is not None:
                    yield text
        yield from self._typed(n)

    def _lengths(self) -> tuple[int, int | None]:
        lo = max([r.arg for r in self.rules if r.kind == "min_length"] or [0])
        his = [r.arg for r in self.rules if r.kind == "max_length"]
        if self.type.name in ("varchar", "char") and self.type.length is not None:
            his.append(self.type.length)
        return lo, min(his) if his else None

    def _bounds(self) -> tuple[Any, bool, Any, bool]:
        lo = lo_ex = hi = hi_ex = None
        for r in self.rules:
            if r.kind in ("minimum", "maximum"):
                b = self.convert(r.arg)
                if r.kind == "minimum" and (lo is None or b > lo):
                    lo, lo_ex = b, r.exclusive
                if r.kind == "maximum" and (hi is None or b < hi):
                    hi, hi_ex = b, r.exclusive
        return lo, bool(lo_ex), hi, bool(hi_ex)

    def _typed(self, n: int):
        kind, name = self.kind, self.type.name
        lo, lo_ex, hi, hi_ex = self._bounds()
        count = n + 5
        if kind == "int":
            start = 1 if lo is None else int(lo) + (1 if lo_ex or lo != int(lo) else 0)
            if hi is not None and lo is None and hi < start + count:
                start = int(hi) - count
            for i in range(count):
                yield start + i
        elif kind == "decimal":
            scale = self.type.scale if name == "numeric" and self.type.length is not None else 2
            step = Decimal(1).scaleb(-scale)
            if lo is not None and hi is not None:
                span = (hi - lo) / (count + 1)
                for i in range(count):
                    yield (lo + span * (i + 1)).quantize(step)
                return
            start = Decimal(1) if lo is None else lo
            if hi is not None and lo is None:
                start = hi - count - 1
            for i in range(count):
                v = start + i + (Decimal("0.5") if scale else 1)
                yield v.quantize(step)
        elif kind == "date":
            start = lo + dt.timedelta(days=1 if lo_ex else 0) if lo is not None else dt.date(2024, 5, 2)
            if hi is not None and lo is None:
                start = hi - dt.timedelta(days=count + 1)
            for i in range(count):
                yield start + dt.timedelta(days=i)
        elif kind in ("timestamp", "timestamptz"):
            tz = dt.timezone.utc if kind == "timestamptz" else None
            start = dt.datetime(2024, 5, 2, 10, 0, 0, tzinfo=tz)
            if lo is not None:
                start = lo + dt.timedelta(hours=1)
            elif hi is not None:
                start = hi - dt.timedelta(hours=count + 1)
            for i in range(count):
                yield start + dt.timedelta(hours=i)
        elif kind == "time":
            for i in range(count):
                yield dt.time(8 + i // 60 % 12, i % 60, 0)
        elif kind == "bool":
            yield from (True, False)
        elif kind == "json":
            for i in range(count):
                yield self._json(self.prop, i)
        else:
            yield from self._texts(count)

    def _texts(self, count: int):
        fmt = self.fmt if isinstance(self.fmt, str) else ""
        lo, hi = self._lengths()
        for i in range(count):
            if name_is(self.type, "uuid") or fmt == "uuid":
                yield str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.column.name}/{i}"))
            elif fmt == "email":
                yield f"user{i + 1}@example.com"
            elif fmt in ("uri", "url"):
                yield f"https://example.com/items/{i + 1}"
            elif fmt == "date-time":
                yield (dt.datetime(2024, 5, 2, 10) + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            elif fmt == "date":
                yield (dt.date(2024, 5, 2) + dt.timedelta(days=i)).isoformat()
            elif hi is not None and hi < 4:
                digits, k = [], i
                for _ in range(max(hi, 1)):
                    digits.append(_ALPHABET[k % len(_ALPHABET)])
                    k //= len(_ALPHABET)
                text = "".join(reversed(digits))
                yield text if len(text) >= lo else text.rjust(lo, "A")
            else:
                text = f"v{i + 1}"
                yield text if len(text) >= lo else "v" + str(i + 1).rjust(lo - 1, "0")

    def _json(self, prop: dict[str, Any], i: int) -> Any:
        """A JSON value shaped as the property's nested ``properties`` or ``items`` say."""
        logical = prop.get("logicalType")
        if logical == "array" or (prop.get("items") and not prop.get("properties")):
            item = prop.get("items") or {}
            return [self._json(item, i)] if isinstance(item, dict) and item else [i + 1]
        if logical == "object" or prop.get("properties"):
            return {str(p.get("name", f"f{k}")): self._json(p, i)
                    for k, p in enumerate(prop.get("properties") or []) if isinstance(p, dict)} or {"id": i + 1}
        return {"integer": i + 1, "number": i + 1.5, "boolean": i % 2 == 0, "date": "2024-05-02",
                "timestamp": "2024-05-02T10:00:00Z"}.get(logical, f"v{i + 1}")

    # ------------------------------------------------------------------ breaking one rule
    def breaking(self, rule: Any, good: Any) -> list[Any]:
        """Values that break ``rule`` (best first: those that keep the column's other rules)."""
        kind = rule.kind
        out: list[Any] = []
        if kind in ("minimum", "maximum"):
            bound = self.convert(rule.arg)
            sign = -1 if kind == "minimum" else 1
            if rule.exclusive:
                out.append(bound)
            out.extend(self._step(bound, sign))
        elif kind == "min_length":
            text = self.text(good)
            out += [text[:rule.arg - 1], text[:1] * (rule.arg - 1)]
        elif kind == "max_length":
            text = self.text(good)
            out += [text + text[-1:] * (rule.arg + 1 - len(text)), text + "x" * (rule.arg + 1 - len(text))]
        elif kind == "pattern" or (kind == "invalid_values" and rule.arg.get("pattern")):
            text = self.text(good)
            out += ["~" + text, text + "~", "~", "0", "a a"]
        if kind in ("allowed_values", "invalid_values"):
            out += [v for v in self._typed(8) if v is not None]
            if self.kind == "text":
                out += ["not-allowed", "zz"]
        if kind == "missing_values":
            out += [self.convert(v) for v in rule.arg if v is not None and v != ""]
        bad = [v for v in out if v is not None and self.fits_type(v) and not self.holds(rule, v)]
        return sorted(bad, key=lambda v: not self.fits(v, skip=rule))

    def _step(self, bound: Any, sign: int) -> list[Any]:
        kind = self.kind
        if kind == "int":
            return [int(bound) + sign if bound == int(bound) else int(bound)]
        if kind == "decimal":
            scale = self.type.scale if self.type.name == "numeric" and self.type.length is not None else 2
            return [bound + sign * Decimal(1).scaleb(-scale), bound + sign]
        if kind == "date":
            return [bound + sign * dt.timedelta(days=1)]
        if kind in ("timestamp", "timestamptz"):
            return [bound + sign * dt.timedelta(seconds=1)]
        return []


def name_is(pg_type: Any, name: str) -> bool:
    return pg_type.name == name


def _plain(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _cmp(a: Any, b: Any) -> int:
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime) and (a.tzinfo is None) != (b.tzinfo is None):
        a, b = a.replace(tzinfo=None), b.replace(tzinfo=None)
    return (a > b) - (a < b)


# ---------------------------------------------------------------------- plan


@dataclass
class Plan:
    """Rows for one contract: conforming, and mutated one rule at a time."""

    contract: Any
    gens: list[ColumnGen]
    rows: list[list[Any]]
    problems: list[str]

    @property
    def columns(self) -> list[str]:
        return [g.column.name for g in self.gens]

    @property
    def formats(self) -> tuple[str, ...]:
        """The formats that can carry the rows: Parquet has no JSON type, so a JSON column of
        scalars (a string, a number) is left to the text formats; structures become structs."""
        scalar_json = any(g.kind == "json" and any(r[j] is not None and not isinstance(r[j], (dict, list))
                                                   for r in self.rows) for j, g in enumerate(self.gens))
        return ("csv", "jsonl") if scalar_json else FORMATS

    def conforming(self) -> list[list[Any]]:
        return [list(r) for r in self.rows]

    def mutations(self) -> list[Mutation]:
        return [self._mutate(i, rule) for i, rule in enumerate(self.contract.rules)]

    def _mutate(self, index: int, rule: Any) -> Mutation:
        if rule.kind == "row_count":
            return self._row_count(index, rule)
        n = len(self.rows)
        k = _offenders_to_break(rule.threshold, n)
        rows = self.rows
        if k is None:  # more rows than offenders are needed (a rows threshold): grow the file
            k = _offenders_to_break(rule.threshold, n * 1000)
            if k is None or k >= MAX_ROWS:
                return Mutation(index, rule, None, f"no number of offending rows breaks {rule.threshold}")
            grown = self.grow(k + 1)
            if grown is None:
                return Mutation(index, rule, None, "the generator cannot make enough rows to break it")
            rows = grown
            k = _offenders_to_break(rule.threshold, len(rows))
            if k is None:
                return Mutation(index, rule, None, f"no number of offending rows breaks {rule.threshold}")
        rows = [list(r) for r in rows]
        if rule.kind in ("unique", "primary_key"):
            if len(rows) < 2:
                return Mutation(index, rule, None, "one row cannot repeat a key")
            at = [self.columns.index(c) for c in rule.columns]
            k = min(k, len(rows) - 1)
            for r in rows[1:k + 1]:
                for j in at:
                    r[j] = rows[0][j]
            return Mutation(index, rule, rows)
        j = self.columns.index(rule.columns[0])
        gen = self.gens[j]
        if rule.kind == "not_null":
            bad = [None]
        elif rule.kind == "missing_values":
            bad = gen.breaking(rule, rows[0][j]) or ([None] if None in rule.arg or "" in rule.arg else [])
        else:
            bad = gen.breaking(rule, next((r[j] for r in rows if r[j] is not None), None))
        if not bad:
            return Mutation(index, rule, None, f"no value of {gen.type} breaks it")
        for r in rows[:k]:
            r[j] = bad[0]
        formats = ("parquet",) if bad[0] == "" else ("csv", "jsonl", "parquet")
        return Mutation(index, rule, rows, formats=formats)

    def _row_count(self, index: int, rule: Any) -> Mutation:
        t = rule.threshold
        for n in _row_counts_near(t):
            if not t.holds(n):
                if n == 0:
                    return Mutation(index, rule, [], "")
                rows = self.grow(n)
                if rows is not None:
                    return Mutation(index, rule, rows)
        return Mutation(index, rule, None, f"no row count near the bounds breaks {t}")

    def grow(self, n: int) -> list[list[Any]] | None:
        """The conforming rows for ``n`` rows (None when the columns cannot have that many)."""
        if n == len(self.rows):
            return [list(r) for r in self.rows]
        rows, _ = _rows(self.contract, self.gens, n)
        return rows


def _offenders_to_break(t: Any, n: int) -> int | None:
    for k in range(1, n + 1):
        observed = k if t.unit == "rows" else 100.0 * k / n
        if not t.holds(observed):
            return k
    return None


def _row_counts_near(t: Any) -> list[int]:
    values = t.value if isinstance(t.value, tuple) else (t.value,)
    near = sorted({max(0, int(v) + d) for v in values for d in (-1, 0, 1)})
    return [n for n in near if n <= MAX_ROWS] + [ROWS]


def _row_count(contract: Any) -> int:
    rules = [r for r in contract.rules if r.kind == "row_count"]
    for n in [ROWS, 2, 1, *sorted({c for r in rules for c in _row_counts_near(r.threshold)})]:
        if 0 < n <= MAX_ROWS and all(r.threshold.holds(n) for r in rules):
            return n
    return ROWS


def _rows(contract: Any, gens: list[ColumnGen], n: int) -> tuple[list[list[Any]] | None, list[str]]:
    """``n`` conforming rows, or None and why not."""
    unique = {c for r in contract.rules if r.kind in ("unique", "primary_key") and len(r.columns) == 1
              for c in r.columns}
    # a composite key is unique when its first column is
    unique |= {r.columns[0] for r in contract.rules if r.kind in ("unique", "primary_key") and len(r.columns) > 1}
    columns: list[list[Any]] = []
    problems: list[str] = []
    for g in gens:
        values: list[Any] = []
        seen: set[str] = set()
        for v in g.candidates(n):
            key = json.dumps(v, sort_keys=True, default=str)
            if key in seen or not g.fits(v):
                continue
            seen.add(key)
            values.append(v)
            if len(values) >= n:
                break
        if not values:
            problems.append(f"column {g.column.name!r}: no value of {g.type} keeps all its rules")
            values = [None]
        if len(values) < n and g.column.name in unique:
            problems.append(f"column {g.column.name!r}: unique, but only {len(values)} distinct values keep its rules")
        while len(values) < n:
            values.extend(values[: n - len(values)])
        columns.append(values[:n])
    if problems:
        return None, problems
    return [list(r) for r in zip(*columns)], []


def plan_for(contract: Any, doc: dict[str, Any] | None = None, *, examples: bool = False) -> Plan:
    """The rows for a contract; ``doc`` is the ODCS document it was read from (formats,
    examples and nested structures are in its properties); ``examples`` takes a column's
    ``examples`` first where they keep its rules."""
    props = odcs_properties(doc, contract.dataset) if doc else {}
    gens = [ColumnGen(c, [r for r in contract.rules if r.columns == (c.name,)
                          and r.kind not in ("not_null", "unique", "primary_key", "row_count")
                          and r.threshold.holds(0)],
                      props.get(c.name, {}), examples) for c in contract.columns]
    problems = [f"{r.path}: {r.describe()} needs offending rows to hold ({r.threshold})"
                for r in contract.rules if r.kind != "row_count" and not r.threshold.holds(0)]
    if not contract.columns:
        problems.append("the contract declares no columns: no file conforms to it more than another")
    n = _row_count(contract)
    rows, why = _rows(contract, gens, n)
    for smaller in (2, 1):  # a column with few values (an allowed list) under a unique rule
        if rows is None and smaller < n and all(r.threshold.holds(smaller) for r in contract.rules
                                                if r.kind == "row_count"):
            rows, _ = _rows(contract, gens, smaller)
    return Plan(contract, gens, rows or [], problems + (why if rows is None else []))


def odcs_properties(doc: dict[str, Any], object_name: str) -> dict[str, dict[str, Any]]:
    """Column name (physicalName, else name) -> the ODCS property that declares it."""
    objects = doc.get("schema") or []
    obj = next((o for o in objects if o.get("name") == object_name), objects[0] if len(objects) == 1 else {})
    return {str(p.get("physicalName") or p.get("name")): p for p in obj.get("properties") or []
            if isinstance(p, dict)}


# ---------------------------------------------------------------------- writers


def spell(gen: ColumnGen, value: Any, fmt: str) -> Any:
    """How a producer writes a value in a text format: ISO dates; timestamps of an ODCS
    ``timestamp`` as its ``format`` option says, else in ODCS's default format
    ``yyyy-MM-ddTHH:mm:ss.SSSZ`` (UTC); JSON columns as JSON text in CSV."""
    if value is None:
        return "" if fmt == "csv" else None
    if gen.kind == "json" and not isinstance(value, (dict, list)):
        return json.dumps(value, default=str)  # a JSON column's value is JSON text, a string quoted
    if isinstance(value, bool):
        return ("true" if value else "false") if fmt == "csv" else value
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text if fmt == "csv" else json.loads(text) if abs(value) < 2**53 else text
    if isinstance(value, int):
        return str(value) if fmt == "csv" else value
    if isinstance(value, dt.datetime):
        return _timestamp(gen, value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value) if fmt == "csv" else value
    return value


def _timestamp(gen: ColumnGen, value: dt.datetime) -> str:
    if gen.logical == "timestamp" and not gen.options.get("timezone"):
        fmt = gen.fmt if isinstance(gen.fmt, str) else "yyyy-MM-ddTHH:mm:ss.SSSZ"
        return jdk_format(fmt, value.replace(tzinfo=dt.timezone.utc)) or value.isoformat()
    return value.isoformat()


def jdk_format(pattern: str, value: dt.datetime) -> str | None:
    """A timestamp in a JDK DateTimeFormatter pattern of the common letters (None for others)."""
    parts = {"yyyy": "%Y", "YYYY": "%Y", "MM": "%m", "DD": "%d", "dd": "%d", "HH": "%H", "hh": "%H", "mm": "%M",
             "ss": "%S", "SSS": "{ms}", "T": "T", "'T'": "T", "Z": "{z}", "XXX": "{xxx}", "X": "{z}"}
    out, rest = [], pattern
    while rest:
        for token in sorted(parts, key=len, reverse=True):
            if rest.startswith(token):
                out.append(parts[token])
                rest = rest[len(token):]
                break
        else:
            if rest[0] in "-:. ":
                out.append(rest[0])
                rest = rest[1:]
            else:
                return None
    text = value.strftime("".join(out))
    offset = value.strftime("%z")
    return text.format(ms=f"{value.microsecond // 1000:03d}",
                       z="Z" if offset in ("", "+0000") else offset,
                       xxx="Z" if offset in ("", "+0000") else f"{offset[:3]}:{offset[3:]}")


def write(plan: Plan, rows: list[list[Any]], path: Path, fmt: str) -> Path:
    """Write rows as ``csv``, ``jsonl`` or ``parquet`` (suffix added to ``path``)."""
    path = Path(f"{path}.{fmt}")
    if fmt == "csv":
        import csv

        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(plan.columns)
            for r in rows:
                w.writerow([spell(g, v, "csv") for g, v in zip(plan.gens, r)])
    elif fmt == "jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps({g.column.name: spell(g, v, "jsonl") for g, v in zip(plan.gens, r)}) + "\n")
    else:
        _write_parquet(plan, rows, path)
    return path


def arrow_type(gen: ColumnGen) -> Any:
    """The Arrow type a producer writes for a column: ODCS ``integer`` as int32 (ODCS's
    default width) unless its format or physical type says wider, JSON structures as
    Arrow structs and lists, decimals at the contract's precision."""
    import pyarrow as pa

    name, kind = gen.type.name, gen.kind
    physical = str(gen.prop.get("physicalType") or "").lower()
    if kind == "int":
        if gen.logical == "integer" and not gen.fmt and name == "bigint" and not any(
                w in physical for w in ("big", "long", "int64", "int8")):
            return pa.int32()
        return {"smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64()}[name]
    if kind == "decimal":
        if name == "real":
            return pa.float32()
        if name == "double precision" or any(w in physical for w in ("double", "float")):
            return pa.float64()
        if gen.type.length is not None:
            return pa.decimal128(gen.type.length, gen.type.scale or 0)
        return pa.decimal128(38, 9)
    if name == "uuid":
        return pa.uuid()
    return {"date": pa.date32(), "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC"),
            "time": pa.time64("us"), "bool": pa.bool_()}.get(kind, pa.string())


def _write_parquet(plan: Plan, rows: list[list[Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = []
    for j, g in enumerate(plan.gens):
        values = [r[j] for r in rows]
        t = arrow_type(g)
        if g.kind == "json":
            present = [v for v in values if v is not None]
            nested = pa.array(present) if present else None
            if nested is not None and (pa.types.is_struct(nested.type) or pa.types.is_list(nested.type)):
                arrays.append(pa.array(values, nested.type))
                continue
            values = [None if v is None else json.dumps(v) for v in values]
        elif g.type.name == "uuid":  # Parquet's UUID type (16 bytes), as producers of uuids write it
            values = [None if v is None else uuid.UUID(g.text(v)).bytes for v in values]
        elif g.kind == "text":
            values = [None if v is None else g.text(v) for v in values]
        elif pa.types.is_floating(t):
            values = [None if v is None else float(v) for v in values]
        arrays.append(pa.array(values, t))
    pq.write_table(pa.table(arrays, names=plan.columns), path)


# ---------------------------------------------------------------------- running the check

FORMATS = ("csv", "jsonl", "parquet")


@dataclass
class Outcome:
    """What the contract check made of a plan's files.

    :param refused: per format, why the conforming file was not accepted (empty: accepted)
    :param missed: ``(rule path, format, what the check said)`` of mutations it did not report
    :param unbreakable: ``(rule path, reason)`` of rules no file can break
    :param mutations: how many mutated files were checked
    """

    refused: dict[str, list[str]] = field(default_factory=dict)
    missed: list[tuple[str, str, str]] = field(default_factory=list)
    unbreakable: list[tuple[str, str]] = field(default_factory=list)
    mutations: int = 0


def check_plan(plan: Plan, contract: Any, folder: Path, formats: tuple[str, ...] = FORMATS,
               mutate: bool = True) -> Outcome:
    """Write the plan's conforming file and its mutations in each format and check them:
    a conforming file must pass with every rule passed or not checked; a mutated file must
    report its rule (broken for an error, a warning for a warning) or list it as not checked."""
    from safeload.contracts.check import check_source
    from safeload.errors import SafeloadError

    out = Outcome()
    folder.mkdir(parents=True, exist_ok=True)
    formats = tuple(f for f in formats if f in plan.formats)
    for fmt in formats:
        path = write(plan, plan.conforming(), folder / "conforming", fmt)
        try:
            report = check_source(contract, str(path))
        except SafeloadError as e:
            out.refused[fmt] = [f"refused: {e}"]
            continue
        why = [f"{c.klass} {c.kind} {c.column}: {c.detail}" for c in report.changes if c.klass != "compatible"]
        why += [f"{r.status} {r.rule.path}: {r.rule.describe()} {r.examples[:2]}"
                for r in report.rule_results if r.status not in ("passed", "not checked")]
        if why or not report.passed:
            out.refused[fmt] = why or [f"decision {report.decision}"]
    if not mutate:
        return out
    for m in plan.mutations():
        if m.rows is None:
            out.unbreakable.append((m.rule.path, m.reason))
            continue
        for fmt in formats:
            if fmt not in m.formats or out.refused.get(fmt):
                continue
            out.mutations += 1
            said = _mutation_report(plan, contract, m, folder / f"rule{m.index}", fmt)
            if said:
                out.missed.append((m.rule.path, fmt, said))
    return out


def _mutation_report(plan: Plan, contract: Any, m: Mutation, base: Path, fmt: str) -> str:
    """Empty when the check reported the mutated rule; else what it said."""
    from safeload.contracts.check import check_source
    from safeload.errors import SafeloadError

    path = write(plan, m.rows, base, fmt)
    try:
        report = check_source(contract, str(path))
    except SafeloadError as e:  # a row count broken by an empty file: the empty delivery is refused
        return "" if not m.rows and ("no rows" in str(e) or "is empty" in str(e)) else f"refused: {e}"
    [result] = [r for r in report.rule_results if r.rule.path == m.rule.path and r.rule.kind == m.rule.kind] or [None]
    if result is None:
        return "" if any(n.path.startswith(m.rule.path) for n in report.not_checked) else "rule not in the report"
    if result.status == "not checked":
        return ""
    want = "broken" if m.rule.severity == "error" else "warning"
    if result.status != want:
        return f"{result.status}, {result.offending} offending of {result.rows}"
    if want == "broken":
        named = [c for c in report.breaking if c.path == m.rule.path and c.column == (", ".join(m.rule.columns) or None)]
        if report.passed or not named:
            return f"broken but the report {'passed' if report.passed else 'names no column'}"
    return ""
