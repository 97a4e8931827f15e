"""`safeload contract check` on bad input: exit 2, one clear line naming the file, the field
or line, what is wrong and the fix; never a traceback."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = str(ROOT / "include" / "contracts" / "orders.yaml")
ODCS = (ROOT / "include" / "contracts" / "orders.odcs.yaml").read_text()
GOOD = "order_id,order_date,customer_id,amount,currency,status,created_at\n" \
       "1,2024-05-02,7,10.50,EUR,paid,2024-05-02T10:00:00+00:00\n"


def safeload(*args):
    return subprocess.run([sys.executable, "-m", "safeload.cli", *args], capture_output=True, text=True, timeout=120)


def _write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def odcs(text_edit):
    return lambda d: _write(d / "c.odcs.yaml", text_edit(ODCS))


def contract_file(text):
    return lambda d: _write(d / "c.yaml", text)


def source_file(name, data):
    def make(d):
        p = d / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        return str(p)
    return make


GOOD_SOURCE = source_file("good.csv", GOOD)
CASES = [
    # (contract maker, source maker, extra args, message)
    ("missing", lambda d: CONTRACT and str(d / "nope.yaml"), GOOD_SOURCE, [], r"nope.yaml: contract file not found; check the path"),
    ("directory", lambda d: str(d), GOOD_SOURCE, [], r"is a directory, not a contract file; give the path"),
    ("empty-contract", contract_file(""), GOOD_SOURCE, [], r"c.yaml: the file is empty; a contract is a YAML mapping"),
    ("yaml-syntax", contract_file("dataset: [x\n"), GOOD_SOURCE, [], r"c.yaml line \d+, column \d+: invalid YAML"),
    ("not-utf8", contract_file(b"dataset: \xff\n"), GOOD_SOURCE, [],
     r"c.yaml: not UTF-8 text .*save it as UTF-8"),
    ("unknown-field", contract_file("dataset: x\ncolumns: [{name: a, type: int}]\ncolumnz: 1\n"), GOOD_SOURCE, [],
     r"c.yaml: columnz: unknown field"),
    ("bad-type", contract_file("dataset: x\ncolumns: [{name: a, type: bigitn}]\n"), GOOD_SOURCE, [],
     r"columns\[0\] \(a\)\.type: 'bigitn' is not a supported PostgreSQL type"),
    ("bad-mostly", contract_file("dataset: x\ncolumns: [{name: a, type: int, mostly: 2}]\n"), GOOD_SOURCE, [],
     r"columns\[0\] \(a\)\.mostly: must be a fraction of rows"),
    ("odcs-v2", odcs(lambda t: t.replace("apiVersion: v3.0.2", "apiVersion: v2.2.2") + "dataset: []\n"),
     GOOD_SOURCE, [], r"apiVersion: 'v2.2.2' .*ODCS v2 \(dataset/columns\) is not read; migrate the file to v3"),
    ("odcs-kind", odcs(lambda t: t.replace("kind: DataContract", "kind: DataProduct")), GOOD_SOURCE, [],
     r"kind: 'DataProduct' is not read"),
    ("odcs-typo", odcs(lambda t: t.replace("    required: true\n", "    requried: true\n", 1)), GOOD_SOURCE, [],
     r"requried: not an ODCS v3 property field; did you mean 'required'"),
    ("odcs-threshold", odcs(lambda t: t.replace("dimension: conformity\n", "dimension: conformity\n"
                                                "            mustBe: zero\n", 1)), GOOD_SOURCE, [],
     r"quality\[0\]: mustBe takes a number, not 'zero'"),
    ("odcs-object", odcs(lambda t: t), GOOD_SOURCE, [], None),  # placeholder replaced below
    ("source-missing", lambda d: CONTRACT, lambda d: str(d / "none.csv"), [], r"none.csv: source file does not exist"),
    ("source-directory", lambda d: CONTRACT, lambda d: (d / "x.csv").mkdir() or str(d / "x.csv"), [],
     r"x.csv: is a directory, not a file; give the path"),
    ("source-directory-no-extension", lambda d: CONTRACT, lambda d: (d / "landing").mkdir() or str(d / "landing"), [],
     r"landing: is a directory, not a file; give the path"),
    ("unknown-extension", lambda d: CONTRACT, source_file("orders.xlsx", GOOD), [],
     r"orders.xlsx: cannot tell the format from the name .*--format csv\|parquet\|jsonl on the command line"),
    ("corrupt-gzip", lambda d: CONTRACT, source_file("o.csv.gz", gzip.compress(GOOD.encode() * 50)[:-30] + b"x" * 30),
     [], r"o.csv.gz near line \d+: the compressed file is truncated or corrupt"),
    ("not-gzip", lambda d: CONTRACT, source_file("o.csv.gz", GOOD), [], r"o.csv.gz near line 1: the compressed file"),
    ("empty-source", lambda d: CONTRACT, source_file("e.csv", ""), [], r"e.csv: the file is empty; expected a header"),
    ("header-only", lambda d: CONTRACT, source_file("h.csv", GOOD.splitlines()[0] + "\n"), [],
     r"h.csv: has a header but no rows"),
    ("duplicate-header", lambda d: CONTRACT, source_file("d.csv", "a,a\n1,2\n"), [],
     r"d.csv line 1: the header names column 'a' more than once"),
    ("bad-quoting", lambda d: CONTRACT, source_file("q.csv", GOOD + '2,"x"y,7,1,EUR,paid,z\n'), [],
     r"q.csv line 3: malformed CSV .*fix the quoting"),
    ("jsonl", lambda d: CONTRACT, source_file("j.jsonl", '{"order_id": 1}\n{oops}\n'), [],
     r"j.jsonl line 2, column 2: invalid JSON .*each line must be one JSON object"),
    ("parquet", lambda d: CONTRACT, source_file("p.parquet", b"PAR1 not really"), [],
     r"p.parquet: not a readable Parquet file"),
    ("postgres-no-table", lambda d: CONTRACT, lambda d: "postgresql://127.0.0.1:1/db", [],
     r"a postgresql:// source needs \?table=schema.table"),
    ("fragment-on-native", lambda d: CONTRACT + "#orders", GOOD_SOURCE, [],
     r"selects an object of an ODCS contract.*drop the '#...' part"),
]
CASES = [c for c in CASES if c[0] != "odcs-object"] + [
    ("odcs-no-object", odcs(lambda t: t), GOOD_SOURCE, ["#refunds"], r"schema: has no object named 'refunds'"),
]


@pytest.mark.parametrize(("contract", "source", "extra", "message"),
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_exits_2_with_a_clear_message(tmp_path, contract, source, extra, message):
    import re

    c, s = contract(tmp_path), source(tmp_path)
    if extra and extra[0].startswith("#"):
        c += extra[0]
    proc = safeload("contract", "check", c, "--source", s)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_unknown_extension_names_format_in_python_too(tmp_path):
    from safeload.contracts.check import check_source
    from safeload.errors import SourceError

    with pytest.raises(SourceError, match=r"format='csv' \(or source_format= on an operator\) in Python"):
        check_source(CONTRACT, str(tmp_path / "x.xlsx"))


def test_bad_policy_is_refused_by_the_command_line(tmp_path):
    proc = safeload("contract", "check", CONTRACT, "--source", GOOD_SOURCE(tmp_path), "--rules", "ignore")
    assert proc.returncode == 2 and "invalid choice: 'ignore'" in proc.stderr
