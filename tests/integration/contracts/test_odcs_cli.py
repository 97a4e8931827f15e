"""`safeload contract check` with an ODCS v3 contract, as a producing team runs it in CI."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
NATIVE = str(ROOT / "include" / "contracts" / "orders.yaml")
ODCS = str(ROOT / "include" / "contracts" / "orders.odcs.yaml")
sys.path.insert(0, str(ROOT / "include"))


def safeload(*args):
    return subprocess.run([sys.executable, "-m", "safeload.cli", *args], capture_output=True, text=True, timeout=180)


def day(tmp_path, faults=(), rows=300):
    import generate_orders

    return str(generate_orders.write(tmp_path / "-".join(faults or ("clean",)), dt.date(2024, 5, 2), rows,
                                     set(faults)))


@pytest.mark.parametrize(("faults", "code", "decision"), [
    pytest.param((), 0, "ok", id="clean"),
    pytest.param(("drift_add",), 0, "warn", id="additive-under-warn"),
    pytest.param(("drift_rename",), 1, "fail", id="rename"),
    pytest.param(("drift_type",), 1, "fail", id="type"),
    pytest.param(("bad_status", "malformed"), 1, "fail", id="bad-values"),
])
def test_odcs_contract_gives_the_same_report_as_the_native_one(tmp_path, faults, code, decision):
    source = day(tmp_path, faults)
    from_odcs = safeload("contract", "check", ODCS, "--source", source, "--json")
    native = safeload("contract", "check", NATIVE, "--source", source, "--json")
    assert from_odcs.returncode == code, from_odcs.stderr
    report = json.loads(from_odcs.stdout)
    assert report["decision"] == decision
    # the same changes, classes, findings and rules: only the paths in the contract differ
    assert _comparable(report) == _comparable(json.loads(native.stdout))
    assert from_odcs.stderr == ""  # the reference ODCS file maps without a warning
    assert len(report["rules"]) == 12  # every rule, checked or (a column gone) not checked


def _comparable(report):
    changes = sorted((c["kind"], c["column"], c["class"], c.get("count"), json.dumps(c.get("examples")))
                     for c in report["changes"])
    rules = sorted((r["rule"], r["status"], r.get("offending")) for r in report["rules"])
    return report["decision"], report["rows_scanned"], changes, rules


def test_unchecked_odcs_rules_are_in_the_json_the_text_and_stderr(tmp_path):
    doc = yaml.safe_load(Path(ODCS).read_text())
    doc["schema"][0]["quality"] = [{"type": "sql", "query": "select count(*) from orders", "mustBeGreaterThan": 0}]
    doc["schema"][0]["properties"][2]["physicalType"] = "bigitn"  # a typo: not checked, and said so
    doc["schema"][0]["properties"][2].pop("logicalType")
    contract = tmp_path / "orders.odcs.yaml"
    contract.write_text(yaml.safe_dump(doc))
    proc = safeload("contract", "check", str(contract), "--source", day(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["decision"] == "ok"
    unchecked = {r["path"]: r["reason"] for r in report["rules"] if r["status"] == "not checked"}
    assert "sql rule is not checked" in unchecked["schema[0].quality[0]"]
    assert "if it is a typo of 'bigint'" in unchecked["schema[0].properties[2].physicalType"]
    assert report["rules_count"]["not checked"] == 2
    assert "schema[0].quality[0]: sql rule is not checked by safeload" in proc.stderr
    text = safeload("contract", "check", str(contract), "--source", day(tmp_path))
    assert "not checked schema[0].quality[0]: sql rule is not checked" in text.stdout
    assert "not checked schema[0].properties[2].physicalType: 'bigitn' is not a PostgreSQL type" in text.stdout


def test_malformed_odcs_contract_is_a_usage_error_naming_the_field(tmp_path):
    doc = yaml.safe_load(Path(ODCS).read_text())
    doc["schema"][0]["properties"][2]["logicalType"] = "integr"
    contract = tmp_path / "orders.odcs.yaml"
    contract.write_text(yaml.safe_dump(doc))
    proc = safeload("contract", "check", str(contract), "--source", day(tmp_path))
    assert proc.returncode == 2
    assert ("orders.odcs.yaml: schema[0].properties[2] (customer_id).logicalType: 'integr' is not an ODCS logical "
            "type") in proc.stderr
    assert "Traceback" not in proc.stderr
