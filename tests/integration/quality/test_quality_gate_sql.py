"""The quality gate with the sql engine on a real PostgreSQL: every supported type passes
on good data and fails on bad data, in one scan."""

from __future__ import annotations

import time

import pytest

from safeload.quality.gate import GateError, run_gate

ORDERS = """
create table public.orders (
    order_id bigint, order_date date, customer_id bigint, amount numeric(12,2),
    currency char(3), status text, line int
);
insert into public.orders values
    (1, '2024-05-01', 10, 10.00, 'EUR', 'paid', 1),
    (2, '2024-05-01', 11, 20.50, 'USD', 'paid', 1),
    (3, '2024-05-01', 12, 99.99, 'GBP', 'placed', 1),
    (4, '2024-05-02', 10, 0.00, 'EUR', 'shipped', 1),
    (5, '2024-05-02', 13, 250.00, 'EUR', 'paid', 2);
"""

# (expectation, passes on ORDERS): each type once passing, once failing
CASES = [
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}, True),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_id"}}, True),
    ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "order_id"}}, True),
    ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "customer_id"}}, False),
    ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "customer_id", "mostly": 0.6}}, True),
    ({"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0,
                                                               "max_value": 250}}, True),
    ({"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0,
                                                               "strict_min": True}}, False),
    ({"type": "expect_column_values_to_be_between", "kwargs": {"column": "order_date", "min_value": "2024-05-01",
                                                               "max_value": "2024-05-02"}}, True),
    ({"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "currency",
                                                              "value_set": ["EUR", "USD", "GBP"]}}, True),
    ({"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "currency", "value_set": ["EUR"]}}, False),
    ({"type": "expect_column_values_to_not_be_in_set", "kwargs": {"column": "status", "value_set": ["void"]}}, True),
    ({"type": "expect_column_values_to_not_be_in_set", "kwargs": {"column": "status", "value_set": ["placed"]}},
     False),
    ({"type": "expect_column_values_to_match_regex", "kwargs": {"column": "currency", "regex": "^[A-Z]{3}$"}}, True),
    ({"type": "expect_column_values_to_match_regex", "kwargs": {"column": "status", "regex": "^p"}}, False),
    ({"type": "expect_column_min_to_be_between", "kwargs": {"column": "amount", "min_value": 0}}, True),
    ({"type": "expect_column_min_to_be_between", "kwargs": {"column": "amount", "min_value": 0,
                                                            "strict_min": True}}, False),
    ({"type": "expect_column_max_to_be_between", "kwargs": {"column": "order_date", "max_value": "2024-05-02"}},
     True),
    ({"type": "expect_column_max_to_be_between", "kwargs": {"column": "amount", "max_value": 250,
                                                            "strict_max": True}}, False),
    ({"type": "expect_column_mean_to_be_between", "kwargs": {"column": "amount", "min_value": 76,
                                                             "max_value": 76.1}}, True),
    ({"type": "expect_column_mean_to_be_between", "kwargs": {"column": "amount", "max_value": 50}}, False),
    ({"type": "expect_column_sum_to_be_between", "kwargs": {"column": "amount", "min_value": 380.49,
                                                            "max_value": 380.49}}, True),
    ({"type": "expect_column_sum_to_be_between", "kwargs": {"column": "line", "max_value": 5}}, False),
    ({"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1, "max_value": 5}}, True),
    ({"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 6}}, False),
    ({"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["order_id", "line"]}}, True),
    ({"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["customer_id", "line"]}}, False),
    ({"type": "expect_column_to_exist", "kwargs": {"column": "status"}}, True),
    ({"type": "expect_column_to_exist", "kwargs": {"column": "refund"}}, False),
    ({"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "amount", "type_": "NUMERIC(12, 2)"}}, True),
    ({"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "currency", "type_": "TEXT"}}, False),
]


@pytest.fixture
def orders(pg, pg_uri):
    pg.execute(ORDERS)
    return pg_uri


def test_each_supported_type_passes_and_fails(orders):
    result = run_gate(orders, table="public.orders", suite=[c for c, _ in CASES])
    got = [(r.type, r.success) for r in result.results]
    assert got == [(c["type"], ok) for c, ok in CASES]
    assert {r.engine_used for r in result.results} == {"sql"}
    assert result.success is False


def test_observed_values(orders):
    result = run_gate(orders, table="orders", suite=[c for c, _ in CASES])
    by = {(r.type, str(r.kwargs)): r for r in result.results}

    def obs(i):
        c = CASES[i][0]
        return by[(c["type"], str(c["kwargs"]))].observed_value

    assert obs(3) == {"element_count": 5, "unexpected_count": 2, "unexpected_percent": 40.0, "missing_count": 0}
    assert obs(6)["unexpected_count"] == 1  # amount 0.00 is not > 0
    assert obs(18) == pytest.approx(76.098)
    assert obs(20) == pytest.approx(380.49)
    assert str(obs(16)) == "2024-05-02"
    assert obs(22) == 5
    assert obs(29) == "CHAR(3)"
    failed_unique = next(r for r in result.results if r.type.endswith("to_be_unique") and not r.success)
    assert failed_unique.details["partial_unexpected_list"] == [10]


def _wait_for_scans(conninfo: str, table: str, at_least: int) -> int:
    import psycopg

    deadline = time.monotonic() + 10
    while True:  # statistics reach the shared counters a moment after the session ends
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("select pg_stat_clear_snapshot()")
            n = conn.execute("select seq_scan from pg_stat_user_tables where relname = %s", (table,)).fetchone()[0]
        if n >= at_least or time.monotonic() > deadline:
            return n
        time.sleep(0.2)


def test_a_passing_suite_reads_the_table_once_for_aggregates_once_for_distinct_counts(orders):
    passing = [c for c, ok in CASES if ok and "mostly" not in c["kwargs"]]
    assert len(passing) >= 14
    no_unique = [c for c in passing if "unique" not in c["type"]]
    before = _wait_for_scans(orders, "orders", 0)
    assert run_gate(orders, table="public.orders", suite=no_unique).success
    time.sleep(0.5)
    assert _wait_for_scans(orders, "orders", before + 1) - before == 1, "one sequential scan for the whole suite"
    # uniqueness without an index: the distinct counts (of both unique checks) are one
    # more statement, run beside the scan
    assert run_gate(orders, table="public.orders", suite=passing).success
    time.sleep(0.5)
    assert _wait_for_scans(orders, "orders", before + 3) - before == 3
    # duplicates within 'mostly': one more statement counts the duplicated rows exactly
    assert run_gate(orders, table="public.orders", suite=[CASES[4][0]]).success
    time.sleep(0.5)
    assert _wait_for_scans(orders, "orders", before + 6) - before == 6


def test_partition_where(orders):
    suite = [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 3, "max_value": 3}},
             {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "order_date",
                                                                      "value_set": ["2024-05-01"]}}]
    result = run_gate(orders, table="public.orders", suite=suite, where="order_date = '2024-05-01'")
    assert result.success, result.summary()
    assert result.where == "order_date = '2024-05-01'"


def test_unsupported_types_go_to_gx(orders):
    suite = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}},
             {"type": "expect_column_median_to_be_between", "kwargs": {"column": "amount", "min_value": 20,
                                                                       "max_value": 21}},
             {"type": "expect_column_values_to_not_be_null",
              "kwargs": {"column": "amount", "row_condition": 'col("status")=="paid"',
                         "condition_parser": "great_expectations"}}]
    result = run_gate(orders, table="public.orders", suite=suite)
    assert [r.engine_used for r in result.results] == ["sql", "gx", "gx"]
    assert [r.success for r in result.results] == [True, True, True]
    assert result.results[1].observed_value == pytest.approx(20.5)


def test_a_check_postgresql_refuses_does_not_take_the_others_down(orders):
    suite = [{"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "order_id", "value_set": ["x"]}},
             {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "status", "regex": "(unclosed"}},
             {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}]
    result = run_gate(orders, table="public.orders", suite=suite)
    assert [r.success for r in result.results] == [False, False, True]
    assert "invalid input syntax for type bigint" in result.results[0].exception
    assert "invalid regular expression" in result.results[1].exception
    assert result.results[2].observed_value["unexpected_count"] == 0


def test_unique_index_shortcut_agrees(orders, pg):
    suite = [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "order_id"}},
             {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["order_id", "line"]}}]
    before = [r.to_dict() for r in run_gate(orders, table="public.orders", suite=suite).results]
    pg.execute("alter table public.orders add primary key (order_id)")
    after = [r.to_dict() for r in run_gate(orders, table="public.orders", suite=suite, work_mem="64MB").results]
    assert after == before


def test_no_rows_no_failure_for_map_checks_but_aggregates_fail(pg, pg_uri):
    pg.execute("create table e (a int)")
    result = run_gate(pg_uri, table="e", suite=[
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "a", "max_value": 1}}])
    assert [r.success for r in result.results] == [True, False]
    assert result.results[1].observed_value is None
    assert "no value" in result.summary()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"table": "public.nope"}, r"table public.nope does not exist", id="no-table"),
        pytest.param({"table": "public.orders; drop"}, r"has characters outside", id="bad-name"),
        pytest.param({"table": "public.orders", "where": "nope = 1"},
                     r"the where clause 'nope = 1' is not valid on public.orders: column \"nope\" does not exist",
                     id="bad-where"),
        pytest.param({"table": "public.orders", "engine": "spark"}, r"engine 'spark' is not one of sql, gx",
                     id="bad-engine"),
    ],
)
def test_gate_cannot_run(orders, kwargs, match):
    with pytest.raises(GateError, match=match):
        run_gate(orders, suite=[CASES[0][0]], **kwargs)


def test_connection_error_is_retryable():
    with pytest.raises(GateError, match=r"cannot connect to the warehouse") as e:
        run_gate("postgresql://postgres@127.0.0.1:1/db", table="t", suite=[CASES[0][0]])
    assert e.value.retryable is True
