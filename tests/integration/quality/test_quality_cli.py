"""``safeload gate run`` as a user runs it: a subprocess, exit codes 0/1/2, --json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from safeload.quality.cli import parse, run


@pytest.fixture
def db(pg, pg_uri, tmp_path):
    pg.execute("create table public.orders (order_id int, currency text);"
               "insert into public.orders values (1, 'EUR'), (2, 'USD'), (3, 'eur')")
    suites = {
        "pass": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}],
        "warn": [{"type": "expect_column_values_to_match_regex", "kwargs": {"column": "currency", "regex": "^[A-Z]+$"},
                  "severity": "warning"}],
        "fail": [{"type": "expect_column_values_to_match_regex", "kwargs": {"column": "currency", "regex": "^[A-Z]+$"}},
                 {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}],
        "bad": [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "order_id"}}],
    }
    paths = {}
    for name, exps in suites.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps({"name": name, "expectations": exps}))
    return pg_uri, paths


def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "safeload.quality.cli", "gate", "run", *argv],
                          capture_output=True, text=True, timeout=120)


def test_exit_0_when_no_critical_check_failed(db):
    uri, suites = db
    p = cli("--suite", str(suites["pass"]), "--conn", uri, "--table", "public.orders")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("quality gate on public.orders: all 1 checks passed")
    p = cli("--suite", str(suites["warn"]), "--conn", uri, "--table", "public.orders")
    assert p.returncode == 0, p.stderr
    assert "passed with warnings" in p.stdout and "e.g. 'eur'" in p.stdout


def test_exit_1_and_json(db):
    uri, suites = db
    p = cli("--suite", str(suites["fail"]), "--conn", uri, "--table", "public.orders", "--json")
    assert p.returncode == 1, p.stderr
    out = json.loads(p.stdout)
    assert out["success"] is False
    assert [(r["type"], r["column"], r["success"], r["severity"]) for r in out["results"]] == [
        ("expect_column_values_to_match_regex", "currency", False, "critical"),
        ("expect_column_values_to_not_be_null", "order_id", True, "critical"),
    ]
    assert out["results"][0]["observed_value"] == {"element_count": 3, "unexpected_count": 1,
                                                   "unexpected_percent": pytest.approx(100 / 3), "missing_count": 0}
    assert all("observed_value" in r for r in out["results"])


def test_where_partition(db):
    uri, suites = db
    p = cli("--suite", str(suites["fail"]), "--conn", uri, "--table", "public.orders", "--where", "order_id < 3")
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize(
    ("args", "match"),
    [
        pytest.param(["--table", "public.nope"], "table public.nope does not exist", id="no-table"),
        pytest.param(["--table", "public.orders", "--where", "bogus("], "the where clause 'bogus(' is not valid",
                     id="bad-where"),
        pytest.param(["--table", "public.orders", "--suite-name-typo"], "unrecognized arguments", id="bad-argument"),
    ],
)
def test_exit_2_on_usage_errors(db, args, match):
    uri, suites = db
    p = cli("--suite", str(suites["pass"]), "--conn", uri, *args)
    assert p.returncode == 2
    assert match in p.stderr
    assert "Traceback" not in p.stderr


def test_exit_2_on_a_malformed_suite(db):
    uri, suites = db
    p = cli("--suite", str(suites["bad"]), "--conn", uri, "--table", "public.orders")
    assert p.returncode == 2
    assert p.stderr.strip() == (f"safeload gate run: {suites['bad']}: expectations[0] "
                                "(expect_column_values_to_be_between): give min_value and/or max_value (both are "
                                "missing or null)")


def test_exit_2_on_connection_errors(db):
    _, suites = db
    p = cli("--suite", str(suites["pass"]), "--conn", "postgresql://postgres@127.0.0.1:1/x", "--table", "t")
    assert p.returncode == 2
    assert "cannot connect to the warehouse" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_in_process(db, capsys):
    uri, suites = db
    code = run(parse(["gate", "run", "--suite", str(suites["pass"]), "--suite", str(suites["fail"]),
                      "--conn", uri, "--table", "orders", "--json"]))
    assert code == 1
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3
