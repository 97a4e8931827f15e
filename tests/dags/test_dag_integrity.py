"""Every DAG in dags/: imports cleanly, follows the house rules, imports nothing heavy.

Parse *time* is measured by bench/bench_parse.py, not asserted here (machines are noisy)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
# Besides the data libraries: the database driver (a DAG file must not connect while it is
# parsed) and Airflow's ORM asset models, which an Asset URI with a scheme (postgres://...)
# pulls in through the providers' URI handlers (~30 ms a parse). And OpenLineage: the
# operators' lineage methods import the client and the provider's extractors and SQL parser
# when the provider's listener calls them, never at parse (Airflow itself reads every
# provider's get_provider_info, for an empty DAG too).
HEAVY = ("great_expectations", "pandas", "pyarrow", "numpy", "psycopg", "airflow.models.asset", "openlineage",
         "airflow.providers.openlineage.extractors", "airflow.providers.openlineage.sqlparser")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) >= 1


def test_every_dag_file_defines_a_dag(dagbag):
    files = {Path(d.fileloc).name for d in dagbag.dags.values()}
    assert {f.name for f in DAG_FILES} <= files


@pytest.mark.parametrize("dag_id", ["orders_daily", "customers_scd2", "payments_incremental"])
def test_reference_dags_are_present(dagbag, dag_id):
    assert dag_id in dagbag.dags


def test_house_rules(dagbag):
    problems = []
    for dag_id, dag in dagbag.dags.items():
        if not dag.tags:
            problems.append(f"{dag_id}: no tags")
        if not dag.doc_md or "why" not in dag.doc_md.lower():
            problems.append(f"{dag_id}: doc_md must say why the DAG is built so")
        for task in dag.tasks:
            where = f"{dag_id}.{task.task_id}"
            if task.owner in (None, "", "airflow"):
                problems.append(f"{where}: set an owner (default_args['owner'])")
            if (task.retries or 0) < 2:
                problems.append(f"{where}: retries={task.retries}, want >= 2")
            if not task.on_failure_callback and not dag.on_failure_callback:
                problems.append(f"{where}: no failure callback")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parsing_imports_nothing_heavy(path):
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{path.name} imports {proc.stdout.strip()} at parse time\n{proc.stderr[-2000:]}"
