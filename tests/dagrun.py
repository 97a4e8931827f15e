"""A DAG written by a test into its own folder, loaded so that ``dag.test()`` can run it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any


def dag_from_file(folder: Path, monkeypatch: Any, name: str, text: str) -> Any:
    """Write ``text`` to ``folder/name.py``, make ``folder`` a DAG bundle (``dag.test()`` runs
    DAGs of a bundle) and return the module's ``dag``."""
    path = folder / f"{name}.py"
    path.write_text(text)
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([{
        "name": f"safeload-{name}", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(folder)}}]))
    spec = importlib.util.spec_from_file_location(f"safeload_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag
