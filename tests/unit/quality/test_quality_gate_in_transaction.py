"""Whether a gate can check a load's rows inside its open transaction (a direct load):
only the sql engine, and only when it evaluates every check of the suite itself."""

from __future__ import annotations

import pytest

from safeload.quality.gate import GateError, in_transaction_blocker, run_gate

REGEX = {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "c", "regex": "^a"}}
GX_ONLY = {"type": "expect_column_values_to_be_dateutil_parseable", "kwargs": {"column": "c"}}


@pytest.mark.parametrize(("suite", "engine", "says"), [
    pytest.param([REGEX], "sql", None, id="sql-engine-checks-all"),
    pytest.param([REGEX], "gx", "the gx engine opens connections of its own", id="gx-engine"),
    pytest.param([REGEX, GX_ONLY], "sql", "expect_column_values_to_be_dateutil_parseable is not one of the sql "
                 "engine's types, so the gx engine checks it", id="a-check-for-gx"),
    pytest.param([{**REGEX, "kwargs": {**REGEX["kwargs"], "row_condition": 'c=="a"'}}], "sql",
                 "row_condition", id="row-condition"),
])
def test_what_keeps_a_gate_out_of_a_loads_transaction(suite, engine, says):
    why = in_transaction_blocker(suite, engine)
    assert why is None if says is None else says in why


def test_a_gate_asked_to_check_inside_a_transaction_it_cannot_is_refused_before_any_query():
    with pytest.raises(GateError, match="cannot check public.t inside a load's open transaction: the gx engine"):
        run_gate("postgresql://nobody@127.0.0.1:1/none", table="public.t", suite=[REGEX], engine="gx",
                 conn=object())
