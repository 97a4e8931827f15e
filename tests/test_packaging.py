"""Packaging stays in step: requirements, constraints, Dockerfile, compose file, entry point."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]+\])?==([^\s;#]+)", line.strip())
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_requirements_are_pinned_and_agree_with_constraints():
    reqs = _pins(ROOT / "requirements.txt")
    cons = _pins(ROOT / "constraints.txt")
    assert {"apache-airflow", "great-expectations", "apache-airflow-providers-postgres",
            "apache-airflow-providers-slack"} <= set(reqs)
    assert reqs["apache-airflow"].startswith("3.3.")
    assert reqs["great-expectations"].startswith("1.")
    for name, version in reqs.items():
        assert cons.get(name) == version, f"requirements.txt pins {name}=={version}, constraints.txt {cons.get(name)}"


def test_dockerfile_matches_requirements():
    docker = (ROOT / "Dockerfile").read_text()
    airflow = _pins(ROOT / "requirements.txt")["apache-airflow"]
    assert f"FROM apache/airflow:{airflow}-" in docker
    assert "requirements.txt" in docker and "constraints.txt" in docker


def test_compose_file_is_valid_for_a_real_compose_parser():
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed; .ci/run installs Debian's docker-compose")
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    proc = subprocess.run([exe, "-f", str(ROOT / "docker-compose.yaml"), "config", "-q"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_compose_has_the_reference_stack():
    doc = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    services = doc["services"]
    assert {"postgres", "warehouse", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "airflow-init"} <= set(services)
    common = doc["x-airflow-common"]
    env = common["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    # the warehouse is a separate server from Airflow's metadata database
    assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert "@warehouse:" in env["AIRFLOW_CONN_WAREHOUSE"]
    mounts = {v.split(":")[1] for v in common["volumes"]}
    assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts
    assert common["build"]["dockerfile"] == "Dockerfile"
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert "healthcheck" in services[name]


def test_plugin_is_registered_through_the_entry_point():
    eps = [ep for ep in entry_points(group="airflow.plugins") if ep.name == "safeload"]
    assert eps, "pip install -e . registers the airflow.plugins entry point"
    plugin = eps[0].load()
    assert plugin.name == "safeload"
