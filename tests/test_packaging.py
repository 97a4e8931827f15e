"""Packaging stays in step: requirements, constraints, Dockerfile, compose file, entry point."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
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
            "apache-airflow-providers-slack", "apache-airflow-providers-celery"} <= set(reqs)
    assert reqs["apache-airflow"].startswith("3.3.")
    assert reqs["great-expectations"].startswith("1.")
    for name, version in reqs.items():
        assert cons.get(name) == version, f"requirements.txt pins {name}=={version}, constraints.txt {cons.get(name)}"


def test_dockerfile_matches_requirements():
    docker = (ROOT / "Dockerfile").read_text()
    airflow = _pins(ROOT / "requirements.txt")["apache-airflow"]
    assert f"FROM apache/airflow:{airflow}-" in docker
    assert "requirements.txt" in docker and "constraints.txt" in docker


# what README's "Deploy it" puts in .env (a real key and secrets, not the documented placeholders)
SECRETS = {"AIRFLOW_FERNET_KEY": "x" * 43 + "=", "AIRFLOW_JWT_SECRET": "j" * 43, "AIRFLOW_SECRET_KEY": "s" * 43}
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker", "flower", "airflow-init")


def _compose_config(env: dict[str, str], *profiles: str) -> subprocess.CompletedProcess:
    """``docker-compose config`` with ``env`` as the shell's environment and an empty .env
    (so that a developer's own .env does not leak in)."""
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed; .ci/run installs Debian's docker-compose")
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    argv = [exe, "-f", str(ROOT / "docker-compose.yaml")]
    for p in profiles:
        argv += ["--profile", p]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / ".env").write_text("")
        return subprocess.run([*argv, "--env-file", str(Path(tmp) / ".env"), "config"], capture_output=True,
                              text=True, cwd=ROOT, timeout=60, env={"PATH": os.environ["PATH"], **env})


def _resolved(env: dict[str, str] | None = None, *profiles: str) -> dict:
    proc = _compose_config({**SECRETS, **(env or {})}, *profiles)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


@pytest.fixture(scope="module")
def every_service() -> dict:
    """The file as docker-compose resolves it, every profile on."""
    return _resolved(None, "celery", "flower")["services"]


def test_compose_file_is_valid_for_a_real_compose_parser(every_service):
    assert every_service


def test_compose_starts_without_a_dot_env_on_shared_public_defaults():
    """A first `docker compose up` works (a clean clone has no .env): every component gets
    the same secrets, the public defaults that airflow-init warns about."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("compose_init", ROOT / "include" / "compose_init.py")
    compose_init = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compose_init)
    proc = _compose_config({}, "celery", "flower")
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    for name, setting in compose_init.SETTING.items():
        assert {services[s]["environment"][setting] for s in AIRFLOW_SERVICES} == \
            {compose_init.PUBLIC_DEFAULTS[name]}, setting
    compose_init.check_secrets(services["airflow-init"]["environment"])
    assert compose_init.public_defaults_in_use(services["airflow-init"]["environment"])


def test_compose_has_the_reference_stack(every_service):
    services = every_service
    assert {"postgres", "warehouse", "redis", *AIRFLOW_SERVICES} <= set(services)
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    # the warehouse is a separate server from Airflow's metadata database
    assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert "@warehouse:" in env["AIRFLOW_CONN_WAREHOUSE"]
    assert services["airflow-scheduler"]["build"]["dockerfile"] == "Dockerfile"
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                 "airflow-worker", "flower"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert "healthcheck" in services[name]
    assert services["airflow-worker"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_every_airflow_component_shares_the_secrets_and_the_state(every_service):
    services = every_service
    shared = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
              "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "SAFELOAD_ALERT_FILE", "SAFELOAD_ALERT_STATE_DIR",
              "SAFELOAD_DATA_DIR", "AIRFLOW__API__BASE_URL")
    values = {k: {services[s]["environment"].get(k) for s in AIRFLOW_SERVICES} for k in shared}
    assert all(len(v) == 1 and None not in v for v in values.values()), values
    assert values["AIRFLOW__CORE__FERNET_KEY"] == {SECRETS["AIRFLOW_FERNET_KEY"]}
    # files that outlive a container sit on mounts every component has, never in its home
    for name in AIRFLOW_SERVICES:
        mounts = {v.split(":")[1] if isinstance(v, str) else v["target"] for v in services[name]["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include", "/opt/airflow/logs",
                "/opt/airflow/landing", "/opt/airflow/state"} <= mounts, (name, mounts)
        env = services[name]["environment"]
        for key in ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "SAFELOAD_ALERT_FILE",
                    "SAFELOAD_ALERT_STATE_DIR"):
            assert env[key].startswith("/opt/airflow/state"), (name, key, env[key])


def test_the_celery_profile_switches_the_executor():
    services = _resolved({"AIRFLOW_EXECUTOR": "CeleryExecutor"}, "celery")["services"]
    assert {s["environment"]["AIRFLOW__CORE__EXECUTOR"] for n, s in services.items() if n.startswith("airflow")} \
        == {"CeleryExecutor"}
    assert services["airflow-worker"]["command"] == "celery worker"
    assert services["redis"]["healthcheck"]


def test_plugin_is_registered_through_the_entry_point():
    eps = [ep for ep in entry_points(group="airflow.plugins") if ep.name == "safeload"]
    assert eps, "pip install -e . registers the airflow.plugins entry point"
    plugin = eps[0].load()
    assert plugin.name == "safeload"
