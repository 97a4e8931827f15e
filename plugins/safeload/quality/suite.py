"""Expectation suites in Great Expectations' own JSON format, read without importing GX.

A suite file is what ``gx.ExpectationSuite.to_json_dict()`` writes, so a suite can move
between safeload and plain GX unchanged:

.. code-block:: json

    {
      "name": "orders",
      "expectations": [
        {"type": "expect_column_values_to_not_be_null",
         "kwargs": {"column": "amount", "mostly": 0.99},
         "meta": {"why": "a few refunds arrive without an amount"},
         "severity": "warning"}
      ]
    }

``severity`` is GX's own field (``critical`` | ``warning`` | ``info``, default
``critical``; GX 1.x stores it on ``ExpectationConfiguration.severity``). It is also
accepted inside ``meta`` (``"meta": {"severity": "warning"}``), where suites written
before GX had the field keep it.

Parsing checks the shape GX would check later, and more: an unknown keyword of a type
the ``sql`` engine knows (``min_vale``) is an error here rather than silently ignored.
Every error names the file, the expectation's index and the fix.

Pure Python: no Airflow, no Great Expectations import.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from safeload.errors import SafeloadError

SEVERITIES = ("critical", "warning", "info")
DEFAULT_SEVERITY = "critical"


class SuiteError(SafeloadError):
    """An expectation suite is malformed (or cannot be read)."""


# Keyword arguments of the expectation types safeload's ``sql`` engine evaluates itself,
# taken from the GX 1.x expectation classes. Types not listed here are checked for shape
# only and handed to GX, which validates their arguments.
_RUNTIME = {"result_format", "catch_exceptions", "include_config", "meta", "notes", "description",
            "row_condition", "condition_parser", "batch_id", "windows"}
_MAP = {"column", "mostly"} | _RUNTIME
_BOUNDS = {"min_value", "max_value", "strict_min", "strict_max"}
KNOWN_KWARGS: dict[str, frozenset[str]] = {
    "expect_column_values_to_not_be_null": frozenset(_MAP),
    "expect_column_values_to_be_unique": frozenset(_MAP),
    "expect_column_values_to_be_between": frozenset(_MAP | _BOUNDS),
    "expect_column_values_to_be_in_set": frozenset(_MAP | {"value_set"}),
    "expect_column_values_to_not_be_in_set": frozenset(_MAP | {"value_set"}),
    "expect_column_values_to_match_regex": frozenset(_MAP | {"regex"}),
    "expect_column_values_to_be_of_type": frozenset(_MAP | {"type_"}),
    "expect_column_min_to_be_between": frozenset({"column"} | _BOUNDS | _RUNTIME),
    "expect_column_max_to_be_between": frozenset({"column"} | _BOUNDS | _RUNTIME),
    "expect_column_mean_to_be_between": frozenset({"column"} | _BOUNDS | _RUNTIME),
    "expect_column_sum_to_be_between": frozenset({"column"} | _BOUNDS | _RUNTIME),
    "expect_table_row_count_to_be_between": frozenset(_BOUNDS | _RUNTIME),
    "expect_compound_columns_to_be_unique": frozenset({"column_list", "mostly", "ignore_row_if"} | _RUNTIME),
    "expect_column_to_exist": frozenset({"column", "column_index"} | _RUNTIME),
}
_COLUMN_REQUIRED = {t for t, kw in KNOWN_KWARGS.items() if "column" in kw}
_IGNORE_ROW_IF = ("all_values_are_missing", "any_value_is_missing", "never")
_EXPECTATION_KEYS = {"type", "expectation_type", "kwargs", "meta", "severity", "notes", "description", "id",
                     "expectation_context", "rendered_content", "success_on_last_run"}
_SUITE_KEYS = {"name", "expectation_suite_name", "expectations", "meta", "id", "notes", "suite_parameters",
               "data_asset_type", "ge_cloud_id"}
_TYPE_RE = re.compile(r"^expect_[a-z0-9_]+$")
_DATE_RE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$")


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation, as GX stores it.

    :param type: the GX expectation type, e.g. ``expect_column_values_to_not_be_null``
    :param kwargs: its keyword arguments (``column``, ``mostly``, ``min_value``, ...)
    :param meta: free-form metadata, kept as given
    :param severity: ``critical`` (fails the gate), ``warning`` or ``info`` (reported)
    :param description: GX's optional description (rendered instead of the template)
    :param notes: GX's optional notes
    """

    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    severity: str = DEFAULT_SEVERITY
    description: str | None = None
    notes: Any = None

    @property
    def column(self) -> str | None:
        """The column of a column expectation, or None."""
        col = self.kwargs.get("column")
        return col if isinstance(col, str) else None

    @property
    def columns(self) -> list[str]:
        """Every column the expectation names (``column`` or ``column_list``)."""
        if self.column:
            return [self.column]
        return [c for c in self.kwargs.get("column_list") or [] if isinstance(c, str)]

    def label(self) -> str:
        """A short name for messages: ``expect_column_values_to_not_be_null(amount)``."""
        cols = self.columns
        return f"{self.type}({', '.join(cols)})" if cols else self.type

    def to_gx_dict(self) -> dict[str, Any]:
        """The expectation in GX's JSON format (what ``ExpectationConfiguration`` takes)."""
        d: dict[str, Any] = {"type": self.type, "kwargs": copy.deepcopy(self.kwargs),
                             "meta": copy.deepcopy(self.meta), "severity": self.severity}
        if self.description:
            d["description"] = self.description
        if self.notes is not None:
            d["notes"] = self.notes
        return d


@dataclass(frozen=True)
class Suite:
    """A parsed, validated expectation suite. Build it with :func:`load_suite`,
    :func:`parse_suite`, :func:`coerce_suite` or :func:`build_suite`."""

    name: str
    expectations: tuple[ExpectationSpec, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    source: str = "<memory>"

    def to_gx_dict(self) -> dict[str, Any]:
        """The suite in GX's JSON format (``gx.ExpectationSuite(**suite.to_gx_dict())`` reads it)."""
        return {"name": self.name, "expectations": [e.to_gx_dict() for e in self.expectations],
                "meta": copy.deepcopy(self.meta)}

    def __len__(self) -> int:
        return len(self.expectations)


# --------------------------------------------------------------------------- reading

def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file (GX JSON; ``.yaml``/``.yml`` files are read as YAML).

    :param path: path to the file
    :raises SuiteError: naming the file, the expectation index and the fix
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(f"{p}: suite file not found; check the path (relative paths are resolved "
                         "from the current directory)") from None
    except IsADirectoryError:
        raise SuiteError(f"{p}: is a directory; give the suite's JSON file") from None
    except UnicodeDecodeError as e:
        raise SuiteError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise SuiteError(f"{p}{where}: invalid YAML: {getattr(e, 'problem', None) or e}") from None
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise SuiteError(f"{p} line {e.lineno}, column {e.colno}: invalid JSON: {e.msg}; a suite is what "
                             "gx.ExpectationSuite.to_json_dict() writes") from None
    return parse_suite(doc, source=str(p), default_name=p.stem)


def parse_suite(doc: Any, source: str = "<memory>", default_name: str = "suite") -> Suite:
    """Validate a suite already read into Python objects (see :func:`load_suite`).

    :param doc: GX's suite dict, or just its list of expectations
    :param source: where it came from, for messages (a file name)
    :param default_name: the suite's name when ``doc`` has none
    :raises SuiteError: naming the source, the expectation index and the fix
    """
    if isinstance(doc, list):
        doc = {"name": default_name, "expectations": doc}
    if not isinstance(doc, dict):
        raise SuiteError(f"{source}: top level: a suite is a JSON object with 'name' and 'expectations' "
                         "(what gx.ExpectationSuite.to_json_dict() writes)")
    unknown = set(doc) - _SUITE_KEYS
    if unknown:
        raise SuiteError(f"{source}: {', '.join(sorted(unknown))}: unknown suite field; the fields are: "
                         "name, expectations, meta, notes, id")
    if "expectations" not in doc:
        raise SuiteError(f"{source}: expectations: required field is missing; add "
                         "\"expectations\": [{\"type\": \"expect_...\", \"kwargs\": {...}}]")
    name = doc.get("name", doc.get("expectation_suite_name", default_name))
    if not isinstance(name, str) or not name.strip():
        raise SuiteError(f"{source}: name: must be a non-empty string naming the suite")
    exps = doc["expectations"]
    if not isinstance(exps, list):
        raise SuiteError(f"{source}: expectations: must be a list of expectations, not {type(exps).__name__}")
    meta = doc.get("meta") or {}
    if not isinstance(meta, dict):
        raise SuiteError(f"{source}: meta: must be an object")
    specs = tuple(parse_expectation(e, source=source, index=i) for i, e in enumerate(exps))
    return Suite(name=name, expectations=specs, meta=meta, source=source)


def parse_expectation(doc: Any, source: str = "<memory>", index: int = 0) -> ExpectationSpec:
    """Validate one expectation dict of a suite.

    :param doc: the expectation, in GX's format (or an :class:`ExpectationSpec`, returned as is)
    :param source: where the suite came from, for messages
    :param index: the expectation's position in the suite, for messages
    """
    where = f"{source}: expectations[{index}]"

    def fail(msg: str) -> SuiteError:
        return SuiteError(f"{where}: {msg}")

    if isinstance(doc, ExpectationSpec):
        return doc
    if not isinstance(doc, dict):
        raise fail("each expectation is an object like {\"type\": \"expect_column_values_to_not_be_null\", "
                   "\"kwargs\": {\"column\": \"id\"}}")
    if "type" not in doc and "expectation_type" in doc:  # GX 0.x spelling
        doc = {**doc, "type": doc["expectation_type"]}
    etype = doc.get("type")
    if etype is None:
        raise fail("'type' is missing; name the GX expectation, e.g. \"type\": \"expect_column_values_to_not_be_null\"")
    if not isinstance(etype, str) or not _TYPE_RE.match(etype):
        raise fail(f"type {etype!r} is not a GX expectation type; they look like 'expect_column_values_to_be_between'")
    where = f"{source}: expectations[{index}] ({etype})"
    unknown = set(doc) - _EXPECTATION_KEYS
    if unknown:
        raise fail(f"{', '.join(sorted(unknown))}: unknown expectation field; the fields are: type, kwargs, meta, "
                   "severity, description, notes (arguments go inside 'kwargs')")
    kwargs = doc.get("kwargs") if doc.get("kwargs") is not None else {}
    if not isinstance(kwargs, dict):
        raise fail("kwargs: must be an object of the expectation's arguments, e.g. {\"column\": \"amount\"}")
    meta = doc.get("meta") if doc.get("meta") is not None else {}
    if not isinstance(meta, dict):
        raise fail("meta: must be an object")
    severity = _parse_severity(doc, meta, fail)
    _check_kwargs(etype, kwargs, fail)
    description = doc.get("description")
    if description is not None and not isinstance(description, str):
        raise fail("description: must be a string")
    return ExpectationSpec(type=etype, kwargs=dict(kwargs), meta=dict(meta), severity=severity,
                           description=description, notes=doc.get("notes"))


def _parse_severity(doc: dict, meta: dict, fail) -> str:
    top, in_meta = doc.get("severity"), meta.get("severity")
    values = []
    for where, value in (("severity", top), ("meta.severity", in_meta)):
        if value is None:
            continue
        if not isinstance(value, str) or value.strip().lower() not in SEVERITIES:
            raise fail(f"{where}: {value!r} is not a severity; use one of {', '.join(SEVERITIES)}")
        values.append(value.strip().lower())
    if len(set(values)) > 1:
        raise fail(f"severity {top!r} and meta.severity {in_meta!r} disagree; keep one (GX's own field is "
                   "the top-level 'severity')")
    return values[0] if values else DEFAULT_SEVERITY


def _is_param(value: Any) -> bool:
    return isinstance(value, dict) and "$PARAMETER" in value


def _check_bound(name: str, value: Any, fail) -> None:
    if value is None or _is_param(value) or isinstance(value, (dt.date, Decimal)):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise fail(f"kwargs.{name}: {value!r} is not a number or an ISO date/time")
    if isinstance(value, str) and comparable(value) is value:
        raise fail(f"kwargs.{name}: {value!r} is neither a number nor an ISO date or date-time "
                   "(GX compares bounds as numbers or dates); write e.g. 100 or \"2024-05-01\"")


def _check_kwargs(etype: str, kwargs: dict, fail) -> None:  # noqa: C901
    known = KNOWN_KWARGS.get(etype)
    if known is None:
        return  # GX validates the arguments of types it alone evaluates
    unknown = set(kwargs) - known
    if unknown:
        allowed = sorted(known - _RUNTIME) + ["row_condition", "result_format"]
        raise fail(f"kwargs.{sorted(unknown)[0]}: unknown argument of {etype}; its arguments are: "
                   f"{', '.join(allowed)}")
    if etype in _COLUMN_REQUIRED:
        col = kwargs.get("column")
        if not isinstance(col, str) or not col:
            raise fail("kwargs.column: required; name the column, e.g. \"column\": \"amount\"")
    if "mostly" in kwargs:
        m = kwargs["mostly"]
        if not _is_param(m) and (isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= 1):
            raise fail(f"kwargs.mostly: {m!r} must be a fraction between 0 and 1, e.g. 0.99 for 'at most 1% "
                       "unexpected'")
    for flag in ("strict_min", "strict_max"):
        if flag in kwargs and not isinstance(kwargs[flag], bool) and not _is_param(kwargs[flag]):
            raise fail(f"kwargs.{flag}: must be true or false, not {kwargs[flag]!r}")
    if {"min_value", "max_value"} & set(known):
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        _check_bound("min_value", lo, fail)
        _check_bound("max_value", hi, fail)
        if etype == "expect_column_values_to_be_between" and lo is None and hi is None:
            raise fail("give min_value and/or max_value (both are missing or null)")
        clo, chi = comparable(lo), comparable(hi)
        if clo is not None and chi is not None and not _is_param(lo) and not _is_param(hi):
            try:
                if clo > chi:
                    raise fail(f"min_value {lo!r} is greater than max_value {hi!r}; swap them")
            except TypeError:
                raise fail(f"min_value {lo!r} and max_value {hi!r} are not comparable (a number and a date?)") from None
    if etype in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        vs = kwargs.get("value_set")
        if not _is_param(vs) and not isinstance(vs, (list, tuple, set, frozenset)):
            raise fail("kwargs.value_set: required; give the list of values, e.g. \"value_set\": [\"EUR\", \"USD\"]")
    if etype == "expect_column_values_to_match_regex":
        if not isinstance(kwargs.get("regex"), str):
            raise fail("kwargs.regex: required; give a PostgreSQL regular expression, e.g. \"regex\": \"^[A-Z]{3}$\"")
    if etype == "expect_column_values_to_be_of_type":
        if not isinstance(kwargs.get("type_"), str):
            raise fail("kwargs.type_: required; give the type as GX reports it on PostgreSQL, e.g. "
                       "\"type_\": \"NUMERIC(12, 2)\" or \"TEXT\"")
    if etype == "expect_compound_columns_to_be_unique":
        cl = kwargs.get("column_list")
        if not isinstance(cl, list) or not cl or not all(isinstance(c, str) and c for c in cl):
            raise fail("kwargs.column_list: required; give the columns, e.g. \"column_list\": [\"order_id\", \"line\"]")
        if len(cl) < 2:  # GX itself refuses it when the suite runs ("at least two columns")
            raise fail(f"kwargs.column_list: {cl!r} names one column; a compound key needs at least two. For one "
                       "column use expect_column_values_to_be_unique")
        iri = kwargs.get("ignore_row_if", "all_values_are_missing")
        if iri not in _IGNORE_ROW_IF:
            raise fail(f"kwargs.ignore_row_if: {iri!r} is not one of {', '.join(_IGNORE_ROW_IF)}")
    if etype == "expect_column_to_exist":
        ci = kwargs.get("column_index")
        if ci is not None and (isinstance(ci, bool) or not isinstance(ci, int)):
            raise fail(f"kwargs.column_index: {ci!r} must be an integer position (0 = first column)")


def comparable(value: Any) -> Any:
    """Coerce a bound the way GX 1.x does (its pydantic ``Comparable`` field: float, then
    date, then datetime). Returns ``value`` itself when it is none of those.

    :param value: a ``min_value``/``max_value`` as written in a suite

    >>> comparable(5), comparable("2024-05-01"), comparable("2024-05-01T10:00:00")
    (5.0, datetime.date(2024, 5, 1), datetime.datetime(2024, 5, 1, 10, 0))
    """
    if value is None or isinstance(value, (dt.date, dt.datetime)):
        return value
    if isinstance(value, (bool, int, float, Decimal)):
        return float(value)
    if isinstance(value, str):
        s = value.strip()
        try:
            return float(s)
        except ValueError:
            pass
        if _DATE_RE.match(s):
            y, m, d = (int(x) for x in s.split("-"))
            try:
                return dt.date(y, m, d)
            except ValueError:
                return value
        try:
            return dt.datetime.fromisoformat(s)
        except ValueError:
            return value
    return value


# --------------------------------------------------------------------------- coercion

def coerce_suite(obj: Any, name: str | None = None) -> Suite:
    """Turn what a caller has into a :class:`Suite`.

    :param obj: a :class:`Suite`; a path to a suite file; a JSON string; GX's suite dict;
        a list of expectation dicts (or :class:`ExpectationSpec`); or a
        ``gx.ExpectationSuite`` (anything with ``to_json_dict()``)
    :param name: the suite's name when ``obj`` does not carry one
    """
    if isinstance(obj, Suite):
        return obj
    if isinstance(obj, Path):
        return load_suite(obj)
    if isinstance(obj, str):
        text = obj.strip()
        if text.startswith(("{", "[")):
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as e:
                raise SuiteError(f"<suite string> line {e.lineno}, column {e.colno}: invalid JSON: {e.msg}") from None
            return parse_suite(doc, source="<suite string>", default_name=name or "suite")
        return load_suite(obj)
    if hasattr(obj, "to_json_dict") and not isinstance(obj, dict):
        doc = obj.to_json_dict()
        return parse_suite(doc, source=f"<gx suite {doc.get('name')}>")
    if isinstance(obj, (list, tuple)):
        return parse_suite(list(obj), default_name=name or "suite")
    if isinstance(obj, dict):
        return parse_suite(obj, default_name=name or "suite")
    raise SuiteError(f"a suite is a path, a GX suite dict, a list of expectations or a Suite, not {type(obj).__name__}")


def build_suite(suite_path: Any = None, contract_path: Any = None, *, name: str | None = None) -> Suite:
    """One suite from a contract's column rules plus a suite file that adds more.

    The contract is the source of truth: its expectations come first and cannot be
    dropped or relaxed by the suite (see :func:`safeload.contracts.expectations.merge`).

    :param suite_path: a suite (anything :func:`coerce_suite` takes), or None
    :param contract_path: a contract YAML path or a parsed
        :class:`~safeload.contracts.model.Contract`, or None
    :param name: the merged suite's name (default: the suite's, else the contract's dataset)
    :raises SuiteError: when neither is given, or either is malformed
    """
    if suite_path is None and contract_path is None:
        raise SuiteError("no expectations: give a suite file and/or a contract")
    suite = coerce_suite(suite_path) if suite_path is not None else None
    if contract_path is None:
        assert suite is not None
        return suite if name is None else Suite(name, suite.expectations, suite.meta, suite.source)
    from safeload.contracts.expectations import expectations_from_contract, merge
    from safeload.contracts.model import Contract
    from safeload.contracts.files import load_contract

    contract = contract_path if isinstance(contract_path, Contract) else load_contract(contract_path)
    contract_exps = expectations_from_contract(contract)
    suite_exps = [e.to_gx_dict() for e in suite.expectations] if suite else []
    merged = merge(contract_exps, suite_exps)
    source = f"{contract.path} + {suite.source}" if suite else contract.path
    doc = {"name": name or (suite.name if suite else contract.dataset), "expectations": merged,
           "meta": dict(suite.meta) if suite else {}}
    return parse_suite(doc, source=source)
