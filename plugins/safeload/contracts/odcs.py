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
``partitioned``/``partitionKeyPosition``  ``target.partition_column`` (one column; several
                                         are reported, and a load must name one)
``logicalTypeOptions.minimum/maximum``   ``min`` / ``max`` rules, exact (and the column's
(and ``exclusive*``), ``pattern``,       inclusive bounds), ``pattern``, length rules
``minLength``/``maxLength``
quality ``validValues`` (v3.0 ``rule``)  an ``invalid_values`` rule (and ``allowed_values``
or ``invalidValues`` (v3.1 ``metric``)   when no row may break it)
quality ``nullValues``, ``missingValues``  ``not_null`` / ``missing_values`` rules
quality ``duplicateValues``              ``unique`` rule (schema level: on ``arguments.properties``)
quality ``rowCount`` (schema level)      ``row_count`` rule
``mustBe...``, ``unit``, ``severity``    the rule's threshold (rows or percent) and
                                         whether it breaks the check or warns
=======================================  ===============================================

Every value rule becomes a :class:`~safeload.contracts.rules.Rule` with its path
(``schema[0].properties[3].quality[1]``), threshold and severity, checked on the source
(:mod:`safeload.contracts.values`). Anything safeload cannot enforce is *reported*, never
dropped in silence: a malformed document raises :class:`ContractError` (file, field path
such as ``schema[0].properties[3].physicalType``, the rule and the fix); a well-formed
rule that safeload does not check (SQL, custom and text quality rules, ``multipleOf``,
string formats, relationships, ...) becomes a
:class:`~safeload.contracts.rules.NotChecked` in ``contract.not_checked``, logged and
listed in every report. Settings that only a load uses (the table name, the partition
column, column names PostgreSQL would need quoted) never stop a check: when a load
could not use them as written they are reported and listed in
``contract.extra["load_problems"]``. Pure metadata (tags, servers, SLAs, roles, support
channels, pricing, classification, examples, ...) is read past without a word.

Pure Python: no Airflow import.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from decimal import Decimal
from typing import Any

from safeload.contracts.model import POLICIES, Column, Contract, column_rules
from safeload.contracts.odcs_quality import OdcsReader, property_rules, quality_list, schema_rules
from safeload.contracts.rules import Rule
from safeload.contracts.types import ANY, SUPPORTED_TYPES, PgType, TypeSyntaxError, parse_type
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
    r = OdcsReader(source)
    doc = r.mapping(doc, "top level", "an ODCS document")
    api = doc.get("apiVersion")
    if isinstance(api, str) and api.startswith("v2"):  # before the key check: v2 has other fields
        raise r.fail("apiVersion", f"{api!r} is not an ODCS version safeload reads; ODCS v2 (dataset/columns) is "
                                   "not read; migrate the file to v3 (columns became schema[].properties[], e.g. with "
                                   "datacontract-cli's 'datacontract import --format odcs')")
    r.keys(doc, _TOP_KEYS, "top level", "top-level")
    for key in ("apiVersion", "kind", "id", "version", "status"):
        if key not in doc:
            raise r.fail(key, f"required by ODCS v3 and missing; add '{key}:' at the top level")
    if doc["kind"] != "DataContract":
        raise r.fail("kind", f"{doc['kind']!r} is not read; an ODCS contract has 'kind: DataContract'")
    api = str(doc["apiVersion"])
    if api not in API_VERSIONS:
        raise r.fail("apiVersion", f"{api!r} is not an ODCS version safeload reads; use one of "
                                   f"{', '.join(API_VERSIONS)}")

    custom = _custom_properties(r, doc.get("customProperties"), "customProperties")
    policy = custom.get(POLICY_PROPERTY, "fail")
    if policy not in POLICIES:
        raise r.fail(f"customProperties[{POLICY_PROPERTY}]",
                     f"{policy!r} is not a policy; use one of {', '.join(POLICIES)}")
    meta = {"dataset": str(doc.get("name") or doc["id"]), "version": str(doc["version"]),
            "owner": _owner(r, doc, custom), "schema_policy": policy, "path": source}

    picked = _pick_object(r, doc.get("schema"), object_name)
    if picked is None:
        r.skip("schema", "schema", "the contract describes no table, so no column or value of the source is checked")
        return Contract(columns=(), description=_description(r, doc, {}), not_checked=tuple(r.not_checked),
                        extra=_extra(r, doc, api), **meta)
    index, obj = picked
    where = f"schema[{index}]"
    r.keys(obj, _OBJECT_KEYS, where, "schema object")
    meta["dataset"] = obj["name"]
    if obj.get("logicalType", "object") != "object":
        raise r.fail(f"{where}.logicalType", f"{obj['logicalType']!r}: a schema object is 'object'")
    if obj.get("relationships"):
        r.skip(f"{where}.relationships", "relationships", "relationships (foreign keys) are not checked by safeload")

    props = obj.get("properties")
    if props is None or props == []:
        props = []
        r.skip(f"{where}.properties", "properties", "the object declares no properties, so the source's columns "
                                                    "and their values are not checked")
    if not isinstance(props, list):
        raise r.fail(f"{where}.properties", "must be a list of properties (the columns), each with 'name' and "
                                             "'physicalType' or 'logicalType'")
    columns: list[Column] = []
    paths: list[str] = []
    rules: list[Rule] = []
    partitioned: list[str] = []
    names: dict[str, str] = {}
    for j, prop in enumerate(props):
        path = f"{where}.properties[{j}]"
        column, is_partition, column_rules_ = _column(r, prop, path)
        if column.name in names.values():
            raise r.fail(f"{path}.name", f"column {column.name!r} is declared twice; remove one")
        names[str(prop["name"])] = column.name
        columns.append(column)
        paths.append(path)
        rules.extend(column_rules_)
        if is_partition:
            partitioned.append(column.name)
    rules[:0] = column_rules(columns, paths, native=False)
    rules.extend(schema_rules(r, quality_list(r, obj.get("quality"), f"{where}.quality"), names, where))
    partition = partitioned[0] if len(partitioned) == 1 else None
    if partition is not None:
        try:
            validate_identifier(partition, "partition column")
        except IdentifierError as e:
            partition = None
            r.load_only(f"{where}.properties", "partition column", f"{e}; a load of this contract needs a "
                        "partition column it can name (the check does not use it)")
    if len(partitioned) > 1:
        r.load_only(f"{where}.properties", "partition columns",
                    f"{', '.join(partitioned)} are all partitioned; a safeload load overwrites one partition "
                    "column, so a load of this contract needs partition_column= (the check does not use it)")

    return Contract(
        columns=tuple(columns), table=_table(r, doc, obj, where), partition_column=partition,
        description=_description(r, doc, obj), extra=_extra(r, doc, api), rules=tuple(rules),
        not_checked=tuple(r.not_checked), **meta,
    )


def _extra(r: OdcsReader, doc: dict[str, Any], api: str) -> dict[str, Any]:
    return {"format": "odcs", "apiVersion": api, "id": str(doc["id"]), "warnings": r.warnings,
            "load_problems": list(r.load_problems)}


def _pick_object(r: OdcsReader, schema: Any, object_name: str | None) -> tuple[int, dict[str, Any]] | None:
    if schema is None or schema == []:
        if object_name is not None:
            raise r.fail("schema", f"has no object named {object_name!r}; the contract describes no table")
        return None
    if not isinstance(schema, list):
        raise r.fail("schema", "must be a list of objects (tables): 'schema: [{name: orders, properties: [...]}]'")
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


def _column_name(r: OdcsReader, prop: dict[str, Any], where: str) -> str:
    """The column's name as the source spells it: any text PostgreSQL could name with a
    quoted identifier (``"Bytes field"``, ``order-id``) is read as written."""
    key = "physicalName" if prop.get("physicalName") else "name"
    name = prop[key]
    if not isinstance(name, str) or not name.strip():
        raise r.fail(f"{where}.{key}", f"must be a non-empty string naming the column, not {name!r}")
    if any(ord(ch) < 32 for ch in name):
        raise r.fail(f"{where}.{key}", f"{name!r} has a control character; no source column can carry it")
    return name


def _column(r: OdcsReader, prop: Any, path: str) -> tuple[Column, bool, list[Rule]]:
    prop = r.mapping(prop, path, "a property with 'name' and a type")
    where = f"{path} ({prop['name']})" if "name" in prop else path
    r.keys(prop, _PROPERTY_KEYS, where, "property")
    if "name" not in prop:
        raise r.fail(where, "'name' is missing; every property needs one")
    name = _column_name(r, prop, where)
    for flag in ("primaryKey", "required", "unique", "partitioned", "criticalDataElement"):
        r.boolean(prop, flag, where)
    primary_key = bool(prop.get("primaryKey"))
    # A primary key is NOT NULL in SQL whatever 'required' says; ODCS writers commonly emit
    # 'required: false' as the default next to 'primaryKey: true', so that is not an error.
    nullable = not (prop.get("required") or primary_key)
    unique = bool(prop.get("unique"))
    rules: list[Rule] = []
    if prop.get("required") and not primary_key:
        rules.append(Rule("not_null", (name,), f"{path}.required", label="required"))
    if unique and not primary_key:
        rules.append(Rule("unique", (name,), f"{path}.unique", label="unique"))

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

    pg_type = _type(r, prop, logical, options, where, path)
    if prop.get("properties") or prop.get("items"):
        if pg_type.name not in ("json", "jsonb", "any"):
            raise r.fail(where, f"nested {'properties' if prop.get('properties') else 'items'} cannot be a "
                                f"{pg_type} column; flatten them into columns, or give 'physicalType: jsonb'")
        r.skip(f"{path}.{'properties' if prop.get('properties') else 'items'}", "nested structure",
               "the structure inside the column is not checked by safeload")
    lo, hi, bound_rules = _bounds(r, options, pg_type, where, path, name)
    rules.extend(bound_rules)
    pattern = options.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise r.fail(f"{where}.logicalTypeOptions.pattern", "must be a regular expression string")
        rules.append(Rule("pattern", (name,), f"{path}.logicalTypeOptions.pattern", pattern, label="pattern"))
    rules.extend(_length_rules(r, options, pg_type, where, path, name))
    _skip_unused_options(r, options, logical, pg_type, prop, path)

    allowed = None
    quality = property_rules(r, quality_list(r, prop.get("quality"), f"{where}.quality"), name, where, path)
    for rule in quality:
        rules.append(rule)
        if not rule.threshold.zero or rule.severity != "error":
            continue  # the column's own fields (used by the load's expectations) say what always holds
        if rule.kind == "invalid_values":
            allowed = rule.arg["values"] or allowed
            pattern = rule.arg["pattern"] or pattern
        elif rule.kind == "not_null":
            nullable = False
        elif rule.kind == "unique":
            unique = True
    if prop.get("relationships"):
        r.skip(f"{path}.relationships", "relationships", "relationships (foreign keys) are not checked by safeload")
    if lo is not None and hi is not None:
        try:
            if lo > hi:
                raise r.fail(f"{where}.logicalTypeOptions", f"minimum {lo!r} is greater than maximum {hi!r}")
        except TypeError:
            raise r.fail(f"{where}.logicalTypeOptions", "minimum and maximum must be comparable values") from None

    position = prop.get("partitionKeyPosition")
    if position is not None and (not isinstance(position, int) or isinstance(position, bool)):
        raise r.fail(f"{where}.partitionKeyPosition", f"must be an integer, not {position!r}")
    is_partition = bool(prop.get("partitioned")) or (position is not None and position >= 1)
    return Column(name=name, type=pg_type, nullable=nullable, primary_key=primary_key, unique=unique,
                  description=str(prop.get("description", "")), allowed_values=allowed, min=lo, max=hi,
                  pattern=pattern, accepts=_widths_taken(prop, logical, options, pg_type)), is_partition, rules


#: source types an ODCS logical type with no ``format`` holds: it names no width (decision 051)
_ANY_WIDTH = {"integer": ("smallint", "integer", "bigint"),
              "number": ("smallint", "integer", "bigint", "numeric", "real", "double precision")}


def _widths_taken(prop: dict[str, Any], logical: str | None, options: dict[str, Any], pg_type: PgType
                  ) -> tuple[str, ...]:
    """The source types the column takes besides its own: those of its logical type, when
    neither a ``format`` nor a PostgreSQL ``physicalType`` fixes the width."""
    if logical not in _ANY_WIDTH or options.get("format") is not None or pg_type.name not in _ANY_WIDTH[logical]:
        return ()
    physical = prop.get("physicalType")
    if physical is not None:
        try:
            parse_type(_pg_spelling(physical))
            return ()  # a PostgreSQL type: the contract says which
        except TypeSyntaxError:
            pass
    return _ANY_WIDTH[logical]


def _length_rules(r: OdcsReader, options: dict[str, Any], pg_type: PgType, where: str, path: str,
                  name: str) -> list[Rule]:
    out = []
    for key, kind in (("minLength", "min_length"), ("maxLength", "max_length")):
        n = options.get(key)
        if n is None:
            continue
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise r.fail(f"{where}.logicalTypeOptions.{key}", f"must be a whole number >= 0, not {n!r}")
        if kind == "max_length" and pg_type.name in ("varchar", "char") and pg_type.length == n:
            continue  # the type itself holds it: a longer value is reported as not fitting the type
        out.append(Rule(kind, (name,), f"{path}.logicalTypeOptions.{key}", n, label=key))
    return out
def _type(r: OdcsReader, prop: dict[str, Any], logical: str | None, options: dict[str, Any], where: str,
          path: str) -> PgType:
    physical = prop.get("physicalType")
    if physical is not None:
        text = _pg_spelling(physical)
        try:
            return parse_type(text)
        except TypeSyntaxError:
            if logical is None:
                # the physical type of another system (map<string,bigint>, clob, record): valid
                # ODCS, and only a load into PostgreSQL needs a PostgreSQL type
                close = difflib.get_close_matches(text.split("(")[0], SUPPORTED_TYPES, n=1, cutoff=0.75)
                typo = f"; if it is a typo of {close[0]!r}, correct it" if close else ""
                r.skip(f"{path}.physicalType", "type", f"{physical!r} is not a PostgreSQL type and no logicalType "
                       "says what it holds: the column's presence and its other rules are checked, its values' "
                       f"type is not (add 'logicalType' to check it){typo}")
                return ANY
            fallback = _logical_type(r, logical, options, where, path)
            r.skip(f"{path}.physicalType", "type", f"{physical!r} is not a PostgreSQL type safeload knows; the column "
                   f"is checked as {fallback} (from logicalType {logical!r})")
            return fallback
    if logical is None:
        raise r.fail(where, "has neither 'physicalType' nor 'logicalType'; give the PostgreSQL type as "
                            "'physicalType: bigint' (or at least a logicalType)")
    return _logical_type(r, logical, options, where, path)


def _pg_spelling(physical: Any) -> str:
    """A physicalType as PostgreSQL spells it (``varchar[40]``, as some exporters write, is ``varchar(40)``)."""
    text = re.sub(r"\[(\d+)\]$", r"(\1)", str(physical).strip().lower())
    return _PG_SPELLINGS.get(text, text)


def _logical_type(r: OdcsReader, logical: str, options: dict[str, Any], where: str, path: str) -> PgType:
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
    r.skip(f"{path}.logicalType", "type", f"logicalType {logical!r} is checked as a jsonb column (valid JSON), not "
                                          "its inner structure")
    return PgType("jsonb")


def _bounds(r: OdcsReader, options: dict[str, Any], pg_type: PgType, where: str, path: str,
            name: str) -> tuple[Any, Any, list[Rule]]:
    """The bound rules, and inclusive ``(min, max)`` for the column's fields.

    v3.0 writes ``exclusiveMinimum: true`` next to ``minimum``; v3.1 writes the bound itself
    (``exclusiveMinimum: 0``). The rules keep the bound exact (``> 0``); the column's
    ``min``/``max`` (which the load's expectations use) make an exclusive bound inclusive
    where the type is exact (``> 0`` is ``>= 0.01`` for ``numeric(12,2)``) and keep the
    bound itself otherwise.
    """
    step: Any = None
    if pg_type.name in ("smallint", "integer", "bigint"):
        step = 1
    elif pg_type.name == "numeric" and pg_type.scale is not None:
        step = Decimal(1).scaleb(-pg_type.scale)
    rules: list[Rule] = []

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
        if exclusive_value is not None and value is not None:
            raise r.fail(f"{where}.logicalTypeOptions", f"gives both {inclusive_key} and {exclusive_key}; keep one")
        kind = "minimum" if sign > 0 else "maximum"
        if exclusive_value is None:
            if value is not None:
                rules.append(Rule(kind, (name,), f"{path}.logicalTypeOptions.{inclusive_key}", value,
                                  label=inclusive_key))
            return value
        key = exclusive_key if not isinstance(exclusive, bool) else inclusive_key
        rules.append(Rule(kind, (name,), f"{path}.logicalTypeOptions.{key}", exclusive_value, exclusive=True,
                          label=exclusive_key))
        if step is not None and isinstance(exclusive_value, (int, float)):
            moved = Decimal(str(exclusive_value)) + sign * step
            return int(moved) if step == 1 else moved
        return exclusive_value

    lo, hi = bound("minimum", "exclusiveMinimum", +1), bound("maximum", "exclusiveMaximum", -1)
    return lo, hi, rules


def _skip_unused_options(r: OdcsReader, options: dict[str, Any], logical: str | None, pg_type: PgType,
                         prop: dict[str, Any], path: str) -> None:
    used_for_type = "physicalType" not in prop or not prop.get("physicalType") or pg_type.name == "any"
    for key, value in options.items():
        if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern", "minLength",
                   "maxLength", "defaultTimezone"):
            continue
        if key == "format" and logical in ("integer", "number") and used_for_type:
            continue
        if key == "format" and logical == "string" and value == "uuid" and (used_for_type or pg_type.name == "uuid"):
            continue
        if key == "timezone" and logical in ("timestamp", "time") and (
                used_for_type or (pg_type.name == "timestamptz") == bool(value)):
            continue
        r.skip(f"{path}.logicalTypeOptions.{key}", key, f"{key}: {value!r} is not checked by safeload"
               + (f" (the column is checked as {pg_type})" if key in ("format", "timezone") else ""))


def _custom_properties(r: OdcsReader, node: Any, where: str) -> dict[str, Any]:
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


def _owner(r: OdcsReader, doc: dict[str, Any], custom: dict[str, Any]) -> str:
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


def _description(r: OdcsReader, doc: dict[str, Any], obj: dict[str, Any]) -> str:
    desc = doc.get("description")
    if desc is not None:
        desc = r.mapping(desc, "description", "with purpose, usage and limitations")
        if desc.get("purpose"):
            return str(desc["purpose"])
    return str(obj.get("description", ""))


def _table(r: OdcsReader, doc: dict[str, Any], obj: dict[str, Any], where: str) -> str | None:
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
        # the table only matters to a load; a check of the source does not use it
        r.load_only(f"{where}.physicalName", "table", f"{e}; a load of this contract needs table= naming a "
                                                      "PostgreSQL table (the check does not use it)")
        return None
    return table


def report_warnings(contract: Contract) -> None:
    """Log what an ODCS contract says that safeload does not check (one warning each)."""
    for n in contract.not_checked:
        log.warning("%s: %s: %s", contract.path, n.path, n.reason)
