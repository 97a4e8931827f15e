"""Read an Open Data Contract Standard (ODCS) v3 document as a safeload :class:`Contract`.

safeload's own YAML stays the source of truth (decision 004); this reader lets a team
point safeload at the ODCS contract it already has. :func:`safeload.contracts.files.load_contract`
calls it when a document has ``apiVersion`` or ``kind``, so every operator and
``safeload contract check`` accept either format.

What maps onto what (ODCS v3.0.0 to v3.1.0):

=======================================  ===============================================
ODCS                                     safeload
=======================================  ===============================================
``schema[i].name``                       ``dataset``
``schema[i].physicalName``               ``target.table`` (qualified with the ``schema``
                                         of the one ``postgres``/``postgresql`` server)
``version``                              ``version``
``customProperties: owner``, else        ``owner``
``team.name`` (v3.1), else the ``team``
member whose ``role`` is ``owner``
``description.purpose``, else            ``description``
``schema[i].description``
``customProperties: safeloadSchemaPolicy``  ``schema_policy`` (fail | warn | evolve)
``properties[j].physicalName``/``name``  column name
``physicalType`` (PostgreSQL terms),     column type
else ``logicalType`` (+ options)
``required`` / ``primaryKey`` / ``unique``  ``nullable`` (false when required or key) /
                                         ``primary_key`` / ``unique``
``partitioned``/``partitionKeyPosition``  ``target.partition_column`` (one column)
``logicalTypeOptions.minimum/maximum``   ``min`` / ``max`` (exclusive bounds made
(and ``exclusive*``), ``pattern``        inclusive where the type is exact), ``pattern``
quality ``validValues`` (v3.0 ``rule``)  ``allowed_values``
or ``invalidValues`` (v3.1 ``metric``)
quality ``nullValues`` = 0               ``nullable: false``
quality ``duplicateValues`` = 0          ``unique: true``
=======================================  ===============================================

Anything safeload cannot enforce is *reported*, never dropped in silence: a malformed
document raises :class:`ContractError` (file, field path such as
``schema[0].properties[3].physicalType``, the rule and the fix); a well-formed rule that
safeload does not check (SQL and custom quality rules, row counts, thresholds other
than zero, ``multipleOf``, ...) is kept out of the contract with a warning, logged and
listed in ``contract.extra["warnings"]``. Pure metadata (tags, servers, SLAs, roles,
support channels, pricing, classification, examples, ...) is read past without a word.

Pure Python: no Airflow import.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from decimal import Decimal
from typing import Any

from safeload.contracts.model import POLICIES, Column, Contract
from safeload.contracts.types import PgType, TypeSyntaxError, parse_type
from safeload.errors import ContractError
from safeload.identifiers import IdentifierError, validate_identifier, validate_table_name

log = logging.getLogger(__name__)

#: apiVersion values read. v2 documents have another structure (``dataset``/``columns``).
API_VERSIONS = ("v3.0.0", "v3.0.1", "v3.0.2", "v3.1.0")
#: The top-level custom property that sets the drift policy.
POLICY_PROPERTY = "safeloadSchemaPolicy"
#: The top-level custom property that names the owning team (ODCS's documented workaround).
OWNER_PROPERTY = "owner"

_TOP_KEYS = {
    "version", "kind", "apiVersion", "id", "name", "tenant", "tags", "status", "servers", "dataProduct",
    "description", "domain", "schema", "support", "price", "team", "roles", "slaDefaultElement",
    "slaProperties", "authoritativeDefinitions", "customProperties", "contractCreatedTs",
}
_ELEMENT_KEYS = {"id", "name", "physicalType", "description", "businessName", "authoritativeDefinitions", "tags",
                 "customProperties"}
_OBJECT_KEYS = _ELEMENT_KEYS | {"logicalType", "physicalName", "dataGranularityDescription", "properties",
                                "relationships", "quality"}
_PROPERTY_KEYS = _ELEMENT_KEYS | {
    "primaryKey", "primaryKeyPosition", "logicalType", "logicalTypeOptions", "physicalType", "physicalName",
    "required", "unique", "partitioned", "partitionKeyPosition", "classification", "encryptedName",
    "transformSourceObjects", "transformLogic", "transformDescription", "examples", "criticalDataElement",
    "relationships", "quality", "items", "properties",
}
_OPERATORS = ("mustBe", "mustNotBe", "mustBeGreaterThan", "mustBeGreaterOrEqualTo", "mustBeLessThan",
              "mustBeLessOrEqualTo", "mustBeBetween", "mustNotBeBetween")
_QUALITY_KEYS = {
    "id", "name", "description", "type", "rule", "metric", "arguments", "validValues", "unit", "dimension",
    "method", "severity", "businessImpact", "schedule", "scheduler", "tags", "customProperties",
    "authoritativeDefinitions", "query", "engine", "implementation", *_OPERATORS,
}
_LOGICAL_TYPES = ("string", "date", "timestamp", "time", "number", "integer", "object", "array", "boolean")
# logicalTypeOptions keys ODCS defines per logical type; safeload uses some, warns about the rest
_OPTION_KEYS = {
    "string": {"minLength", "maxLength", "pattern", "format"},
    "date": {"format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "timestamp": {"format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "timezone",
                  "defaultTimezone"},
    "time": {"format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "timezone", "defaultTimezone"},
    "integer": {"multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "format"},
    "number": {"multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "format"},
    "object": {"maxProperties", "minProperties", "required"},
    "array": {"maxItems", "minItems", "uniqueItems"},
    "boolean": set(),
}
_INTEGER_FORMATS = {"i8": "smallint", "u8": "smallint", "i16": "smallint", "u16": "integer", "i32": "integer",
                    "u32": "bigint", "i64": "bigint", "u64": "numeric(20,0)", "i128": "numeric(39,0)",
                    "u128": "numeric(39,0)"}
# physical type spellings other tools write for PostgreSQL columns
_PG_SPELLINGS = {"serial": "integer", "serial4": "integer", "bigserial": "bigint", "serial8": "bigint",
                 "smallserial": "smallint", "serial2": "smallint",
                 "timestamp without time zone": "timestamp", "timestamp with time zone": "timestamptz"}


class _Reader:
    """One pass over one document: knows the file for messages and collects warnings."""

    def __init__(self, source: str):
        self.source = source
        self.warnings: list[str] = []

    def fail(self, where: str, msg: str) -> ContractError:
        return ContractError(f"{self.source}: {where}: {msg}")

    def warn(self, where: str, msg: str) -> None:
        self.warnings.append(f"{where}: {msg}")

    def keys(self, node: dict[str, Any], allowed: set[str], where: str, what: str) -> None:
        unknown = sorted(k for k in node if k not in allowed)
        if unknown:
            key = str(unknown[0])
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"the {what} fields are: {', '.join(sorted(allowed))}"
            raise self.fail(f"{where}.{key}", f"not an ODCS v3 {what} field; {hint} (an unknown field "
                                              "could hide a rule, so it is refused)")

    def mapping(self, node: Any, where: str, what: str) -> dict[str, Any]:
        if not isinstance(node, dict):
            raise self.fail(where, f"must be a mapping ({what}), not {type(node).__name__}")
        return node

    def boolean(self, node: dict[str, Any], key: str, where: str) -> bool | None:
        value = node.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail(f"{where}.{key}", f"must be true or false, not {value!r}")
        return value


def is_odcs(doc: Any) -> bool:
    """Whether a parsed YAML document is meant to be ODCS (it names an ``apiVersion`` or ``kind``)."""
    return isinstance(doc, dict) and ("apiVersion" in doc or "kind" in doc)


def parse_odcs(doc: Any, source: str = "<memory>", object_name: str | None = None) -> Contract:
    """Map an ODCS v3 document onto a :class:`Contract`.

    :param doc: the document as read by ``yaml.safe_load``
    :param source: the file name, for messages and ``Contract.path``
    :param object_name: which ``schema[]`` object to read when there are several
        (``load_contract("contract.odcs.yaml#orders")`` passes it)
    :raises ContractError: naming the file, the field path, the rule broken and the fix
    """
    r = _Reader(source)
    doc = r.mapping(doc, "top level", "an ODCS document")
    r.keys(doc, _TOP_KEYS, "top level", "top-level")
    for key in ("apiVersion", "kind", "id", "version", "status"):
        if key not in doc:
            raise r.fail(key, f"required by ODCS v3 and missing; add '{key}:' at the top level")
    if doc["kind"] != "DataContract":
        raise r.fail("kind", f"{doc['kind']!r} is not read; an ODCS contract has 'kind: DataContract'")
    api = str(doc["apiVersion"])
    if api not in API_VERSIONS:
        hint = ("ODCS v2 (dataset/columns) is not read; migrate the file to v3 (columns became "
                "schema[].properties[])" if api.startswith("v2") else f"use one of {', '.join(API_VERSIONS)}")
        raise r.fail("apiVersion", f"{api!r} is not an ODCS version safeload reads; {hint}")

    custom = _custom_properties(r, doc.get("customProperties"), "customProperties")
    policy = custom.get(POLICY_PROPERTY, "fail")
    if policy not in POLICIES:
        raise r.fail(f"customProperties[{POLICY_PROPERTY}]",
                     f"{policy!r} is not a policy; use one of {', '.join(POLICIES)}")

    index, obj = _pick_object(r, doc.get("schema"), object_name)
    where = f"schema[{index}]"
    r.keys(obj, _OBJECT_KEYS, where, "schema object")
    dataset = obj["name"]
    if obj.get("logicalType", "object") != "object":
        raise r.fail(f"{where}.logicalType", f"{obj['logicalType']!r}: a schema object is 'object'")
    for q, rule in enumerate(_quality_list(r, obj.get("quality"), f"{where}.quality")):
        r.keys(rule, _QUALITY_KEYS, f"{where}.quality[{q}]", "quality rule")
        r.warn(f"{where}.quality[{q}]", f"table-level rule {_rule_label(rule)} is not checked by safeload; "
                                        "express it in a quality suite (safeload gate) if it must hold")
    if obj.get("relationships"):
        r.warn(f"{where}.relationships", "relationships (foreign keys) are not checked by safeload")

    props = obj.get("properties")
    if not isinstance(props, list) or not props:
        raise r.fail(f"{where}.properties", "must be a non-empty list of properties (the columns), each with "
                                             "'name' and 'physicalType' or 'logicalType'")
    columns: list[Column] = []
    partitioned: list[str] = []
    seen: set[str] = set()
    for j, prop in enumerate(props):
        column, is_partition = _column(r, prop, f"{where}.properties[{j}]")
        if column.name in seen:
            raise r.fail(f"{where}.properties[{j}].name", f"column {column.name!r} is declared twice; remove one")
        seen.add(column.name)
        columns.append(column)
        if is_partition:
            partitioned.append(column.name)
    if len(partitioned) > 1:
        raise r.fail(f"{where}.properties", f"{', '.join(partitioned)} are all partitioned; safeload overwrites "
                                            "one partition column per load, so mark only that one 'partitioned: true'")

    return Contract(
        dataset=str(dataset), version=str(doc["version"]), owner=_owner(r, doc, custom),
        columns=tuple(columns), table=_table(r, doc, obj, where),
        partition_column=partitioned[0] if partitioned else None, schema_policy=policy,
        description=_description(r, doc, obj), path=source,
        extra={"format": "odcs", "apiVersion": api, "id": str(doc["id"]), "warnings": list(r.warnings)},
    )


def _pick_object(r: _Reader, schema: Any, object_name: str | None) -> tuple[int, dict[str, Any]]:
    if not isinstance(schema, list) or not schema:
        raise r.fail("schema", "missing or empty; a contract safeload checks describes one table: "
                               "'schema: [{name: orders, properties: [...]}]'")
    objects = []
    for i, obj in enumerate(schema):
        obj = r.mapping(obj, f"schema[{i}]", "a schema object with 'name' and 'properties'")
        if not isinstance(obj.get("name"), str) or not obj["name"].strip():
            raise r.fail(f"schema[{i}].name", "required: a non-empty string naming the object (the table)")
        objects.append(obj)
    names = [o["name"] for o in objects]
    if object_name is not None:
        if object_name not in names:
            raise r.fail("schema", f"has no object named {object_name!r}; it has: {', '.join(names)}")
        i = names.index(object_name)
        return i, objects[i]
    if len(objects) > 1:
        example = f"{os.path.basename(r.source)}#{names[0]}"
        raise r.fail("schema", f"describes {len(objects)} objects ({', '.join(names)}); a safeload contract is one "
                               f"table: append '#<name>' to the contract path, e.g. '{example}'")
    return 0, objects[0]


def _column(r: _Reader, prop: Any, where: str) -> tuple[Column, bool]:
    prop = r.mapping(prop, where, "a property with 'name' and a type")
    if "name" in prop:
        where = f"{where} ({prop['name']})"
    r.keys(prop, _PROPERTY_KEYS, where, "property")
    if "name" not in prop:
        raise r.fail(where, "'name' is missing; every property needs one")
    raw_name = prop.get("physicalName") or prop["name"]
    try:
        name = validate_identifier(str(raw_name), "column name")
    except IdentifierError as e:
        raise r.fail(f"{where}.{'physicalName' if prop.get('physicalName') else 'name'}", str(e)) from None
    for flag in ("primaryKey", "required", "unique", "partitioned", "criticalDataElement"):
        r.boolean(prop, flag, where)
    primary_key = bool(prop.get("primaryKey"))
    # A primary key is NOT NULL in SQL whatever 'required' says; ODCS writers commonly emit
    # 'required: false' as the default next to 'primaryKey: true', so that is not an error.
    nullable = not (prop.get("required") or primary_key)
    unique = bool(prop.get("unique"))

    logical = prop.get("logicalType")
    if logical is not None and logical not in _LOGICAL_TYPES:
        raise r.fail(f"{where}.logicalType", f"{logical!r} is not an ODCS logical type; use one of "
                                             f"{', '.join(_LOGICAL_TYPES)}")
    options = prop.get("logicalTypeOptions") or {}
    options = r.mapping(options, f"{where}.logicalTypeOptions", "options of the logical type")
    if options and logical is None:
        raise r.fail(f"{where}.logicalTypeOptions", "needs a 'logicalType' to say which options apply")
    if logical is not None:
        r.keys(options, _OPTION_KEYS[logical], f"{where}.logicalTypeOptions", f"{logical} option")

    pg_type = _type(r, prop, logical, options, where)
    if prop.get("properties") or prop.get("items"):
        if pg_type.name not in ("json", "jsonb"):
            raise r.fail(where, f"nested {'properties' if prop.get('properties') else 'items'} cannot be a "
                                f"{pg_type} column; flatten them into columns, or give 'physicalType: jsonb'")
        r.warn(where, "the nested structure inside the json column is not checked by safeload")
    lo, hi = _bounds(r, options, pg_type, where)
    pattern = options.get("pattern")
    if pattern is not None and not isinstance(pattern, str):
        raise r.fail(f"{where}.logicalTypeOptions.pattern", "must be a regular expression string")
    _warn_unused_options(r, options, logical, pg_type, prop, where)

    allowed = None
    for q, rule in enumerate(_quality_list(r, prop.get("quality"), f"{where}.quality")):
        qwhere = f"{where}.quality[{q}]"
        r.keys(rule, _QUALITY_KEYS, qwhere, "quality rule")
        kind, value = _column_rule(r, rule, qwhere)
        if kind == "allowed_values":
            allowed = value
        elif kind == "pattern":
            pattern = value
        elif kind == "not_null":
            nullable = False
        elif kind == "unique":
            unique = True
    if prop.get("relationships"):
        r.warn(f"{where}.relationships", "relationships (foreign keys) are not checked by safeload")
    if lo is not None and hi is not None:
        try:
            if lo > hi:
                raise r.fail(f"{where}.logicalTypeOptions", f"minimum {lo!r} is greater than maximum {hi!r}")
        except TypeError:
            raise r.fail(f"{where}.logicalTypeOptions", "minimum and maximum must be comparable values") from None

    position = prop.get("partitionKeyPosition")
    if position is not None and not isinstance(position, int):
        raise r.fail(f"{where}.partitionKeyPosition", f"must be an integer, not {position!r}")
    is_partition = bool(prop.get("partitioned")) or (position is not None and position >= 1)
    return Column(name=name, type=pg_type, nullable=nullable, primary_key=primary_key, unique=unique,
                  description=str(prop.get("description", "")), allowed_values=allowed, min=lo, max=hi,
                  pattern=pattern), is_partition


def _type(r: _Reader, prop: dict[str, Any], logical: str | None, options: dict[str, Any], where: str) -> PgType:
    physical = prop.get("physicalType")
    if physical is not None:
        text = re.sub(r"\[(\d+)\]$", r"(\1)", str(physical).strip().lower())  # varchar[40], as some exporters write
        text = _PG_SPELLINGS.get(text, text)
        try:
            return parse_type(text)
        except TypeSyntaxError as e:
            if logical is None:
                raise r.fail(f"{where}.physicalType", f"{e}; write the PostgreSQL type (e.g. 'numeric(12,2)', "
                                                      "'varchar(40)') or add a 'logicalType'") from None
            fallback = _logical_type(r, logical, options, where)
            r.warn(f"{where}.physicalType", f"{physical!r} is not a PostgreSQL type safeload knows; the column is "
                                            f"checked as {fallback} (from logicalType {logical!r})")
            return fallback
    if logical is None:
        raise r.fail(where, "has neither 'physicalType' nor 'logicalType'; give the PostgreSQL type as "
                            "'physicalType: bigint' (or at least a logicalType)")
    return _logical_type(r, logical, options, where)


def _logical_type(r: _Reader, logical: str, options: dict[str, Any], where: str) -> PgType:
    fmt = options.get("format")
    if logical == "string":
        if fmt == "uuid":
            return PgType("uuid")
        n = options.get("maxLength")
        if n is not None:
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise r.fail(f"{where}.logicalTypeOptions.maxLength", f"must be a positive integer, not {n!r}")
            return PgType("varchar", n)
        return PgType("text")
    if logical == "integer":
        # ODCS documents i32 as the default format; ids wider than 2^31 are common and a wrong
        # 'integer' would reject them all, so an integer without a format is checked as bigint.
        if fmt is not None and fmt not in _INTEGER_FORMATS:
            raise r.fail(f"{where}.logicalTypeOptions.format", f"{fmt!r} is not an ODCS integer format; use one "
                                                               f"of {', '.join(_INTEGER_FORMATS)}")
        return parse_type(_INTEGER_FORMATS.get(fmt, "bigint"))
    if logical == "number":
        if fmt not in (None, "f32", "f64"):
            raise r.fail(f"{where}.logicalTypeOptions.format", f"{fmt!r} is not an ODCS number format; use f32 or f64")
        return PgType({"f32": "real", "f64": "double precision"}.get(fmt, "numeric"))
    if logical == "boolean":
        return PgType("boolean")
    if logical == "date":
        return PgType("date")
    if logical == "timestamp":
        return PgType("timestamptz" if options.get("timezone") else "timestamp")
    if logical == "time":
        return PgType("time")
    r.warn(where, f"logicalType {logical!r} is checked as a jsonb column (valid JSON), not its inner structure")
    return PgType("jsonb")


def _bounds(r: _Reader, options: dict[str, Any], pg_type: PgType, where: str) -> tuple[Any, Any]:
    """Inclusive ``(min, max)`` from ``minimum``/``maximum`` and the exclusive variants.

    v3.0 writes ``exclusiveMinimum: true`` next to ``minimum``; v3.1 writes the bound itself
    (``exclusiveMinimum: 0``). An exclusive bound becomes an exact inclusive one for
    integers and scaled numerics (``> 0`` is ``>= 0.01`` for ``numeric(12,2)``); for other
    types it is kept inclusive and a warning says the boundary value itself passes.
    """
    step: Any = None
    if pg_type.name in ("smallint", "integer", "bigint"):
        step = 1
    elif pg_type.name == "numeric" and pg_type.scale is not None:
        step = Decimal(1).scaleb(-pg_type.scale)

    def bound(inclusive_key: str, exclusive_key: str, sign: int) -> Any:
        value, exclusive = options.get(inclusive_key), options.get(exclusive_key)
        if isinstance(exclusive, bool):  # v3.0: a flag on the inclusive bound
            exclusive_value = value if exclusive else None
            if exclusive:
                value = None
        else:  # v3.1: the bound itself
            exclusive_value = exclusive
        for key, v in ((inclusive_key, value), (exclusive_key, exclusive_value)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, str, Decimal))):
                raise r.fail(f"{where}.logicalTypeOptions.{key}", f"must be a number or a date string, not {v!r}")
        if exclusive_value is None:
            return value
        if value is not None:
            raise r.fail(f"{where}.logicalTypeOptions", f"gives both {inclusive_key} and {exclusive_key}; keep one")
        if step is not None and isinstance(exclusive_value, (int, float)):
            moved = Decimal(str(exclusive_value)) + sign * step
            return int(moved) if step == 1 else moved
        r.warn(f"{where}.logicalTypeOptions.{exclusive_key}",
               f"checked as inclusive for {pg_type}: the value {exclusive_value!r} itself passes")
        return exclusive_value

    return bound("minimum", "exclusiveMinimum", +1), bound("maximum", "exclusiveMaximum", -1)


def _warn_unused_options(r: _Reader, options: dict[str, Any], logical: str | None, pg_type: PgType,
                         prop: dict[str, Any], where: str) -> None:
    used_for_type = "physicalType" not in prop or not prop.get("physicalType")
    for key, value in options.items():
        if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern"):
            continue
        if key == "maxLength" and (used_for_type or pg_type.length == value):
            continue
        if key == "format" and logical in ("integer", "number") and used_for_type:
            continue
        if key == "format" and logical == "string" and value == "uuid" and (used_for_type or pg_type.name == "uuid"):
            continue
        if key == "timezone" and logical in ("timestamp", "time") and (
                used_for_type or (pg_type.name == "timestamptz") == bool(value)):
            continue
        if key in ("defaultTimezone",):
            continue
        r.warn(f"{where}.logicalTypeOptions.{key}", f"{key}: {value!r} is not checked by safeload"
               + (f" (the column is checked as {pg_type})" if key in ("format", "maxLength", "timezone") else ""))


def _quality_list(r: _Reader, node: Any, where: str) -> list[dict[str, Any]]:
    if node is None:
        return []
    if not isinstance(node, list):
        raise r.fail(where, "must be a list of quality rules")
    return [r.mapping(rule, f"{where}[{i}]", "a quality rule") for i, rule in enumerate(node)]


def _rule_label(rule: dict[str, Any]) -> str:
    kind = rule.get("type") or ("library" if rule.get("metric") or rule.get("rule") else "?")
    name = rule.get("metric") or rule.get("rule") or rule.get("engine") or rule.get("name") or ""
    return f"{kind}{' ' + repr(name) if name else ''}"


def _zero_tolerance(rule: dict[str, Any]) -> bool:
    """Whether the thresholds (if any) demand no offending row at all."""
    given = {k: rule[k] for k in _OPERATORS if k in rule}
    if not given:
        return True
    percent = rule.get("unit") == "percent"
    return (given == {"mustBe": 0} or given == {"mustBeLessOrEqualTo": 0}
            or (given == {"mustBeLessThan": 1} and not percent))


def _column_rule(r: _Reader, rule: dict[str, Any], where: str) -> tuple[str | None, Any]:
    """What one property-level quality rule means for the contract, or a warning."""
    kind = rule.get("type", "library")
    if kind not in ("library", "text", "sql", "custom"):
        raise r.fail(f"{where}.type", f"{kind!r} is not an ODCS quality type; use library, text, sql or custom")
    if kind != "library":
        r.warn(where, f"{_rule_label(rule)} rule is not checked by safeload; express it in a quality suite "
                      "(safeload gate) if it must hold")
        return None, None
    metric = rule.get("metric") or rule.get("rule")
    args = rule.get("arguments") or {}
    args = r.mapping(args, f"{where}.arguments", "arguments of the metric")
    if not _zero_tolerance(rule):
        r.warn(where, f"{_rule_label(rule)} with a threshold other than zero is not checked by safeload "
                      "(its column rules allow no offending row)")
        return None, None
    if metric in ("validValues", "invalidValues"):
        values = rule.get("validValues", args.get("validValues"))
        pattern = args.get("pattern")
        if values is not None:
            if not isinstance(values, list) or not values:
                raise r.fail(f"{where}.validValues", "must be a non-empty list of the allowed values")
            return "allowed_values", tuple(values)
        if isinstance(pattern, str):
            return "pattern", pattern
        raise r.fail(where, f"{metric} needs the allowed values: 'validValues: [...]' (v3.0) or "
                            "'arguments: {validValues: [...]}' / 'arguments: {pattern: ...}' (v3.1)")
    if metric in ("nullValues", "nullCheck"):
        return "not_null", None
    if metric in ("duplicateValues", "duplicateCount"):
        return "unique", None
    r.warn(where, f"{_rule_label(rule)} is not checked by safeload")
    return None, None


def _custom_properties(r: _Reader, node: Any, where: str) -> dict[str, Any]:
    if node is None:
        return {}
    if not isinstance(node, list):
        raise r.fail(where, "must be a list of {property: ..., value: ...}")
    out: dict[str, Any] = {}
    for i, item in enumerate(node):
        if not isinstance(item, dict) or not isinstance(item.get("property"), str):
            raise r.fail(f"{where}[{i}]", "each custom property is a mapping {property: <name>, value: <value>}")
        out[item["property"]] = item.get("value")
    return out


def _owner(r: _Reader, doc: dict[str, Any], custom: dict[str, Any]) -> str:
    if custom.get(OWNER_PROPERTY):
        return str(custom[OWNER_PROPERTY])
    team = doc.get("team")
    if isinstance(team, dict):  # v3.1: a team object
        if team.get("name"):
            return str(team["name"])
        team = team.get("members") or []
    if team is not None and not isinstance(team, list):
        raise r.fail("team", "must be a list of members (v3.0) or a mapping with 'name' and 'members' (v3.1)")
    for member in team or []:
        if isinstance(member, dict) and str(member.get("role", "")).lower() == "owner":
            return str(member.get("username") or member.get("name") or "")
    return ""


def _description(r: _Reader, doc: dict[str, Any], obj: dict[str, Any]) -> str:
    desc = doc.get("description")
    if desc is not None:
        desc = r.mapping(desc, "description", "with purpose, usage and limitations")
        if desc.get("purpose"):
            return str(desc["purpose"])
    return str(obj.get("description", ""))


def _table(r: _Reader, doc: dict[str, Any], obj: dict[str, Any], where: str) -> str | None:
    physical = obj.get("physicalName")
    if not physical:
        return None
    table = str(physical)
    if "." not in table:
        schemas = {str(s.get("schema")) for s in doc.get("servers") or []
                   if isinstance(s, dict) and s.get("type") in ("postgres", "postgresql") and s.get("schema")}
        if len(schemas) == 1:
            table = f"{schemas.pop()}.{table}"
    try:
        validate_table_name(table)
    except IdentifierError as e:
        raise r.fail(f"{where}.physicalName", str(e)) from None
    return table


def report_warnings(contract: Contract) -> None:
    """Log what an ODCS contract says that safeload does not check (one warning each)."""
    for w in contract.extra.get("warnings", ()):
        log.warning("%s: %s", contract.path, w)
