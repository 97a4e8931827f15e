"""Without the OpenLineage provider, safeload loads and its DAGs parse as before, and nothing
of the provider or of openlineage-python is imported.

The provider is installed in the test environment, so its absence is made real in a
process of its own: an import hook refuses ``openlineage`` and
``airflow.providers.openlineage`` as an environment without them would, and the package
metadata no longer lists their distributions (Airflow finds providers and plugins by
their entry points). That process
parses dags/ and runs orders_daily end to end (the reference DAG with every kind of
safeload task but the incremental ones), with the provider's transport configured, as a
deployment that configured lineage and then removed the provider would be.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
import subprocess
import sys

import psycopg

from tests.integration.lineage.conftest import ROOT, lineage_runs

BLOCKED = ("openlineage", "airflow.providers.openlineage")
PROBE = r"""
import importlib.abc, importlib.metadata, json, runpy, sys

BLOCKED = {blocked!r}
GONE = ("apache-airflow-providers-openlineage", "openlineage-python", "openlineage-integration-common",
        "openlineage-sql")

def installed(distributions):
    def listed(*args, **kwargs):
        for dist in distributions(*args, **kwargs):
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            if name not in GONE:
                yield dist
    return listed

importlib.metadata.distributions = installed(importlib.metadata.distributions)
try:
    import importlib_metadata
    importlib_metadata.distributions = installed(importlib_metadata.distributions)
except ImportError:
    pass

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
sys.argv = [{runner!r}, {plan!r}]
try:
    runpy.run_path({runner!r}, run_name="__main__")
except SystemExit as e:
    assert not e.code, e.code
print("LOADED " + json.dumps(sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))))
"""


def test_a_load_runs_and_imports_nothing_of_openlineage(_module_db, airflow_db, tmp_path):
    import os

    runs = lineage_runs()
    plan = [step for step in runs.PLAN if step["dag"] == "orders_daily"][:1]
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    dags = tmp_path / "dags"
    dags.mkdir()
    for dag in (ROOT / "dags").glob("*.py"):
        (dags / dag.name).symlink_to(dag)
    with psycopg.connect(_module_db, autocommit=True) as conn:
        for ddl in sorted((ROOT / "include" / "sql").glob("*.sql")):
            conn.execute(ddl.read_text())
    events = tmp_path / "events.jsonl"
    # the process gets Airflow metadata of its own (a copy of the session's migrated SQLite
    # database): two processes writing one SQLite file is not what a deployment does
    home = tmp_path / "airflow-home"
    home.mkdir()
    with closing(sqlite3.connect(airflow_db / "airflow.db")) as src, closing(sqlite3.connect(home / "airflow.db")) as dst:
        src.backup(dst)
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_CONN_SLACK_ALERTS"}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"})
    env.update({"AIRFLOW_CONN_WAREHOUSE": _module_db, "SAFELOAD_DATA_DIR": str(tmp_path / "data"),
                "SAFELOAD_HOME": str(ROOT), "GX_ANALYTICS_ENABLED": "False",
                "SAFELOAD_ALERT_FILE": str(tmp_path / "alerts.jsonl"),
                "SAFELOAD_ALERT_STATE_DIR": str(tmp_path / "alert-state"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events)}),
                "SAFELOAD_LINEAGE_EVENTS": str(events)})
    code = PROBE.format(blocked=BLOCKED, runner=str(ROOT / "include" / "demo" / "lineage_runs.py"),
                        plan=str(tmp_path / "plan.json"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [run] = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"dag": ')]
    assert run["state"] == "success", run["tasks"]
    assert set(run["tasks"].values()) == {"success"}
    [loaded] = [line for line in proc.stdout.splitlines() if line.startswith("LOADED ")]
    assert json.loads(loaded.removeprefix("LOADED ")) == []
    assert not events.exists()  # no listener, no event
    with psycopg.connect(_module_db) as conn:
        assert conn.execute("select count(*) from public.orders").fetchone()[0] == plan[0]["orders"]["rows"]
