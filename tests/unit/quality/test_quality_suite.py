import datetime as dt
import json

import pytest

from safeload.quality.suite import (
    ExpectationSpec,
    Suite,
    SuiteError,
    build_suite,
    coerce_suite,
    comparable,
    load_suite,
    parse_suite,
)

GX_SUITE = {  # what gx.ExpectationSuite.to_json_dict() writes (GX 1.24)
    "name": "orders",
    "id": None,
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount", "mostly": 0.99},
         "meta": {"a": 1}, "severity": "warning"},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}, "meta": {},
         "severity": "critical"},
    ],
    "meta": {"great_expectations_version": "1.24.1"},
    "notes": None,
}


def test_reads_gx_own_format():
    s = parse_suite(GX_SUITE)
    assert s.name == "orders"
    assert [e.type for e in s.expectations] == ["expect_column_values_to_not_be_null",
                                                "expect_table_row_count_to_be_between"]
    assert s.expectations[0].severity == "warning"
    assert s.expectations[0].kwargs == {"column": "amount", "mostly": 0.99}
    assert s.expectations[0].meta == {"a": 1}
    assert s.expectations[0].column == "amount"
    assert s.expectations[1].column is None


def test_round_trips_to_gx_format():
    s = parse_suite(GX_SUITE)
    again = parse_suite(s.to_gx_dict())
    assert again.expectations == s.expectations


def test_reference_suite_parses():
    s = load_suite("include/expectations/orders.json")
    assert s.name == "orders"
    assert {e.severity for e in s.expectations} <= {"critical", "warning", "info"}


@pytest.mark.parametrize(
    ("doc", "severity"),
    [
        pytest.param({}, "critical", id="default-critical"),
        pytest.param({"severity": "info"}, "info", id="top-level"),
        pytest.param({"meta": {"severity": "warning"}}, "warning", id="in-meta"),
        pytest.param({"severity": "warning", "meta": {"severity": "warning"}}, "warning", id="both-agree"),
        pytest.param({"severity": "WARNING"}, "warning", id="case-insensitive"),
    ],
)
def test_severity_top_level_or_meta(doc, severity):
    e = {"type": "expect_column_to_exist", "kwargs": {"column": "a"}, **doc}
    assert parse_suite([e]).expectations[0].severity == severity


@pytest.mark.parametrize(
    ("exp", "match"),
    [
        pytest.param("nope", r"expectations\[0\]: each expectation is an object", id="not-an-object"),
        pytest.param({"kwargs": {}}, r"expectations\[0\]: 'type' is missing", id="no-type"),
        pytest.param({"type": "check_nulls"}, r"type 'check_nulls' is not a GX expectation type", id="bad-type"),
        pytest.param({"type": "expect_column_to_exist", "kwargs": {"column": "a"}, "severity": "fatal"},
                     r"expectations\[0\] \(expect_column_to_exist\): severity: 'fatal' is not a severity; "
                     r"use one of critical, warning, info", id="bad-severity"),
        pytest.param({"type": "expect_column_to_exist", "kwargs": {"column": "a"}, "severity": "critical",
                      "meta": {"severity": "info"}}, r"disagree; keep one", id="severities-disagree"),
        pytest.param({"type": "expect_column_to_exist", "kwargs": ["a"]}, r"kwargs: must be an object",
                     id="kwargs-list"),
        pytest.param({"type": "expect_column_to_exist", "kwargs": {"column": "a"}, "colum": "a"},
                     r"colum: unknown expectation field.*arguments go inside 'kwargs'", id="unknown-field"),
        pytest.param({"type": "expect_column_values_to_be_between", "kwargs": {"column": "a", "min_vale": 1}},
                     r"kwargs.min_vale: unknown argument of expect_column_values_to_be_between; its arguments "
                     r"are: .*max_value", id="typo-kwarg"),
        pytest.param({"type": "expect_column_values_to_be_between", "kwargs": {"column": "a"}},
                     r"give min_value and/or max_value", id="between-no-bounds"),
        pytest.param({"type": "expect_column_values_to_be_between",
                      "kwargs": {"column": "a", "min_value": 10, "max_value": 5}},
                     r"min_value 10 is greater than max_value 5; swap them", id="bounds-swapped"),
        pytest.param({"type": "expect_column_max_to_be_between", "kwargs": {"column": "a", "min_value": "abc"}},
                     r"kwargs.min_value: 'abc' is neither a number nor an ISO date", id="bound-not-comparable"),
        pytest.param({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a", "mostly": 1.5}},
                     r"kwargs.mostly: 1.5 must be a fraction between 0 and 1", id="mostly-out-of-range"),
        pytest.param({"type": "expect_column_values_to_not_be_null", "kwargs": {}},
                     r"kwargs.column: required", id="no-column"),
        pytest.param({"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "a", "value_set": "EUR"}},
                     r"kwargs.value_set: required; give the list", id="value-set-string"),
        pytest.param({"type": "expect_column_values_to_match_regex", "kwargs": {"column": "a"}},
                     r"kwargs.regex: required", id="no-regex"),
        pytest.param({"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": []}},
                     r"kwargs.column_list: required", id="empty-column-list"),
        # GX refuses it when the suite runs; the sql engine used to evaluate it instead
        pytest.param({"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["a"]}},
                     r"kwargs.column_list: \['a'\] names one column.*use expect_column_values_to_be_unique",
                     id="one-column-compound"),
        pytest.param({"type": "expect_compound_columns_to_be_unique",
                      "kwargs": {"column_list": ["a", "b"], "ignore_row_if": "sometimes"}},
                     r"ignore_row_if: 'sometimes' is not one of", id="bad-ignore-row-if"),
        pytest.param({"type": "expect_column_values_to_be_between",
                      "kwargs": {"column": "a", "min_value": 0, "strict_min": "yes"}},
                     r"kwargs.strict_min: must be true or false", id="strict-not-bool"),
    ],
)
def test_malformed_expectations_name_index_and_fix(exp, match):
    doc = {"name": "s", "expectations": [exp]}
    with pytest.raises(SuiteError, match=match):
        parse_suite(doc, source="suite.json")


def test_error_names_the_file_and_the_index(tmp_path):
    p = tmp_path / "orders.json"
    good = {"type": "expect_column_to_exist", "kwargs": {"column": "a"}}
    p.write_text(json.dumps({"name": "o", "expectations": [good, good, {"type": "expect_column_to_exist"}]}))
    with pytest.raises(SuiteError, match=rf"^{p}: expectations\[2\] \(expect_column_to_exist\): kwargs.column"):
        load_suite(p)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param('{"name": "x", "expectations": [', r"line 1, column \d+: invalid JSON", id="bad-json"),
        pytest.param('{"name": "x"}', r"expectations: required field is missing", id="no-expectations"),
        pytest.param('{"name": "x", "expectations": {}}', r"expectations: must be a list", id="expectations-dict"),
        pytest.param('{"name": "x", "expectations": [], "expectaitons": []}', r"expectaitons: unknown suite field",
                     id="unknown-suite-field"),
        pytest.param('"just a string"', r"top level: a suite is a JSON object", id="top-level-string"),
    ],
)
def test_malformed_files(tmp_path, text, match):
    p = tmp_path / "s.json"
    p.write_text(text)
    with pytest.raises(SuiteError, match=match):
        load_suite(p)


def test_missing_file():
    with pytest.raises(SuiteError, match=r"nope.json: suite file not found"):
        load_suite("nope.json")


def test_unknown_types_are_kept_for_gx():
    s = parse_suite([{"type": "expect_column_median_to_be_between", "kwargs": {"column": "a", "whatever": 1}}])
    assert s.expectations[0].kwargs == {"column": "a", "whatever": 1}


def test_gx_0x_spelling_accepted():
    s = parse_suite({"expectation_suite_name": "old", "expectations": [
        {"expectation_type": "expect_column_to_exist", "kwargs": {"column": "a"}}]})
    assert s.name == "old"
    assert s.expectations[0].type == "expect_column_to_exist"


def test_coerce_suite_forms(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps(GX_SUITE))
    by_path = coerce_suite(str(p))
    assert coerce_suite(p) == by_path
    assert coerce_suite(json.dumps(GX_SUITE)).expectations == by_path.expectations
    assert coerce_suite(GX_SUITE).expectations == by_path.expectations
    assert coerce_suite(GX_SUITE["expectations"]).expectations == by_path.expectations
    assert coerce_suite(by_path) is by_path

    class FakeGxSuite:  # anything with to_json_dict(), like gx.ExpectationSuite
        def to_json_dict(self):
            return GX_SUITE

    assert coerce_suite(FakeGxSuite()).expectations == by_path.expectations
    with pytest.raises(SuiteError, match=r"a suite is a path, a GX suite dict"):
        coerce_suite(42)


def test_yaml_suites(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: y\nexpectations:\n  - type: expect_column_to_exist\n    kwargs: {column: a}\n")
    assert load_suite(p).expectations[0].column == "a"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(5, 5.0, id="int-to-float"),
        pytest.param("7.5", 7.5, id="numeric-string"),
        pytest.param("2024-05-01", dt.date(2024, 5, 1), id="date"),
        pytest.param("2024-05-01T10:00:00", dt.datetime(2024, 5, 1, 10), id="datetime"),
        pytest.param("abc", "abc", id="other-kept"),
        pytest.param(None, None, id="none"),
    ],
)
def test_comparable_coerces_like_gx(value, expected):
    assert comparable(value) == expected


def test_build_suite_needs_something():
    with pytest.raises(SuiteError, match=r"give a suite file and/or a contract"):
        build_suite()


def test_build_suite_merges_contract_first(tmp_path):
    suite = build_suite("include/expectations/orders.json", "include/contracts/orders.yaml")
    assert isinstance(suite, Suite)
    assert suite.name == "orders"
    sources = [e.meta.get("source") for e in suite.expectations]
    first_suite = sources.index(None)
    assert all(s == "contract" for s in sources[:first_suite])
    assert all(s is None for s in sources[first_suite:])
    assert ExpectationSpec("expect_column_values_to_not_be_null", {"column": "order_id"},
                           suite.expectations[1].meta, "critical") in suite.expectations
