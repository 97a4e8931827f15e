"""The sql engine's compilation (one scan), and GX's rules applied to the scan's values.

Pure: the table is described by hand, values are given, no database.
"""

import datetime as dt
import re

import pytest

from safeload.gx_types import gx_type_name
from safeload.quality.sql.catalog import ColumnInfo, TableInfo
from safeload.quality.sql.compile import SUPPORTED, compile_plan
from safeload.quality.sql.results import map_result, metric_between
from safeload.quality.suite import parse_suite

TABLE = TableInfo("public", "orders", (
    ColumnInfo("order_id", "bigint", "N", "int8"),
    ColumnInfo("amount", "numeric(12,2)", "N", "numeric"),
    ColumnInfo("currency", "character(3)", "S", "bpchar"),
    ColumnInfo("status", "text", "S", "text"),
    ColumnInfo("order_date", "date", "D", "date"),
    ColumnInfo("paid", "boolean", "B", "bool"),
    ColumnInfo("payload", "json", "U", "json"),
    ColumnInfo('we"ird', "integer", "N", "int4"),
))

SUITE = [
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "order_id"}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount", "mostly": 0.99}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0, "max_value": 1e5}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "currency", "value_set": ["EUR", "O'K"]}},
    {"type": "expect_column_values_to_not_be_in_set", "kwargs": {"column": "status", "value_set": ["void"]}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "currency", "regex": "^[A-Z]{3}$"}},
    {"type": "expect_column_min_to_be_between", "kwargs": {"column": "amount", "min_value": 0}},
    {"type": "expect_column_max_to_be_between", "kwargs": {"column": "order_date", "max_value": "2030-01-01"}},
    {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "amount", "min_value": 1}},
    {"type": "expect_column_sum_to_be_between", "kwargs": {"column": "amount", "min_value": 0}},
    {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["order_id", "status"]}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": 'we"ird'}},
]


def specs(exps):
    return list(parse_suite({"name": "t", "expectations": exps}).expectations)


def render(q) -> str:
    return q.as_string(None)


def test_every_aggregate_check_compiles_to_one_scan():
    plan = compile_plan(specs(SUITE), TABLE)
    q = render(plan.scan)
    assert q.count("select ") == 1 and q.count(" from ") == 1
    assert q.endswith('from "public"."orders"')
    assert "distinct" not in q  # a distinct count would make the whole scan serial
    assert len(plan.checks) == len(SUITE) and not plan.unsupported and not plan.static


def test_distinct_counts_are_one_statement_of_their_own():
    plan = compile_plan(specs(SUITE), TABLE)
    assert plan.queries == [plan.scan, plan.distinct]
    d = render(plan.distinct)
    assert d.count("select ") == 1 and d.count(" from ") == 1
    assert 'count(distinct "order_id") as' in d
    assert 'count(distinct ("order_id", "status")) filter (where "order_id" is not null and "status" is not null)' in d
    no_unique = [e for e in SUITE if "unique" not in e["type"]]
    assert compile_plan(specs(no_unique), TABLE).queries == [compile_plan(specs(no_unique), TABLE).scan]


def test_shared_aggregates_are_computed_once():
    plan = compile_plan(specs(SUITE), TABLE)
    q = render(plan.scan)
    assert q.count("count(*) as") == 1
    assert q.count('count("amount") as') == 1  # not_null, between, mean... share it
    assert render(plan.distinct).count('count(distinct "order_id")') == 1


def test_identifiers_quoted_and_values_literal():
    q = render(compile_plan(specs(SUITE), TABLE).scan)
    assert 'count("we""ird")' in q
    assert "'O''K'" in q
    assert "\"currency\" ~ '^[A-Z]{3}$'" in q


def test_integer_bounds_stay_integers():
    exps = [{"type": "expect_column_values_to_be_between",
             "kwargs": {"column": "order_id", "min_value": 1, "max_value": 2.5}}]
    q = render(compile_plan(specs(exps), TABLE).scan)
    assert '"order_id" >= 1 and "order_id" <= 2.5' in q


def test_where_filters_the_scan():
    q = render(compile_plan(specs(SUITE), TABLE, "order_date = '2024-05-01'").scan)
    assert q.endswith("from \"public\".\"orders\" where (order_date = '2024-05-01')")


@pytest.mark.parametrize(
    ("exp", "reason"),
    [
        pytest.param({"type": "expect_column_median_to_be_between", "kwargs": {"column": "amount", "min_value": 0}},
                     "type", id="other-type"),
        pytest.param({"type": "expect_column_values_to_not_be_null",
                      "kwargs": {"column": "amount", "row_condition": 'status=="paid"',
                                 "condition_parser": "great_expectations"}}, "row_condition", id="row-condition"),
        pytest.param({"type": "expect_column_values_to_be_between",
                      "kwargs": {"column": "amount", "min_value": {"$PARAMETER": "lo"}}}, "parameter", id="param"),
    ],
)
def test_unsupported_go_to_gx(exp, reason):
    plan = compile_plan(specs([SUITE[1], exp]), TABLE)
    assert plan.unsupported == [1]
    assert [c.index for c in plan.checks] == [0]


@pytest.mark.parametrize(
    ("exp", "match"),
    [
        pytest.param({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amt"}},
                     r"column 'amt' does not exist in public.orders; its columns are: order_id, amount", id="missing"),
        pytest.param({"type": "expect_column_values_to_be_between", "kwargs": {"column": "status", "min_value": 0}},
                     r"cannot be computed on column of type TEXT", id="between-on-text"),
        pytest.param({"type": "expect_column_values_to_match_regex", "kwargs": {"column": "amount", "regex": "1"}},
                     r"'amount' is NUMERIC\(12, 2\); regular expressions apply to text columns", id="regex-on-number"),
        pytest.param({"type": "expect_column_mean_to_be_between", "kwargs": {"column": "status", "min_value": 0}},
                     r"needs a numeric column", id="mean-on-text"),
        pytest.param({"type": "expect_column_max_to_be_between", "kwargs": {"column": "paid", "min_value": 0}},
                     r"has no min/max", id="max-on-bool"),
        pytest.param({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "payload"}},
                     r"no equality operator", id="unique-on-json"),
    ],
)
def test_checks_gx_would_refuse_fail_before_the_scan(exp, match):
    plan = compile_plan(specs([SUITE[0], exp]), TABLE)
    assert set(plan.static) == {1}
    res = plan.static[1]
    assert res["success"] is False
    assert re.search(match, res["exception"])
    assert len(plan.queries) == 1  # the other checks still get their scan


@pytest.mark.parametrize(
    ("kwargs", "success"),
    [
        pytest.param({"column": "status"}, True, id="exists"),
        pytest.param({"column": "STATUS"}, True, id="case-insensitive-like-gx"),
        pytest.param({"column": "nope"}, False, id="missing"),
        pytest.param({"column": "status", "column_index": 3}, True, id="at-index"),
        pytest.param({"column": "status", "column_index": 2}, False, id="wrong-index"),
        pytest.param({"column": "status", "column_index": 0}, True, id="index-0-is-existence-in-gx"),
        pytest.param({"column": "status", "column_index": 99}, False, id="index-out-of-range"),
    ],
)
def test_column_to_exist(kwargs, success):
    plan = compile_plan(specs([{"type": "expect_column_to_exist", "kwargs": kwargs}]), TABLE)
    assert plan.static[0]["success"] is success
    assert plan.scan is None  # catalogue only


@pytest.mark.parametrize(
    ("column", "type_", "success", "observed"),
    [
        pytest.param("amount", "NUMERIC(12, 2)", True, "NUMERIC(12, 2)", id="numeric"),
        pytest.param("amount", "numeric(12, 2)", True, "NUMERIC(12, 2)", id="case-insensitive"),
        pytest.param("amount", "numeric(12,2)", False, "NUMERIC(12, 2)", id="gx-spacing-matters"),
        pytest.param("currency", "CHAR(3)", True, "CHAR(3)", id="char"),
        pytest.param("order_id", "INTEGER", False, "BIGINT", id="wrong"),
    ],
)
def test_column_type(column, type_, success, observed):
    exps = [{"type": "expect_column_values_to_be_of_type", "kwargs": {"column": column, "type_": type_}}]
    res = compile_plan(specs(exps), TABLE).static[0]
    assert (res["success"], res["result"]["observed_value"]) == (success, observed)


@pytest.mark.parametrize(
    ("pg", "gx"),
    [  # what GX 1.24 reports on PostgreSQL for each (format_type spelling)
        ("smallint", "SMALLINT"), ("integer", "INTEGER"), ("bigint", "BIGINT"), ("numeric", "NUMERIC"),
        ("numeric(12,2)", "NUMERIC(12, 2)"), ("real", "REAL"), ("double precision", "DOUBLE PRECISION"),
        ("text", "TEXT"), ("character varying", "VARCHAR"), ("character varying(40)", "VARCHAR(40)"),
        ("character(3)", "CHAR(3)"), ("boolean", "BOOLEAN"), ("date", "DATE"),
        ("timestamp without time zone", "TIMESTAMP WITHOUT TIME ZONE"),
        ("timestamp(3) without time zone", "TIMESTAMP(3) WITHOUT TIME ZONE"),
        ("timestamp with time zone", "TIMESTAMP WITH TIME ZONE"), ("time without time zone", "TIME WITHOUT TIME ZONE"),
        ("uuid", "UUID"), ("json", "JSON"), ("jsonb", "JSONB"), ("bytea", "BYTEA"), ("interval", "INTERVAL"),
        ("integer[]", "INTEGER[]"),
        # contract spellings
        ("varchar(40)", "VARCHAR(40)"), ("char(3)", "CHAR(3)"), ("timestamptz", "TIMESTAMP WITH TIME ZONE"),
        ("timestamp", "TIMESTAMP WITHOUT TIME ZONE"), ("time", "TIME WITHOUT TIME ZONE"),
    ],
)
def test_gx_type_names(pg, gx):
    assert gx_type_name(pg) == gx


def test_unique_index_proves_uniqueness_without_counting():
    key = (frozenset({"order_id"}),)
    # an index with another operator class or collation is not trusted: counted
    inexact = TableInfo(TABLE.schema, TABLE.table, TABLE.columns, unique_sets=key)
    assert "distinct" in render(compile_plan(specs([SUITE[2]]), inexact).distinct)
    table = TableInfo(TABLE.schema, TABLE.table, TABLE.columns, unique_sets=key, exact_unique_sets=key)
    plan = compile_plan(specs([SUITE[2], SUITE[12]]), table)
    assert "distinct" not in render(plan.scan)
    assert plan.distinct is None and plan.queries == [plan.scan]
    values = {"s0": 10, "s1": 10, "s2": 10}
    values.update({k: 10 for k in plan._exprs})
    res = plan.checks[0].evaluate(values, lambda q: pytest.fail("no second statement"))
    assert res["success"] and res["result"]["unexpected_count"] == 0


def _evaluate(exps, values_by_expr, followup=None):
    """Evaluate compiled checks with values given per SQL expression (as rendered)."""
    plan = compile_plan(specs(exps), TABLE, sample_size=0)
    names = {render(e): n for n, e in plan._exprs.items()}
    values = {names[k]: v for k, v in values_by_expr.items()}
    return [c.evaluate(values, followup or (lambda q: pytest.fail(f"unexpected statement {render(q)}")))
            for c in plan.checks]


def test_unique_needs_a_second_statement_only_with_duplicates():
    exp = [SUITE[2]]
    no_dups = {"count(*)": 5, 'count("order_id")': 4, 'count(distinct "order_id")': 4}
    (res,) = _evaluate(exp, no_dups)
    assert res["success"] and res["result"]["unexpected_count"] == 0
    dups = {"count(*)": 5, 'count("order_id")': 4, 'count(distinct "order_id")': 3}
    seen = []
    (res,) = _evaluate(exp, dups, followup=lambda q: seen.append(render(q)) or [(2,)])
    assert res["result"]["unexpected_count"] == 2  # both rows of the repeated value
    assert res["result"]["unexpected_percent"] == 50.0
    assert "group by \"order_id\" having count(*) > 1" in seen[0]


@pytest.mark.parametrize(
    ("n", "nonnull", "u", "mostly", "success", "pct"),
    [
        pytest.param(0, 0, None, 1, True, None, id="empty-vacuous"),
        pytest.param(3, 0, 0, 1, True, None, id="all-null-vacuous"),
        pytest.param(10, 8, 0, 1, True, 0.0, id="clean"),
        pytest.param(10, 8, 1, 1, False, 12.5, id="one-bad"),
        pytest.param(10, 8, 1, 0.875, True, 12.5, id="mostly-on-the-edge"),
        pytest.param(10, 8, 2, 0.875, False, 25.0, id="mostly-exceeded"),
        pytest.param(10, 8, 8, 0.0, True, 100.0, id="mostly-zero"),
    ],
)
def test_map_result_gx_rules(n, nonnull, u, mostly, success, pct):
    res = map_result(element_count=n, nonnull_count=nonnull, unexpected_count=u, mostly=mostly)
    assert res["success"] is success
    assert res["result"]["unexpected_percent"] == pct
    assert res["result"]["missing_count"] == n - nonnull


def test_not_null_denominator_is_every_row():
    res = map_result(element_count=4, nonnull_count=None, unexpected_count=1, mostly=0.75)
    assert res["success"] is True
    assert res["result"] == {"element_count": 4, "unexpected_count": 1, "unexpected_percent": 25.0}


@pytest.mark.parametrize(
    ("value", "kwargs", "success"),
    [
        pytest.param(5, {"min_value": 5}, True, id="inclusive-min"),
        pytest.param(5, {"min_value": 5, "strict_min": True}, False, id="strict-min"),
        pytest.param(5, {"max_value": 5, "strict_max": True}, False, id="strict-max"),
        pytest.param(5, {}, True, id="no-bounds"),
        pytest.param(None, {"min_value": 0}, False, id="no-value-fails"),
        pytest.param(float("nan"), {"min_value": 0}, False, id="nan-fails"),
        pytest.param(dt.date(2024, 5, 1), {"min_value": "2024-05-01"}, True, id="date-bound"),
    ],
)
def test_metric_between_gx_rules(value, kwargs, success):
    assert metric_between(value, kwargs)["success"] is success


def test_metric_between_incomparable_is_an_error():
    res = metric_between(dt.date(2024, 5, 1), {"min_value": 3})
    assert res["success"] is False and "cannot compare" in res["exception"]


def test_row_count_bounds_are_integers_like_gx():
    assert metric_between(5, {"min_value": 5.5}, integer_bounds=True)["success"] is True


def test_supported_list():
    assert len(SUPPORTED) == 14
