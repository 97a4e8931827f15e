"""PostgreSQL column types as plain data: parsing, comparison and value checks.

Pure Python, no Airflow, no database. Used by the contract parser, the drift diff
(widening vs narrowing) and the typed scan of text sources (does "12,5O" fit
``numeric(12,2)``?).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# canonical name -> aliases PostgreSQL accepts
_ALIASES = {
    "smallint": ("int2", "smallint"),
    "integer": ("int", "int4", "integer"),
    "bigint": ("int8", "bigint"),
    "numeric": ("numeric", "decimal"),
    "real": ("real", "float4"),
    "double precision": ("double precision", "float8", "double", "float"),
    "text": ("text",),
    "varchar": ("varchar", "character varying"),
    "char": ("char", "character", "bpchar"),
    "boolean": ("boolean", "bool"),
    "date": ("date",),
    "timestamp": ("timestamp", "timestamp without time zone"),
    "timestamptz": ("timestamptz", "timestamp with time zone"),
    "time": ("time", "time without time zone"),
    "uuid": ("uuid",),
    "jsonb": ("jsonb",),
    "json": ("json",),
}
_CANONICAL = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}

SUPPORTED_TYPES = tuple(_ALIASES)

_TYPE_RE = re.compile(r"^\s*([a-z][a-z0-9 ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")

_INT_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
_INT_ORDER = ("smallint", "integer", "bigint")
_TEXTUAL = ("char", "varchar", "text")


class TypeSyntaxError(ValueError):
    """A type string that is not a PostgreSQL type safeload understands."""


@dataclass(frozen=True)
class PgType:
    """A PostgreSQL column type, e.g. ``numeric(12,2)`` or ``varchar(40)``.

    :param name: canonical name (one of :data:`SUPPORTED_TYPES`)
    :param length: varchar/char length, or numeric precision
    :param scale: numeric scale
    """

    name: str
    length: int | None = None
    scale: int | None = None

    def __str__(self) -> str:
        if self.name == "numeric" and self.length is not None:
            return f"numeric({self.length},{self.scale or 0})"
        if self.length is not None:
            return f"{self.name}({self.length})"
        return self.name

    @property
    def sql(self) -> str:
        """The type as written in DDL (``character varying(40)`` style is not needed)."""
        return str(self)


#: The type of a column whose contract names the type of another system (``map<string,bigint>``)
#: and no logical type: every value fits. Never parsed from text.
ANY = PgType("any")


def parse_type(text: str) -> PgType:
    """Parse a PostgreSQL type name as written in a contract or by ``format_type()``.

    >>> parse_type("numeric(12, 2)")
    PgType(name='numeric', length=12, scale=2)
    """
    m = _TYPE_RE.match(str(text).lower())
    if not m:
        raise TypeSyntaxError(f"{text!r} is not a PostgreSQL type")
    base, length, scale = m.group(1).strip(), m.group(2), m.group(3)
    base = re.sub(r"\s+", " ", base)
    if base not in _CANONICAL:
        raise TypeSyntaxError(
            f"{text!r} is not a supported PostgreSQL type; use one of: {', '.join(SUPPORTED_TYPES)}"
        )
    name = _CANONICAL[base]
    n = int(length) if length is not None else None
    s = int(scale) if scale is not None else None
    if s is not None and name != "numeric":
        raise TypeSyntaxError(f"{text!r}: only numeric takes a scale")
    if n is not None and name not in ("numeric", "varchar", "char"):
        raise TypeSyntaxError(f"{text!r}: {name} takes no length")
    if name == "numeric" and n is not None:
        if not 1 <= n <= 1000 or (s or 0) > n:
            raise TypeSyntaxError(f"{text!r}: numeric needs 1 <= precision <= 1000 and scale <= precision")
        s = s or 0
    if name == "char" and n is None:
        n = 1
    return PgType(name, n, s)


def compare(old: PgType, new: PgType) -> str:
    """How a column's type moved from ``old`` (the contract) to ``new`` (the source).

    Returns ``"same"``, ``"widened"`` (every old value fits the new type) or
    ``"narrowed"`` (some old values may not fit, or the types are unrelated).
    """
    if old == new or old.name == "any":
        return "same"
    if old.name in _INT_ORDER and new.name in _INT_ORDER:
        return "widened" if _INT_ORDER.index(new.name) > _INT_ORDER.index(old.name) else "narrowed"
    if old.name in _INT_ORDER and new.name == "numeric":
        if new.length is None:
            return "widened"
        digits = len(str(_INT_RANGES[old.name][1]))
        return "widened" if new.length - (new.scale or 0) >= digits else "narrowed"
    if old.name in ("smallint", "integer") and new.name == "double precision":
        return "widened"
    if old.name == "real" and new.name == "double precision":
        return "widened"
    if old.name == "numeric" and new.name == "numeric":
        if new.length is None:
            return "widened"
        if old.length is None:
            return "narrowed"
        old_int, new_int = old.length - (old.scale or 0), new.length - (new.scale or 0)
        return "widened" if new_int >= old_int and (new.scale or 0) >= (old.scale or 0) else "narrowed"
    if old.name in _TEXTUAL and new.name in _TEXTUAL:
        if new.name == "text":
            return "widened"
        if old.name == "text":
            return "narrowed"
        return "widened" if (new.length or 0) >= (old.length or 0) else "narrowed"
    if old.name == "date" and new.name in ("timestamp", "timestamptz"):
        return "widened"
    if old.name == "timestamp" and new.name == "timestamptz":
        return "widened"
    if old.name == "json" and new.name == "jsonb":
        return "widened"
    return "narrowed"


# --------------------------------------------------------------------------- values

#: a timestamp (without time zone) holds UTC wall time: a value marked UTC (``Z``, ``+00:00``) is
#: that wall time, as ODCS's default format ``yyyy-MM-ddTHH:mm:ss.SSSZ`` writes it (decision 050)
_UTC = dt.timedelta(0)
_BOOL_TRUE = {"t", "true", "y", "yes", "on", "1"}
_BOOL_FALSE = {"f", "false", "n", "no", "off", "0"}
_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")
_UUID_RE = re.compile(r"^\{?[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}?$")
# Python's fromisoformat also reads ISO week dates (2024-W18-4) and any character between
# date and time (2024-05-02x10:00); PostgreSQL reads neither, so neither may pass the check
_PG_ISO = re.compile(r"^\s*\d{4}-?\d{2}-?\d{2}(?:[Tt ]|\s*$)")


#: contract types that a typed source's (Parquet's) string column may carry, each value
#: checked on the way: most writers put a UUID in a string, Parquet's own UUID type is rare
TEXT_CARRIES = ("uuid",)


def check_value(value: str, pg_type: PgType) -> str | None:
    """Check that a text value (as read from CSV) casts to ``pg_type`` like PostgreSQL would.

    Returns ``None`` when it does, else a short reason such as
    ``'"12,5O" is not a numeric(12,2)'``. It is deliberately a little stricter than
    PostgreSQL's input functions where those are lenient in surprising ways (it
    refuses ``NaN`` and ``Infinity`` for numeric columns of a contract).
    """
    name = pg_type.name
    if name == "any":
        return None
    try:
        if name in _INT_RANGES:
            if not _INT_RE.match(value):
                return f"{value!r} is not an {name}" if name == "integer" else f"{value!r} is not a {name}"
            lo, hi = _INT_RANGES[name]
            if not lo <= int(value) <= hi:
                return f"{value!r} is out of range for {name}"
            return None
        if name == "numeric":
            d = Decimal(value.strip())
            if not d.is_finite():
                return f"{value!r} is not a finite numeric"
            if pg_type.length is not None:
                scale = pg_type.scale or 0
                whole = int(abs(round(d, scale)))
                if whole and len(str(whole)) > pg_type.length - scale:
                    return f"{value!r} does not fit {pg_type} (too many integer digits)"
            return None
        if name in ("real", "double precision"):
            f = float(value)
            if f != f or f in (float("inf"), float("-inf")):
                return f"{value!r} is not a finite {name}"
            return None
        if name == "boolean":
            if value.strip().lower() not in _BOOL_TRUE | _BOOL_FALSE:
                return f"{value!r} is not a boolean"
            return None
        if name in ("date", "timestamp", "timestamptz") and not _PG_ISO.match(value):
            return f"{value!r} is not an ISO 8601 {name} (YYYY-MM-DD, then T or a space and the time)"
        if name == "date":
            dt.date.fromisoformat(value.strip())
            return None
        if name == "timestamp":
            ts = dt.datetime.fromisoformat(value.strip())
            if ts.tzinfo is not None and ts.utcoffset() != _UTC:
                return (f"{value!r} has a time zone offset other than UTC but the column is timestamp (without "
                        "time zone), which holds UTC wall time; send it in UTC (Z) or without an offset, or "
                        "declare the column timestamptz")
            return None
        if name == "timestamptz":
            ts = dt.datetime.fromisoformat(value.strip())
            if ts.tzinfo is None:
                return f"{value!r} has no time zone offset; timestamptz values must carry one"
            return None
        if name == "time":
            dt.time.fromisoformat(value.strip())
            return None
        if name == "uuid":
            return None if _UUID_RE.match(value.strip()) else f"{value!r} is not a uuid"
        if name in ("varchar", "char"):
            if pg_type.length is not None and len(value) > pg_type.length:
                return f"{value!r} is longer than {pg_type} ({len(value)} > {pg_type.length} characters)"
            return None
        if name in ("json", "jsonb"):
            import json

            json.loads(value)
            return None
        if "\x00" in value:
            return "text values cannot contain NUL bytes"
        return None
    except (ValueError, InvalidOperation, ArithmeticError):
        article = "an" if name[0] in "aeiou" else "a"
        return f"{value!r} is not {article} {pg_type}"



# ------------------------------------------------------------- compiled checkers

_FAST_INT = re.compile(r"^[+-]?\d{1,18}$")  # 18 digits always fit a bigint
_FAST_DEC = re.compile(r"^[+-]?(\d*)(?:\.(\d*))?$")
_CACHE_LIMIT = 4096


def make_checker(pg_type: PgType):
    """A fast equivalent of ``lambda v: check_value(v, pg_type)`` for scanning millions of values.

    Common shapes are accepted by a regular expression without building Python objects,
    and values already found valid are remembered (up to 4096 per column: enough for
    dates, codes and statuses, which repeat); anything unusual goes to
    :func:`check_value`, which gives the reason.
    """
    name = pg_type.name
    seen: set[str] = set()
    slow = check_value

    if name == "any":
        return lambda v: None
    if name in ("text",):
        return lambda v: None if "\x00" not in v else slow(v, pg_type)
    if name in ("varchar", "char") and pg_type.length is not None:
        limit = pg_type.length
        return lambda v: None if len(v) <= limit else slow(v, pg_type)
    if name == "bigint":
        fast = _FAST_INT.match
        return lambda v: None if fast(v) else slow(v, pg_type)
    if name == "numeric" and pg_type.length is not None:
        int_digits, scale = pg_type.length - (pg_type.scale or 0), pg_type.scale or 0
        match = _FAST_DEC.match

        def numeric(v: str) -> str | None:
            m = match(v)
            # fits without rounding: few enough integer digits, no more decimals than the scale
            if m and (m.group(1) or m.group(2)) and len(m.group(1).lstrip("0")) <= int_digits \
                    and len(m.group(2) or "") <= scale:
                return None
            return slow(v, pg_type)

        return numeric

    if name in ("date", "timestamp", "timestamptz"):
        parse = dt.date.fromisoformat if name == "date" else dt.datetime.fromisoformat
        want_tz = name == "timestamptz"

        def temporal(v: str) -> str | None:
            try:
                value = parse(v)
            except ValueError:
                return slow(v, pg_type)
            zoned = value.tzinfo is not None if name != "date" else want_tz
            if zoned != want_tz and not (zoned and value.utcoffset() == _UTC) or not _PG_ISO.match(v):
                return slow(v, pg_type)
            return None

        return temporal

    def cached(v: str) -> str | None:
        if v in seen:
            return None
        reason = slow(v, pg_type)
        if reason is None and len(seen) < _CACHE_LIMIT:
            seen.add(v)
        return reason

    return cached


# ------------------------------------------------------- vectorised pre-filter

_BOOL_SPELLINGS = tuple(sorted({s for w in _BOOL_TRUE | _BOOL_FALSE for s in (w, w.upper(), w.capitalize())}))


def fast_filter(pg_type: PgType) -> tuple[str, object] | None:
    """A test that a vectorised engine (Arrow) can run over a whole column to clear values.

    Every value the test accepts is one :func:`make_checker` accepts too; the converse
    need not hold. So a scan may clear the accepted values in bulk and hand only the rest
    to :func:`make_checker`, which has the last word: the findings are the same as
    checking every value one by one (tests/unit/contracts/test_scan_engines.py holds
    both to it). Returns ``None`` when there is no such test (every value goes to the
    checker), else one of:

    - ``("all", None)``: every value fits;
    - ``("no_nul", None)``: values without a NUL character fit;
    - ``("max_length", n)``: values of at most ``n`` characters fit;
    - ``("in", values)``: these exact strings fit;
    - ``("digits", n)``: 1 to ``n`` ASCII digits fit;
    - ``("decimal", (whole, scale))``: a sign, at most ``whole`` digits, a dot and at most
      ``scale`` digits fit (``None``: any number of digits);
    - ``("temporal", name)``: a valid date or timestamp in one of the ISO shapes of
      :func:`safeload.contracts.vector_filters.temporal_shapes` fits;
    - ``("regex", pattern)``: values matching the RE2 ``pattern`` (ASCII classes only) fit.

    :func:`safeload.contracts.vector_filters.arrow_clear` runs them.
    """
    name = pg_type.name
    if name == "any":
        return ("all", None)
    if name == "text":
        return ("no_nul", None)
    if name in ("varchar", "char"):
        return ("all", None) if pg_type.length is None else ("max_length", pg_type.length)
    if name in _INT_RANGES:
        # digits that always fit: 4 for smallint (max 32767), 9 for integer, 18 for bigint;
        # unsigned only: a digit test is several times cheaper than a regular expression,
        # and signed values are rare enough to go to the checker
        return ("digits", {"smallint": 4, "integer": 9, "bigint": 18}[name])
    if name == "numeric":
        if pg_type.length is None:
            return ("decimal", (None, None))
        scale = pg_type.scale or 0
        return ("decimal", (pg_type.length - scale, scale))
    if name in ("real", "double precision"):
        return ("decimal", (300, 300))
    if name == "boolean":
        return ("in", _BOOL_SPELLINGS)
    if name in ("date", "timestamp", "timestamptz"):
        return ("temporal", name)
    if name == "uuid":
        return ("regex", r"^\{?[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}?$")
    return None
