"""Reading ODCS v3 contracts: the same Contract as safeload's YAML, clear errors, reported gaps."""

from __future__ import annotations

import copy
import logging
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from safeload.contracts.files import load_contract
from safeload.contracts.odcs import is_odcs, parse_odcs
from safeload.contracts.types import PgType
from safeload.errors import ContractError

ROOT = Path(__file__).resolve().parents[3]
NATIVE = ROOT / "include" / "contracts" / "orders.yaml"
ODCS = ROOT / "include" / "contracts" / "orders.odcs.yaml"

DOC = {
    "apiVersion": "v3.0.2", "kind": "DataContract", "id": "c1", "version": "2.0.0", "status": "active",
    "schema": [{
        "name": "lines",
        "properties": [
            {"name": "line_id", "physicalType": "bigint", "primaryKey": True},
            {"name": "day", "logicalType": "date", "required": True, "partitioned": True},
            {"name": "qty", "logicalType": "integer", "logicalTypeOptions": {"minimum": 1, "maximum": 99}},
            {"name": "sku", "physicalType": "varchar(12)", "unique": True},
        ],
    }],
}


def odcs(mutate=None, **kw):
    doc = copy.deepcopy(DOC)
    if mutate:
        mutate(doc)
    return parse_odcs(doc, source="c.odcs.yaml", **kw)


def prop(doc, i):
    return doc["schema"][0]["properties"][i]


def test_reference_odcs_contract_equals_the_native_one():
    native, from_odcs = load_contract(NATIVE), load_contract(ODCS)
    assert from_odcs.extra["format"] == "odcs"
    assert from_odcs.extra["warnings"] == []
    # everything that drives the check, the load and the expectations is the same
    assert replace(from_odcs, path=native.path) == native
    assert from_odcs.table == "public.orders" and from_odcs.partition_column == "order_date"
    assert from_odcs.owner == "commerce-data" and from_odcs.schema_policy == "warn"


def test_format_is_detected_from_the_content():
    assert is_odcs({"apiVersion": "v3.0.2"}) and is_odcs({"kind": "DataContract"})
    assert not is_odcs({"dataset": "orders", "columns": []})


def test_mapping_of_types_keys_and_partition():
    c = odcs()
    assert c.dataset == "lines" and c.version == "2.0.0" and c.schema_policy == "fail"
    assert c.primary_key == ["line_id"] and c.column("line_id").nullable is False
    assert c.column("day").type == PgType("date") and c.column("day").nullable is False
    assert c.partition_column == "day"
    # logicalType integer without a format: bigint (see _logical_type)
    assert c.column("qty").type == PgType("bigint") and (c.column("qty").min, c.column("qty").max) == (1, 99)
    assert c.column("qty").nullable is True
    assert c.column("sku").type == PgType("varchar", 12) and c.column("sku").unique
    assert c.table is None and c.owner == ""


def test_primary_key_with_required_false_is_not_null():
    # ODCS writers emit 'required: false' (the default) next to 'primaryKey: true'
    c = odcs(lambda d: prop(d, 0).update(required=False))
    assert c.column("line_id").nullable is False


@pytest.mark.parametrize(("logical", "options", "expected"), [
    pytest.param("string", {}, PgType("text"), id="string"),
    pytest.param("string", {"maxLength": 40}, PgType("varchar", 40), id="string-maxLength"),
    pytest.param("string", {"format": "uuid"}, PgType("uuid"), id="string-uuid"),
    pytest.param("integer", {"format": "i16"}, PgType("smallint"), id="i16"),
    pytest.param("integer", {"format": "i32"}, PgType("integer"), id="i32"),
    pytest.param("integer", {"format": "u64"}, PgType("numeric", 20, 0), id="u64"),
    pytest.param("number", {}, PgType("numeric"), id="number"),
    pytest.param("number", {"format": "f64"}, PgType("double precision"), id="f64"),
    pytest.param("boolean", {}, PgType("boolean"), id="boolean"),
    pytest.param("timestamp", {"timezone": True}, PgType("timestamptz"), id="timestamp-tz"),
    pytest.param("timestamp", {}, PgType("timestamp"), id="timestamp"),
    pytest.param("time", {}, PgType("time"), id="time"),
])
def test_logical_type_fallback(logical, options, expected):
    c = odcs(lambda d: d["schema"][0]["properties"].append(
        {"name": "x", "logicalType": logical, "logicalTypeOptions": options}))
    assert c.column("x").type == expected
    assert c.extra["warnings"] == []


@pytest.mark.parametrize(("physical", "expected"), [
    pytest.param("INT8", PgType("bigint"), id="alias-upper"),
    pytest.param("serial", PgType("integer"), id="serial"),
    pytest.param("varchar[15]", PgType("varchar", 15), id="bracket-length"),
    pytest.param("timestamp with time zone", PgType("timestamptz"), id="long-name"),
])
def test_physical_type_spellings(physical, expected):
    c = odcs(lambda d: prop(d, 3).update(physicalType=physical))
    assert c.column("sku").type == expected


def test_physical_type_of_another_database_falls_back_with_a_warning():
    c = odcs(lambda d: prop(d, 3).update(physicalType="VARCHAR2(12)", logicalType="string"))
    assert c.column("sku").type == PgType("text")
    assert any("properties[3].physicalType" in w and "checked as text" in w for w in c.extra["warnings"])


def test_quality_rules_v30_and_v31_give_allowed_values_not_null_unique():
    def add(d):
        d["apiVersion"] = "v3.1.0"
        prop(d, 3)["quality"] = [{"rule": "validValues", "validValues": ["A", "B"]}]
        d["schema"][0]["properties"].append({"name": "unit", "logicalType": "string", "quality": [
            {"metric": "invalidValues", "arguments": {"validValues": ["kg", "lb"]}, "mustBe": 0},
            {"metric": "nullValues", "mustBe": 0},
            {"metric": "duplicateValues", "mustBeLessThan": 1, "unit": "rows"},
        ]})
        d["schema"][0]["properties"].append({"name": "iban", "logicalType": "string", "quality": [
            {"metric": "invalidValues", "arguments": {"pattern": "^[A-Z]{2}[0-9]{2}"}, "mustBe": 0}]})
    c = odcs(add)
    assert c.column("sku").allowed_values == ("A", "B")
    unit = c.column("unit")
    assert unit.allowed_values == ("kg", "lb") and unit.nullable is False and unit.unique is True
    assert c.column("iban").pattern == "^[A-Z]{2}[0-9]{2}"
    assert c.extra["warnings"] == []


def test_exclusive_bounds_v30_flag_and_v31_value():
    def add(d):
        d["schema"][0]["properties"] += [
            {"name": "a", "physicalType": "numeric(12,2)", "logicalType": "number",
             "logicalTypeOptions": {"minimum": 0, "exclusiveMinimum": True}},
            {"name": "b", "physicalType": "integer", "logicalType": "integer",
             "logicalTypeOptions": {"exclusiveMaximum": 10}},
            {"name": "c", "logicalType": "number", "logicalTypeOptions": {"exclusiveMinimum": 0}},
        ]
    c = odcs(add)
    assert c.column("a").min == Decimal("0.01")
    assert c.column("b").max == 9
    assert c.column("c").min == 0  # unscaled numeric: the column keeps the bound ...
    rule = next(r for r in c.rules if r.columns == ("c",) and r.kind == "minimum")
    assert rule.exclusive and rule.arg == 0  # ... and the rule checks it exactly
    assert rule.path == "schema[0].properties[6].logicalTypeOptions.exclusiveMinimum"


def test_owner_from_team_and_policy_from_custom_property():
    c = odcs(lambda d: d.update(team=[{"username": "ann", "role": "Data Steward"}, {"username": "bob", "role": "Owner"}],
                                customProperties=[{"property": "safeloadSchemaPolicy", "value": "evolve"}]))
    assert c.owner == "bob" and c.schema_policy == "evolve"
    c = odcs(lambda d: d.update(apiVersion="v3.1.0", team={"name": "shop-data", "members": []}))
    assert c.owner == "shop-data"


def test_table_from_physical_name_and_postgres_server_schema():
    def add(d):
        d["schema"][0]["physicalName"] = "order_lines"
        d["servers"] = [{"server": "wh", "type": "postgres", "schema": "sales"}]
    assert odcs(add).table == "sales.order_lines"
    assert odcs(lambda d: d["schema"][0].update(physicalName="x.order_lines")).table == "x.order_lines"


def test_one_object_of_several_is_chosen_with_a_fragment(tmp_path):
    import yaml

    doc = copy.deepcopy(DOC)
    doc["schema"].append({"name": "refunds", "properties": [{"name": "refund_id", "physicalType": "bigint"}]})
    p = tmp_path / "shop.odcs.yaml"
    p.write_text(yaml.safe_dump(doc))
    assert load_contract(f"{p}#refunds").column_names == ["refund_id"]
    with pytest.raises(ContractError, match=r"describes 2 objects \(lines, refunds\).*shop.odcs.yaml#lines"):
        load_contract(p)
    with pytest.raises(ContractError, match="has no object named 'nope'"):
        load_contract(f"{p}#nope")


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda d: d.pop("apiVersion") and d.pop("id"), r"c.odcs.yaml: apiVersion: required by ODCS v3",
                 id="no-apiVersion"),
    pytest.param(lambda d: d.update(apiVersion="v2.2.2"), r"apiVersion: 'v2.2.2'.*ODCS v2 \(dataset/columns\) is not read",
                 id="v2"),
    pytest.param(lambda d: d.update(kind="DataProduct"), r"kind: 'DataProduct' is not read", id="kind"),
    pytest.param(lambda d: d.pop("status"), r"status: required by ODCS v3 and missing", id="no-status"),
    pytest.param(lambda d: d.update(schema={"name": "lines"}), r"schema: must be a list of objects", id="schema-map"),
    pytest.param(lambda d: d.update(shema=[]), r"top level\.shema: not an ODCS v3 top-level field; did you mean 'schema'",
                 id="typo-top"),
    pytest.param(lambda d: prop(d, 1).update(requried=True),
                 r"schema\[0\]\.properties\[1\] \(day\)\.requried: not an ODCS v3 property field; did you mean 'required'",
                 id="typo-property"),
    pytest.param(lambda d: prop(d, 3).update(quality=[{"metric": "nullValues", "mustBe": "none"}]),
                 r"properties\[3\] \(sku\)\.quality\[0\]: mustBe takes a number, not 'none'", id="bad-threshold"),
    pytest.param(lambda d: prop(d, 3).update(quality=[{"metric": "nullValues", "mustBe": 0, "mustBeLessThan": 2}]),
                 r"quality\[0\]: gives mustBe, mustBeLessThan; keep one operator", id="two-operators"),
    pytest.param(lambda d: prop(d, 3).update(quality=[{"metric": "nullValues", "mustBeBetween": [5, 1]}]),
                 r"quality\[0\]: mustBeBetween takes \[low, high\]", id="between-reversed"),
    pytest.param(lambda d: d["schema"][0].update(quality=[{"metric": "rowCount"}]),
                 r"schema\[0\]\.quality\[0\]: rowCount needs an operator", id="rowCount-without-operator"),
    pytest.param(lambda d: d["schema"][0].update(quality=[{"metric": "duplicateValues", "mustBe": 0}]),
                 r"quality\[0\]\.arguments\.properties: a schema-level duplicateValues names the properties",
                 id="schema-duplicates-without-properties"),
    pytest.param(lambda d: d["schema"][0].update(quality=[{"metric": "duplicateValues", "mustBe": 0,
                                                           "arguments": {"properties": ["line_id", "nope"]}}]),
                 r"'nope' is not a property of this object", id="schema-duplicates-unknown-property"),
    pytest.param(lambda d: prop(d, 3).update(quality=[{"metric": "missingValues", "mustBe": 0}]),
                 r"arguments\.missingValues: must list the values that count as missing", id="missingValues-without-list"),
    pytest.param(lambda d: prop(d, 2)["logicalTypeOptions"].update(minimum=[1]),
                 r"logicalTypeOptions\.minimum: must be a number or a date string", id="bound-list"),
    pytest.param(lambda d: prop(d, 1).update(logicalType="datetime"),
                 r"properties\[1\] \(day\)\.logicalType: 'datetime' is not an ODCS logical type", id="bad-logicalType"),
    pytest.param(lambda d: prop(d, 1).pop("logicalType"), r"properties\[1\] \(day\): has neither 'physicalType' nor",
                 id="no-type"),
    pytest.param(lambda d: prop(d, 1).update(required="yes"), r"properties\[1\] \(day\)\.required: must be true or false",
                 id="bad-bool"),
    pytest.param(lambda d: prop(d, 2)["logicalTypeOptions"].update(minimum=100),
                 r"properties\[2\] \(qty\)\.logicalTypeOptions: minimum 100 is greater than maximum 99", id="min-gt-max"),
    pytest.param(lambda d: prop(d, 2)["logicalTypeOptions"].update(maxLength=3),
                 r"logicalTypeOptions\.maxLength: not an ODCS v3 integer option field", id="option-of-other-type"),
    pytest.param(lambda d: prop(d, 2)["logicalTypeOptions"].update(format="i33"),
                 r"logicalTypeOptions\.format: 'i33' is not an ODCS integer format", id="bad-int-format"),
    pytest.param(lambda d: prop(d, 0).update(name="line\tid"), r"properties\[0\] \(line\tid\)\.name: .*control character",
                 id="control-character-in-name"),
    pytest.param(lambda d: d["schema"][0]["properties"].append({"name": "line_id", "physicalType": "int"}),
                 r"properties\[4\]\.name: column 'line_id' is declared twice", id="duplicate"),
    pytest.param(lambda d: d.update(customProperties=[{"property": "safeloadSchemaPolicy", "value": "ignore"}]),
                 r"customProperties\[safeloadSchemaPolicy\]: 'ignore' is not a policy", id="bad-policy"),
    pytest.param(lambda d: d.update(customProperties={"owner": "x"}), r"customProperties: must be a list", id="custom-map"),
    pytest.param(lambda d: prop(d, 3).update(quality=[{"rule": "validValues"}]),
                 r"properties\[3\] \(sku\)\.quality\[0\]: validValues needs the allowed values", id="validValues-empty"),
    pytest.param(lambda d: prop(d, 3).update(quality=[{"type": "magic"}]),
                 r"quality\[0\]\.type: 'magic' is not an ODCS quality type", id="bad-quality-type"),
    pytest.param(lambda d: prop(d, 3).update(logicalType="object", properties=[{"name": "a"}]),
                 r"properties\[3\] \(sku\): nested properties cannot be a varchar\(12\) column", id="nested"),
])
def test_malformed_odcs_names_file_field_and_fix(mutate, match):
    with pytest.raises(ContractError, match=match):
        odcs(mutate)


@pytest.mark.parametrize(("mutate", "where", "what"), [
    pytest.param(lambda d: prop(d, 3).update(quality=[{"type": "sql", "query": "select 1", "mustBe": 1}]),
                 "schema[0].properties[3].quality[0]", "sql rule is not checked", id="sql-rule"),
    pytest.param(lambda d: prop(d, 3).update(quality=[{"type": "custom", "engine": "soda", "implementation": "x"}]),
                 "schema[0].properties[3].quality[0]", "custom 'soda' rule is not checked", id="custom-rule"),
    pytest.param(lambda d: prop(d, 3).update(quality=[{"type": "text", "description": "verified"}]),
                 "schema[0].properties[3].quality[0]", "text rule is not checked", id="text-rule"),
    pytest.param(lambda d: prop(d, 3).update(quality=[{"metric": "completeness", "mustBe": 1}]),
                 "schema[0].properties[3].quality[0]", "not a library metric safeload checks", id="other-metric"),
    pytest.param(lambda d: prop(d, 3).update(quality=[{"metric": "rowCount", "mustBeGreaterThan": 0}]),
                 "schema[0].properties[3].quality[0]", "schema-level metric", id="rowCount-on-a-property"),
    pytest.param(lambda d: prop(d, 2)["logicalTypeOptions"].update(multipleOf=5),
                 "schema[0].properties[2].logicalTypeOptions.multipleOf", "not checked", id="multipleOf"),
    pytest.param(lambda d: prop(d, 1).update(logicalTypeOptions={"format": "dd/MM/yyyy"}),
                 "schema[0].properties[1].logicalTypeOptions.format", "checked as date", id="date-format"),
    pytest.param(lambda d: prop(d, 3).update(relationships=[{"to": "skus.sku"}]),
                 "schema[0].properties[3].relationships", "foreign keys", id="relationships"),
    pytest.param(lambda d: d["schema"][0]["properties"].append({"name": "meta", "logicalType": "object"}),
                 "schema[0].properties[4].logicalType", "jsonb column", id="object"),
    pytest.param(lambda d: prop(d, 3).update(physicalType="map<string,bigint>"),
                 "schema[0].properties[3].physicalType", "its values' type is not", id="foreign-physical-type"),
])
def test_unsupported_features_are_reported(mutate, where, what, caplog, tmp_path):
    import yaml

    c = odcs(mutate)
    assert any(where in w and what in w for w in c.extra["warnings"]), c.extra["warnings"]
    assert any(n.path == where and what in n.reason for n in c.not_checked), c.not_checked
    # load_contract logs them, so an operator's task log and the CLI's stderr show them
    doc = copy.deepcopy(DOC)
    mutate(doc)
    p = tmp_path / "c.odcs.yaml"
    p.write_text(yaml.safe_dump(doc))
    with caplog.at_level(logging.WARNING, logger="safeload.contracts.odcs"):
        load_contract(p)
    assert any(where in rec.getMessage() and what in rec.getMessage() for rec in caplog.records)


def test_fragment_on_a_native_contract_is_refused():
    with pytest.raises(ContractError, match=r"selects an object of an ODCS contract.*drop the '#...' part"):
        load_contract(f"{NATIVE}#orders")
