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
    # the same changes, classes and findings: only the contract's path differs
    expected = json.loads(native.stdout)
    report.pop("contract", None), expected.pop("contract", None)
    assert report == expected
    assert from_odcs.stderr == ""  # the reference ODCS file maps without a warning


def test_unsupported_odcs_rules_are_reported_on_stderr_and_json_stays_clean(tmp_path):
    doc = yaml.safe_load(Path(ODCS).read_text())
    doc["schema"][0]["quality"] = [{"type": "sql", "query": "select count(*) from orders", "mustBeGreaterThan": 0}]
    contract = tmp_path / "orders.odcs.yaml"
    contract.write_text(yaml.safe_dump(doc))
    proc = safeload("contract", "check", str(contract), "--source", day(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["decision"] == "ok"
    assert "schema[0].quality[0]: table-level rule sql is not checked by safeload" in proc.stderr


def test_malformed_odcs_contract_is_a_usage_error_naming_the_field(tmp_path):
    doc = yaml.safe_load(Path(ODCS).read_text())
    doc["schema"][0]["properties"][2]["physicalType"] = "bigitn"
    doc["schema"][0]["properties"][2].pop("logicalType")
    contract = tmp_path / "orders.odcs.yaml"
    contract.write_text(yaml.safe_dump(doc))
    proc = safeload("contract", "check", str(contract), "--source", day(tmp_path))
    assert proc.returncode == 2
    assert ("orders.odcs.yaml: schema[0].properties[2] (customer_id).physicalType: 'bigitn' is not a supported "
            "PostgreSQL type") in proc.stderr
    assert "Traceback" not in proc.stderr
