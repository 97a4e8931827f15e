import datetime as dt
import json

from safeload.contracts.expectations import expectations_from_contract, merge
from safeload.contracts.model import parse_contract
from safeload.contracts.files import load_contract
from safeload.quality.suite import parse_suite

CONTRACT = {
    "dataset": "lines",
    "target": {"table": "public.lines"},
    "columns": [
        {"name": "order_id", "type": "bigint", "primary_key": True},
        {"name": "line_no", "type": "integer", "primary_key": True},
        {"name": "sku", "type": "varchar(20)", "nullable": False, "pattern": "^[A-Z]{3}-[0-9]+$", "unique": True},
        {"name": "qty", "type": "integer", "min": 1, "max": 999},
        {"name": "price", "type": "numeric(12,2)", "min": 0},
        {"name": "ship_date", "type": "date", "min": dt.date(2020, 1, 1)},
        {"name": "channel", "type": "text", "allowed_values": ["web", "shop"]},
        {"name": "note", "type": "text"},
    ],
}


def _by(exps, etype):
    return [e for e in exps if e["type"] == etype]


def test_every_rule_becomes_an_expectation():
    exps = expectations_from_contract(parse_contract(CONTRACT, source="lines.yaml"))
    exists = _by(exps, "expect_column_to_exist")
    assert [e["kwargs"]["column"] for e in exists] == [c["name"] for c in CONTRACT["columns"]]
    not_null = {e["kwargs"]["column"] for e in _by(exps, "expect_column_values_to_not_be_null")}
    assert not_null == {"order_id", "line_no", "sku"}
    # a two-column primary key: one compound check, no single-column uniqueness for its parts
    assert _by(exps, "expect_compound_columns_to_be_unique") == [
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["order_id", "line_no"]},
         "meta": exps[0]["meta"], "severity": "critical"}]
    assert [e["kwargs"]["column"] for e in _by(exps, "expect_column_values_to_be_unique")] == ["sku"]
    between = {e["kwargs"]["column"]: e["kwargs"] for e in _by(exps, "expect_column_values_to_be_between")}
    assert between == {
        "qty": {"column": "qty", "min_value": 1, "max_value": 999},
        "price": {"column": "price", "min_value": 0},
        "ship_date": {"column": "ship_date", "min_value": "2020-01-01"},
    }
    assert _by(exps, "expect_column_values_to_be_in_set")[0]["kwargs"] == {"column": "channel",
                                                                           "value_set": ["web", "shop"]}
    assert _by(exps, "expect_column_values_to_match_regex")[0]["kwargs"] == {"column": "sku",
                                                                             "regex": "^[A-Z]{3}-[0-9]+$"}


def test_types_use_gx_names_at_warning():
    exps = expectations_from_contract(parse_contract(CONTRACT))
    types = {e["kwargs"]["column"]: (e["kwargs"]["type_"], e["severity"])
             for e in _by(exps, "expect_column_values_to_be_of_type")}
    assert types["price"] == ("NUMERIC(12, 2)", "warning")
    assert types["sku"] == ("VARCHAR(20)", "warning")
    assert types["order_id"] == ("BIGINT", "warning")
    assert not _by(expectations_from_contract(parse_contract(CONTRACT), include_types=False),
                   "expect_column_values_to_be_of_type")


def test_single_column_primary_key_is_unique():
    exps = expectations_from_contract(load_contract("include/contracts/orders.yaml"))
    assert [e["kwargs"]["column"] for e in _by(exps, "expect_column_values_to_be_unique")] == ["order_id"]
    assert not _by(exps, "expect_compound_columns_to_be_unique")


def test_generated_expectations_are_a_valid_json_suite():
    exps = expectations_from_contract(parse_contract(CONTRACT, source="lines.yaml"))
    doc = json.loads(json.dumps({"name": "lines", "expectations": exps}))
    suite = parse_suite(doc)
    assert len(suite.expectations) == len(exps)
    assert all(e.meta["source"] == "contract" and e.meta["contract"] == "lines.yaml" for e in suite.expectations)


def test_merge_keeps_contract_first_and_drops_duplicates():
    contract = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "severity": "critical"}]
    suite = [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "severity": "info"},  # same check
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a", "mostly": 0.9}},  # kept as well
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},  # suite duplicate
    ]
    merged = merge(contract, suite)
    assert merged[0] == contract[0]  # the contract's severity stays: a suite cannot relax it
    assert [e["kwargs"] for e in merged] == [{"column": "a"}, {"column": "a", "mostly": 0.9}, {"min_value": 1}]
