"""Real ODCS v3 contracts written by others, read for checking: set SAFELOAD_ODCS_EXAMPLES to a
folder of them (e.g. the *.odcs.yaml of the standard's docs/examples and of datacontract-cli's
examples and tests/fixtures, copied from their repositories). Skipped without it: those files
are not ours to ship; tests/unit/contracts/data/ holds contracts of our own with their shapes.

Each file that the published ODCS JSON schema of its apiVersion accepts must read (one
object at a time with ``#name``), and every rule of every property and object must be
checked or reported as not checked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from safeload.contracts.files import load_contract

FOLDER = os.environ.get("SAFELOAD_ODCS_EXAMPLES")
FILES = sorted(Path(FOLDER).glob("*.y*ml")) if FOLDER else []
pytestmark = pytest.mark.skipif(not FILES, reason="set SAFELOAD_ODCS_EXAMPLES to a folder of ODCS v3 contracts")


def _schema_valid(doc) -> bool:
    """Whether the JSON schema of the document's ODCS version (in the folder as
    odcs-json-schema-<apiVersion>.json, as the standard publishes them) accepts it; True
    when the folder has no schema for that version."""
    schema_file = Path(FOLDER) / f"odcs-json-schema-{doc.get('apiVersion')}.json"
    if not schema_file.exists():
        return True
    import jsonschema

    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return not list(validator.iter_errors(json.loads(json.dumps(doc, default=str))))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_valid_contract_reads_and_reports_every_rule(path):
    doc = yaml.safe_load(path.read_text())
    if not (isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith("v3")) or not _schema_valid(doc):
        pytest.skip("not a valid ODCS v3 document")
    objects = [o["name"] for o in doc.get("schema") or []]
    for target in [str(path)] if len(objects) <= 1 else [f"{path}#{name}" for name in objects]:
        contract = load_contract(target)
        paths = {r.path for r in contract.rules} | {n.path for n in contract.not_checked}
        index = objects.index(contract.dataset) if contract.dataset in objects else 0
        for obj in (doc.get("schema") or [])[index:index + 1]:
            for q in range(len(obj.get("quality") or [])):
                assert any(p.startswith(f"schema[{index}].quality[{q}]") for p in paths), (target, q)
            for j, prop in enumerate(obj.get("properties") or []):
                for q in range(len(prop.get("quality") or [])):
                    where = f"schema[{index}].properties[{j}].quality[{q}]"
                    assert any(p.startswith(where) for p in paths), (target, where)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_valid_contract_passes_a_conforming_file_and_fails_each_broken_rule(path, tmp_path):
    """tests/contract_sources.py writes, from the contract alone, a file a careful producer would
    deliver (CSV, JSON lines, Parquet) and files that break one rule each: the first must pass,
    each of the others must fail naming the rule's column (or report the rule as not checked)."""
    from contract_sources import check_plan, plan_for

    doc = yaml.safe_load(path.read_text())
    if not (isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith("v3")) or not _schema_valid(doc):
        pytest.skip("not a valid ODCS v3 document")
    objects = [o["name"] for o in doc.get("schema") or []]
    failures = []
    for target in [str(path)] if len(objects) <= 1 else [f"{path}#{name}" for name in objects]:
        contract = load_contract(target)
        if not contract.columns:
            continue  # reported as not checked by the test above; no file conforms more than another
        plan = plan_for(contract, doc)
        assert not plan.problems, (target, plan.problems)
        out = check_plan(plan, contract, tmp_path / str(len(failures)) / (contract.dataset or "object"))
        if out.refused or out.missed:
            failures.append((target, out.refused, out.missed))
    assert not failures
