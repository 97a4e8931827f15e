"""The sql engine's rewrites that cut per-row work: literal regular expressions as LIKE,
and the scan grouped by low-cardinality columns. Pure: no database (the results of both
are held to GX's in tests/integration/quality/test_quality_differential.py)."""

import pytest

from safeload.quality.sql.catalog import ColumnInfo, TableInfo
from safeload.quality.sql.checks_values import regex_as_like
from safeload.quality.sql.compile import compile_plan
from safeload.quality.sql.grouping import MAX_GROUPS, choose_group_keys
from safeload.quality.suite import parse_suite

TABLE = TableInfo("public", "orders", (
    ColumnInfo("order_id", "bigint", "N", "int8"),
    ColumnInfo("amount", "numeric(12,2)", "N", "numeric"),
    ColumnInfo("currency", "character(3)", "S", "bpchar"),
    ColumnInfo("status", "text", "S", "text"),
    ColumnInfo("email", "text", "S", "text"),
    ColumnInfo("order_date", "date", "D", "date"),
    ColumnInfo("ci_name", "text", "S", "text", deterministic=False),
    ColumnInfo("span", "interval", "T", "interval"),
    ColumnInfo("payload", "jsonb", "U", "jsonb"),
))


def specs(exps):
    return list(parse_suite({"name": "t", "expectations": exps}).expectations)


def exp(etype, **kwargs):
    return {"type": etype, "kwargs": kwargs}


def render(q) -> str:
    return q.as_string(None)


@pytest.mark.parametrize(
    ("regex", "like"),
    [
        pytest.param("^INV-", "INV-%", id="prefix"),
        pytest.param("csv$", "%csv", id="suffix"),
        pytest.param("@", "%@%", id="contains"),
        pytest.param("^paid$", "paid", id="whole"),
        pytest.param("^$", "", id="empty-string"),
        pytest.param("", "%%", id="empty-pattern-matches-all"),
        pytest.param(r"\.csv$", "%.csv", id="escaped-dot"),
        pytest.param(r"^a\$", "a$%", id="escaped-dollar"),
        pytest.param("50%", r"%50\%%", id="percent-escaped"),
        pytest.param("a_b", r"%a\_b%", id="underscore-escaped"),
        pytest.param(r"a\\b", r"%a\\b%", id="backslash"),
    ],
)
def test_literal_regex_as_like(regex, like):
    assert regex_as_like(regex) == like


@pytest.mark.parametrize("regex", ["^[A-Z]{3}$", "a.c", "a|b", "(?i)abc", "***=abc", r"\d+", r"\mword", "a$b",
                                   "a^b", "ab*", "x?", "a\\"])
def test_other_regex_stays_a_regex(regex):
    assert regex_as_like(regex) is None


def test_literal_regex_compiles_to_like_but_not_under_a_nondeterministic_collation():
    plan = compile_plan(specs([exp("expect_column_values_to_match_regex", column="status", regex="^pa"),
                               exp("expect_column_values_to_match_regex", column="ci_name", regex="^pa"),
                               exp("expect_column_values_to_match_regex", column="email", regex="^[^@]+@")]),
                        TABLE)
    q = render(plan.scan)
    assert "not (\"status\" like 'pa%')" in q
    assert "not (\"ci_name\" ~ '^pa')" in q  # PostgreSQL refuses either; the error must be the regex's
    assert "not (\"email\" ~ '^[^@]+@')" in q


SUITE = [
    exp("expect_table_row_count_to_be_between", min_value=1),
    exp("expect_column_values_to_not_be_null", column="currency"),
    exp("expect_column_values_to_be_in_set", column="currency", value_set=["EUR", "USD"]),
    exp("expect_column_values_to_match_regex", column="currency", regex="^[A-Z]{3}$"),
    exp("expect_column_values_to_not_be_in_set", column="status", value_set=["void"]),
    exp("expect_column_values_to_be_between", column="amount", min_value=0),
    exp("expect_column_mean_to_be_between", column="amount", min_value=0),
    exp("expect_column_sum_to_be_between", column="amount", min_value=0),
    exp("expect_column_max_to_be_between", column="order_date", max_value="2030-01-01"),
    exp("expect_column_values_to_be_unique", column="order_id"),
    exp("expect_column_values_to_match_regex", column="email", regex="^[^@]+@[^@]+$"),
    exp("expect_column_values_to_match_regex", column="ci_name", regex="^[a-z]"),
]


def test_group_candidates_are_columns_with_per_row_predicates_of_identity_types():
    plan = compile_plan(specs(SUITE), TABLE)
    # ci_name: a nondeterministic collation ('a' = 'A' may hold), never a key
    assert plan.group_candidates() == {"currency": True, "status": False, "amount": False, "email": True}


def test_grouped_scan_evaluates_key_predicates_per_group():
    plan = compile_plan(specs(SUITE), TABLE).grouped(["currency", "status"])
    q = render(plan.scan)
    inner = q[q.index("(select "):]
    outer = q[:q.index("(select ")]
    assert inner.count(" group by ") == 1 and inner.rstrip().endswith('group by "currency", "status") as "_g"')
    # predicates on the keys: once per group, weighted by the group's rows
    assert "sum(\"_gn\") filter (where not (\"currency\" ~ '^[A-Z]{3}$'))" in outer
    assert "sum(\"_gn\") filter (where not (not (\"status\" in ('void'))))" in outer
    assert 'sum("_gn") filter (where "currency" is not null)' in outer
    # regexes on other columns stay per row
    assert inner.count("~") == 2 and "\"email\" ~" in inner and "\"ci_name\" ~" in inner
    # the other aggregates add up: means as sum / count, as avg computes them
    assert 'count(*) filter (where not ("amount" >= 0.0)) as' in inner
    assert "/ nullif(sum(" in outer and "::numeric" in outer
    assert inner.count('count("amount")') == 1 and inner.count('sum("amount")') == 1  # shared
    assert "distinct" not in q
    assert plan.distinct is not None  # uniqueness: its own statement, grouped or not


def test_group_keys_are_validated():
    plan = compile_plan(specs(SUITE), TABLE)
    with pytest.raises(ValueError, match="cannot group by"):
        plan.grouped(["ci_name"])
    with pytest.raises(ValueError, match="cannot group by"):
        plan.grouped(["payload"])
    mean_of_interval = compile_plan(specs([exp("expect_column_mean_to_be_between", column="span", min_value=0),
                                           exp("expect_column_values_to_match_regex", column="status",
                                               regex="^[a-z]")]), TABLE)
    assert mean_of_interval.groupable() is False
    with pytest.raises(ValueError, match="sum or mean"):
        mean_of_interval.grouped(["status"])
    assert plan.grouped([]).scan.as_string(None) == plan.scan.as_string(None)


def test_a_key_column_named_like_the_inner_aliases():
    table = TableInfo("public", "t", (ColumnInfo("_g1", "text", "S", "text"),))
    plan = compile_plan(specs([exp("expect_column_values_to_match_regex", column="_g1", regex="^[a-z]")]), table)
    q = render(plan.grouped(["_g1"]).scan)
    assert 'as "_g_n"' in q and 'group by "_g1") as "_g_"' in q


@pytest.mark.parametrize(
    ("candidates", "cardinality", "keys"),
    [
        pytest.param({"currency": True, "status": False}, {"currency": 3, "status": 6}, ("currency", "status"),
                     id="regex-on-a-low-cardinality-column"),
        pytest.param({"currency": False, "status": False}, {"currency": 3, "status": 6}, (),
                     id="no-regex-no-grouping"),
        pytest.param({"email": True, "status": False}, {"status": 6}, (), id="regex-column-not-low"),
        pytest.param({"email": True, "status": False}, {"email": 5000, "status": 6}, (),
                     id="regex-column-too-many-values"),
        pytest.param({"a": True, "b": False, "c": False}, {"a": 10, "b": 50, "c": 200}, ("a", "b"),
                     id="groups-capped"),
        pytest.param({"a": True, "b": True}, {"a": 40, "b": 2}, ("b", "a"), id="regex-columns-first-fewest-values"),
        pytest.param({"a": True}, {"a": 0}, ("a",), id="all-null-column"),
    ],
)
def test_choose_group_keys(candidates, cardinality, keys):
    got = choose_group_keys(candidates, cardinality)
    assert got == keys
    groups = 1
    for k in got:
        groups *= max(cardinality[k], 1)
    assert groups <= MAX_GROUPS


@pytest.mark.parametrize(("n", "rendered"), [(1, 1), (2, 9), (3, 9), (8, 9), (9, 9), (12, 12)])
def test_short_in_lists_are_padded_to_the_hashed_lookup(n, rendered):
    values = [f"v{k}" for k in range(n)]
    for etype in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        q = render(compile_plan(specs([exp(etype, column="status", value_set=values)]), TABLE).scan)
        in_list = q[q.index('"status" in (') + len('"status" in ('):]
        in_list = in_list[:in_list.index(")")]
        items = in_list.split(", ")
        assert len(items) == rendered
        assert set(items) == {f"'v{k}'" for k in range(n)}  # the same set
