"""The gx engine (Great Expectations 1.x itself) and suite compatibility with GX."""

from __future__ import annotations

import json

import pytest

from safeload.quality.gate import run_gate
from safeload.quality.suite import coerce_suite, load_suite, parse_suite

TABLE = """
create table public.t (id int, amount numeric(10,2), code text, day date);
insert into public.t values (1, 5, 'AB', '2024-05-01'), (2, null, 'AB', '2024-05-01'), (2, 7, 'x', '2024-05-02');
"""


@pytest.fixture
def t(pg, pg_uri):
    pg.execute(TABLE)
    return pg_uri


SUITE = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}, "severity": "warning"},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}, "meta": {"twin": True}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "code", "regex": "^[A-Z]+$"},
     "meta": {"severity": "info"}},
    {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "amount", "type_": "NUMERIC(10, 2)"}},
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
    {"type": "expect_column_median_to_be_between", "kwargs": {"column": "amount", "min_value": 6, "max_value": 6}},
    {"type": "expect_column_values_to_be_fancy", "kwargs": {"column": "id"}},
]


def test_gx_engine_runs_the_whole_suite(t):
    result = run_gate(t, table="public.t", suite=SUITE, engine="gx")
    assert [r.engine_used for r in result.results] == ["gx"] * len(SUITE)
    assert [r.success for r in result.results] == [False, False, False, False, True, True, True, False]
    assert [r.severity for r in result.results][:4] == ["warning", "critical", "critical", "info"]
    assert result.results[1].observed_value == {"element_count": 3, "unexpected_count": 2,
                                                "unexpected_percent": pytest.approx(200 / 3), "missing_count": 0}
    assert result.results[2].observed_value == result.results[1].observed_value  # GX's suite is a set; both report
    assert result.results[4].observed_value == "NUMERIC(10, 2)"
    assert "expect_column_values_to_be_fancy" in result.results[7].exception
    assert result.success is False
    json.dumps(result.to_dict())


def test_both_engines_report_the_same(t):
    supported = SUITE[:6]
    sql = run_gate(t, table="public.t", suite=supported, engine="sql").to_dict()["results"]
    gx = run_gate(t, table="public.t", suite=supported, engine="gx").to_dict()["results"]
    for a, b in zip(sql, gx):
        assert (a["success"], a["severity"], a["expected"]) == (b["success"], b["severity"], b["expected"])
        if isinstance(b["observed_value"], dict):
            assert a["observed_value"] == pytest.approx(b["observed_value"])
        else:
            assert a["observed_value"] == b["observed_value"]


def test_gx_engine_on_a_partition_reads_types_from_the_table(t):
    # GX cannot read column types of a query asset on PostgreSQL; schema checks run on the table
    suite = [SUITE[4], {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 2, "max_value": 2}}]
    result = run_gate(t, table="public.t", suite=suite, engine="gx", where="day = '2024-05-01'")
    assert [r.success for r in result.results] == [True, True], result.summary()


def test_our_suites_are_gx_suites(tmp_path):
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    assert context is not None
    ours = load_suite("include/expectations/orders.json")
    theirs = gx.ExpectationSuite(**ours.to_gx_dict())
    assert [e.severity.value for e in theirs.expectations] == [e.severity for e in ours.expectations]
    back = coerce_suite(theirs)  # a gx.ExpectationSuite is accepted as is
    assert [(e.type, e.kwargs, e.severity) for e in back.expectations] == \
        [(e.type, e.kwargs, e.severity) for e in ours.expectations]
    p = tmp_path / "from_gx.json"
    p.write_text(json.dumps(theirs.to_json_dict()))
    assert [e.severity for e in load_suite(p).expectations] == [e.severity for e in ours.expectations]


def test_meta_severity_reaches_gx():
    import great_expectations as gx

    gx.get_context(mode="ephemeral")
    s = parse_suite([{"type": "expect_column_to_exist", "kwargs": {"column": "a"}, "meta": {"severity": "info"}}])
    assert gx.ExpectationSuite(**s.to_gx_dict()).expectations[0].severity.value == "info"
