"""The `safeload` command as a user runs it: exit codes, messages, --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = str(ROOT / "include" / "contracts" / "orders.yaml")


def safeload(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "safeload.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize(("faults", "code", "decision"), [
    pytest.param((), 0, "ok", id="clean"),
    pytest.param(("drift_add",), 0, "warn", id="additive-under-warn"),
    pytest.param(("drift_rename",), 1, "fail", id="rename"),
    pytest.param(("drift_type",), 1, "fail", id="type"),
    pytest.param(("nulls",), 1, "fail", id="nulls"),
])
def test_contract_check_exit_codes_and_json(day, faults, code, decision):
    proc = safeload("contract", "check", CONTRACT, "--source", day(faults), "--json")
    assert proc.returncode == code, proc.stderr
    report = json.loads(proc.stdout)
    assert report["decision"] == decision
    for change in report["changes"]:
        assert {"column", "kind", "class"} <= set(change)


def test_contract_check_policy_override(day):
    proc = safeload("contract", "check", CONTRACT, "--source", day(("drift_add",)), "--policy", "fail")
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout


@pytest.mark.parametrize(("args", "match"), [
    pytest.param(["contract", "check", "nope.yaml", "--source", "x.csv"], "contract file not found", id="no-contract"),
    pytest.param(["contract", "check", CONTRACT, "--source", "/nonexistent/x.csv"], "does not exist", id="no-source"),
    pytest.param(["contract", "check", CONTRACT], "required: --source", id="usage"),
    pytest.param(["contract", "check", CONTRACT, "--source", "x.xlsx"], "cannot tell the format", id="format"),
])
def test_usage_and_unreadable_input_exit_2_without_traceback(args, match):
    proc = safeload(*args)
    assert proc.returncode == 2
    assert match in proc.stderr
    assert "Traceback" not in proc.stderr


def test_header_only_and_ragged_files(tmp_path):
    empty = tmp_path / "e.csv"
    empty.write_text("order_id,order_date\n")
    proc = safeload("contract", "check", CONTRACT, "--source", str(empty))
    assert proc.returncode == 2 and "no rows" in proc.stderr
    bad = tmp_path / "b.csv"
    bad.write_bytes(b"order_id,order_date\n1,\xff\n")
    proc = safeload("contract", "check", CONTRACT, "--source", str(bad))
    assert proc.returncode == 2 and "not valid UTF-8" in proc.stderr and "line" in proc.stderr


def test_load_publishes_refuses_and_reports(pg, pg_uri, day):
    pg.execute((ROOT / "include" / "sql" / "orders.sql").read_text())
    src = day()
    proc = safeload("load", "--conn", pg_uri, "--table", "public.orders", "--partition", "2024-05-02",
                    "--source", src, "--contract", CONTRACT, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows"] == 200
    # bad rows over the threshold: refused, exit 1, old partition kept
    proc = safeload("load", "--conn", pg_uri, "--table", "public.orders", "--partition", "2024-05-02",
                    "--source", day(("malformed",), rows=2000), "--partition-column", "order_date")
    assert proc.returncode == 1 and "malformed" in proc.stderr
    assert pg.execute("select count(*) from public.orders").fetchone()[0] == 200
    # breaking drift with a contract: refused before loading
    proc = safeload("load", "--conn", pg_uri, "--table", "public.orders", "--partition", "2024-05-02",
                    "--source", day(("drift_rename",)), "--contract", CONTRACT)
    assert proc.returncode == 1 and "renamed" in proc.stderr
    # connection error: exit 2, one line, no traceback, no password echoed
    proc = safeload("load", "--conn", "postgresql://u:s3cret@127.0.0.1:1/db", "--table", "public.orders",
                    "--partition", "2024-05-02", "--source", src, "--partition-column", "order_date")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "s3cret" not in proc.stderr


def test_load_help_documents_every_option():
    proc = safeload("load", "--help")
    assert proc.returncode == 0
    for opt in ("--conn", "--table", "--partition", "--source", "--partition-column", "--contract", "--format",
                "--max-bad-rows", "--max-bad-fraction", "--allow-empty", "--lock-timeout", "--publish-strategy",
                "--json", "--source-sql", "--parallel"):
        assert opt in proc.stdout


@pytest.mark.parametrize("table", ["plain", "native"])
def test_load_in_parallel_streams_publishes_what_one_stream_does(pg, pg_uri, day, table):
    ddl = (ROOT / "include" / "sql" / "orders.sql").read_text()
    pg.execute(ddl.replace(") partition by range (order_date);", ");") if table == "plain" else ddl)
    src = day(rows=3000)
    args = ["load", "--conn", pg_uri, "--table", "public.orders", "--partition", "2024-05-02", "--source", src,
            "--partition-column", "order_date", "--json"]
    one = safeload(*args, "--parallel", "1")
    two = safeload(*args, "--parallel", "2")
    auto = safeload(*args, "--parallel", "auto")  # the default: a small file, one stream
    assert one.returncode == two.returncode == auto.returncode == 0, one.stderr + two.stderr + auto.stderr
    one, two, auto = json.loads(one.stdout), json.loads(two.stdout), json.loads(auto.stdout)
    assert (one["rows"], one["checksum"]) == (two["rows"], two["checksum"]) == (3000, one["checksum"])
    assert two["published_by"] == ("swap" if table == "native" else "direct")
    assert (auto["checksum"], auto["published_by"]) == (one["checksum"], one["published_by"])


@pytest.mark.parametrize("streams", ["0", "-1", "two"])
def test_a_number_of_streams_that_is_not_one_or_more_is_a_usage_error(streams, tmp_path):
    proc = safeload("load", "--conn", "postgresql://x@127.0.0.1:1/db", "--table", "public.orders", "--partition",
                    "2024-05-02", "--source", str(tmp_path / "a.csv"), "--parallel", streams)
    assert proc.returncode == 2 and "is not a number of streams (1, 2, ...) nor auto" in proc.stderr



def test_load_from_a_query(pg, pg_uri, day):
    """--source postgresql://...?query=, --source-sql on --conn itself, --contract, errors, secrets."""
    from urllib.parse import quote

    pg.execute((ROOT / "include" / "sql" / "orders.sql").read_text())
    pg.execute("create schema shop; create table shop.orders (like public.orders)")
    with pg.cursor().copy("copy shop.orders from stdin (format csv, header true)") as copy:
        copy.write(open(day(), "rb").read())
    base = ["load", "--conn", pg_uri, "--table", "public.orders", "--partition", "2024-05-02"]
    text = "select * from shop.orders where order_date = '2024-05-02'"
    # the source as a URI with the query in it; contract checked against the query's result
    proc = safeload(*base, "--source", f"{pg_uri}?query={quote(text)}", "--contract", CONTRACT, "--json")
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout)
    assert first["rows"] == 200
    # --source-sql alone runs on --conn; from a file with @; same rows, same checksum
    sql_file = Path(pg_uri.split("/")[-1] + ".sql")
    try:
        sql_file.write_text(text + ";\n")
        proc = safeload(*base, "--partition-column", "order_date", "--source-sql", f"@{sql_file}", "--json")
    finally:
        sql_file.unlink()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["checksum"] == first["checksum"]
    # an empty result is refused (exit 1), a bad query too, neither changes the partition
    proc = safeload(*base, "--partition-column", "order_date", "--source-sql", text + " and false")
    assert proc.returncode == 1 and "returned no rows" in proc.stderr
    proc = safeload(*base, "--partition-column", "order_date", "--source-sql", "select nope from shop.orders")
    assert proc.returncode == 1 and 'column "nope" does not exist' in proc.stderr
    assert "Traceback" not in proc.stderr
    assert pg.execute("select count(*) from public.orders").fetchone()[0] == 200
    # an unreachable source: exit 2, no traceback, no password
    proc = safeload(*base, "--partition-column", "order_date", "--source",
                    "postgresql://reader:s3cret@127.0.0.1:1/shop?connect_timeout=5", "--source-sql", text)
    assert proc.returncode == 2 and "127.0.0.1:1" in proc.stderr
    assert "s3cret" not in proc.stderr and "Traceback" not in proc.stderr
    # a file with --source-sql is a usage error
    proc = safeload(*base, "--partition-column", "order_date", "--source", "x.csv", "--source-sql", text)
    assert proc.returncode == 2 and "postgresql://" in proc.stderr


def test_load_with_a_contract_runs_no_second_statement_of_the_query(pg, pg_uri, day):
    """The contract check reads the query's columns before the load: through the same
    read-only source, so a statement hidden after the first never runs."""
    pg.execute((ROOT / "include" / "sql" / "orders.sql").read_text())
    pg.execute("create schema shop; create table shop.orders (like public.orders)")
    base = ["load", "--conn", pg_uri, "--table", "public.orders", "--partition", "2024-05-02"]
    text = "select * from shop.orders) q; drop table shop.orders; select * from (select * from shop.orders"
    proc = safeload(*base, "--source", pg_uri, "--source-sql", text, "--contract", CONTRACT)
    assert proc.returncode == 1 and "more than one statement" in proc.stderr, proc.stderr
    assert pg.execute("select to_regclass('shop.orders') is not null").fetchone()[0]
