"""The reference DAGs, run once per module with the OpenLineage provider's file transport."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def lineage_runs():
    """include/demo/lineage_runs.py: the plan, and the runner in a process with lineage on."""
    spec = importlib.util.spec_from_file_location("lineage_runs", ROOT / "include" / "demo" / "lineage_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def ol_validator():
    """Validates events against the OpenLineage JSON schemas (see tests/olschema.py)."""
    from olschema import validator

    return validator()
