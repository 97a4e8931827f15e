import datetime as dt
import json
import subprocess
import sys

import pytest

from safeload.errors import QualityGateError
from safeload.quality.cli import build_parser
from safeload.quality.gate import ExpectationResult, GateResult, expected_text, volume_band
from safeload.quality.suite import ExpectationSpec


def spec(etype, severity="critical", **kwargs):
    return ExpectationSpec(etype, kwargs, {}, severity)


@pytest.mark.parametrize(
    ("s", "text"),
    [
        pytest.param(spec("expect_column_values_to_not_be_null", column="a"), "0 nulls", id="not-null"),
        pytest.param(spec("expect_column_values_to_not_be_null", column="a", mostly=0.99), "at most 1% nulls",
                     id="not-null-mostly"),
        pytest.param(spec("expect_column_values_to_be_between", column="a", min_value=0, max_value=100000),
                     "between 0 and 100,000", id="between"),
        pytest.param(spec("expect_column_values_to_be_between", column="a", min_value=0, strict_min=True,
                          mostly=0.99), "> 0 (at most 1% unexpected)", id="strict-mostly"),
        pytest.param(spec("expect_column_values_to_be_in_set", column="c", value_set=["EUR", "USD"]),
                     "in {'EUR', 'USD'}", id="in-set"),
        pytest.param(spec("expect_column_values_to_be_unique", column="a"), "no duplicates", id="unique"),
        pytest.param(spec("expect_table_row_count_to_be_between", min_value=1), "row count >= 1", id="row-count"),
        pytest.param(spec("expect_column_mean_to_be_between", column="a", min_value=1, max_value=2),
                     "mean between 1 and 2", id="mean"),
        pytest.param(spec("expect_column_values_to_be_of_type", column="a", type_="TEXT"), "type TEXT", id="type"),
    ],
)
def test_expected_text(s, text):
    assert expected_text(s) == text


def result(s, success, observed, details=None, exception=None):
    return ExpectationResult.from_raw(s, {"success": success, "result": details or observed,
                                          "exception": exception}, "sql")


NULLS = result(spec("expect_column_values_to_not_be_null", column="amount"), False,
               {"element_count": 1000, "unexpected_count": 3, "unexpected_percent": 0.3})
MEAN = result(spec("expect_column_mean_to_be_between", "warning", column="amount", min_value=10, max_value=20),
              False, {"observed_value": 25.5})
OK = result(spec("expect_column_max_to_be_between", column="d", max_value="2030-01-01"), True,
            {"observed_value": dt.date(2024, 5, 1)})


def test_observed_value_shapes():
    assert NULLS.observed_value == {"element_count": 1000, "unexpected_count": 3, "unexpected_percent": 0.3}
    assert MEAN.observed_value == 25.5
    assert NULLS.column == "amount" and NULLS.engine_used == "sql"


def test_success_means_no_critical_failure():
    assert GateResult([MEAN, OK]).success is True
    assert GateResult([NULLS, MEAN, OK]).success is False


def test_summary_lists_failed_checks_critical_first():
    text = GateResult([MEAN, OK, NULLS], table="public.orders", where="d = '2024-05-01'").summary()
    lines = text.splitlines()
    assert lines[0] == ("quality gate on public.orders where d = '2024-05-01' FAILED: 2 of 3 checks failed "
                        "(1 critical, 1 warning)")
    assert lines[1] == ("  CRITICAL expect_column_values_to_not_be_null(amount): observed 3 nulls of 1,000 rows "
                        "(0.3%); expected 0 nulls")
    assert lines[2] == ("  WARNING  expect_column_mean_to_be_between(amount): observed 25.5; "
                        "expected mean between 10 and 20")


def test_summary_is_bounded():
    text = GateResult([NULLS] * 50, table="t").summary(limit=20)
    assert len(text.splitlines()) == 22
    assert text.splitlines()[-1] == "  ... and 30 more failed checks"


def test_raise_for_critical_after_all_checks():
    gate = GateResult([NULLS, MEAN, OK], table="public.orders", location="safeload.quality_results where run_key = 'k'")
    with pytest.raises(QualityGateError, match=r"(?s)2 of 3 checks failed.*full result: safeload.quality_results "
                                               r"where run_key = 'k'") as e:
        gate.raise_for_critical()
    assert e.value.result is gate
    GateResult([MEAN, OK]).raise_for_critical()  # warnings do not raise


def test_raise_without_history_says_where_the_result_is():
    with pytest.raises(QualityGateError, match=r"full result: QualityGateError.result"):
        GateResult([NULLS], table="t").raise_for_critical()


def test_to_dict_is_json():
    d = GateResult([NULLS, MEAN, OK], table="t").to_dict()
    json.dumps(d)
    assert d["success"] is False
    assert [r["type"] for r in d["results"]] == [NULLS.type, MEAN.type, OK.type]
    assert set(d["results"][0]) >= {"type", "column", "kwargs", "success", "observed_value", "severity", "expected",
                                    "engine_used"}
    assert d["results"][2]["observed_value"] == "2024-05-01"
    assert d["statistics"] == {"evaluated": 3, "successful": 1, "failed_critical": 1, "failed_warning": 1,
                               "failed_info": 0}


def test_errors_are_failures_with_their_message():
    r = result(spec("expect_column_values_to_not_be_null", column="x"), False, {},
               exception="column 'x' does not exist in public.t")
    assert GateResult([r]).success is False
    assert "observed error: column 'x' does not exist" in GateResult([r], table="t").summary()
    assert r.to_dict()["exception"] == "column 'x' does not exist in public.t"


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        pytest.param([100, 102, 98, 101, 99], (100, 1, 60.0, 140.0), id="mad-floored-at-10pct"),
        pytest.param([100] * 5, (100, 0, 60.0, 140.0), id="steady"),
        pytest.param([100, 200, 300, 400, 500], (300, 100, 0.0, 700.0), id="wide"),
    ],
)
def test_volume_band(history, expected):
    assert volume_band(history, k=4) == expected


def test_cli_parser():
    args = build_parser().parse_args(["gate", "run", "--suite", "s.json", "--conn", "postgresql://x/db",
                                      "--table", "public.t", "--where", "d = 1", "--engine", "gx", "--json"])
    assert (args.suite, args.conn, args.table, args.where, args.engine, args.json) == (
        ["s.json"], "postgresql://x/db", "public.t", "d = 1", "gx", True)
    assert args.func.__name__ == "run"


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["gate", "run", "--conn", "c", "--table", "t"], id="no-suite"),
        pytest.param(["gate", "run", "--suite", "s", "--conn", "c", "--table", "t", "--engine", "spark"],
                     id="bad-engine"),
    ],
)
def test_cli_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_importing_the_quality_modules_imports_neither_gx_nor_airflow():
    code = ("import sys; import safeload.quality.gate, safeload.quality.sql_engine, safeload.quality.cli, "
            "safeload.quality.gx_engine, safeload.contracts.expectations; "
            "print(sorted(m for m in ('great_expectations', 'airflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
