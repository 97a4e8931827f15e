"""The stack of docker-compose.yaml as local processes: each component its own process and
its own AIRFLOW_HOME, configured from the file (see compose.py for what is substituted).

Metadata and warehouse are databases of their own on the tests' PostgreSQL server; Redis
is Debian's ``redis-server``, started here. Every process runs in its own session, so
stopping it stops its children; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from ci import in_ci
from compose import Local, Mount, argv, environment, make_home, resolve, write_env_file

from airflow_api import AirflowAPI, request

# compose services run as long-lived components, in the order of their depends_on
COMPONENTS = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, check: Callable[[], object], timeout: float, interval: float = 1.0,
               diagnose: Callable[[], str] = lambda: "") -> object:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s. {diagnose()}")
        time.sleep(interval)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


class Redis:
    """Debian's redis-server on a free port of 127.0.0.1, nothing persisted."""

    def __init__(self, folder: Path):
        exe = shutil.which("redis-server")
        if exe is None:
            if in_ci():
                pytest.fail("redis-server is not installed; .ci/run installs Debian's redis-server")
            pytest.skip("redis-server not installed (apt-get install redis-server): the Celery broker")
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "redis.log"
        self.popen = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder), "--logfile", str(self.log)], start_new_session=True)
        wait_until("redis-server answering PING", self.ping, 30, 0.2, lambda: self.log.read_text()[-2000:])

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.popen)


def stop_process(popen: subprocess.Popen, grace: float = 20) -> None:
    if popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, signal.SIGTERM)
        popen.wait(timeout=grace)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=10)


@dataclass
class Deployment:
    """One stack: ``executor`` is what .env sets (LocalExecutor, or CeleryExecutor with the
    ``celery`` profile and ``workers`` workers)."""

    root: Path
    pg_server: str  # superuser URI of the tests' PostgreSQL server
    executor: str = "LocalExecutor"
    workers: int = 0
    env_extra: dict[str, str] = field(default_factory=dict)  # lines added to README's .env
    shell_env: dict[str, str] = field(default_factory=dict)  # variables exported before `docker compose up`
    processes: list[Process] = field(default_factory=list)

    # ---------------------------------------------------------------- set-up

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.shared = self.root / "volumes"
        tag = secrets.token_hex(4)
        self.databases = {"airflow": f"e2e_{tag}_airflow", "warehouse": f"e2e_{tag}_warehouse"}
        self._create_databases()
        self.redis = Redis(self.root / "redis") if self.executor == "CeleryExecutor" else None
        self.local = Local(pg_port=int(self.pg_server.rsplit(":", 1)[1].split("/")[0]), databases=self.databases,
                           api_port=free_port(), redis_port=self.redis.port if self.redis else None)
        self.password = self.env_extra.get("_AIRFLOW_WWW_USER_PASSWORD", "admin")  # README: admin / admin
        env_file = write_env_file(self.root, {
            "AIRFLOW_EXECUTOR": self.executor,
            "AIRFLOW_BASE_URL": f"http://127.0.0.1:{self.local.api_port}",
            **self.env_extra,
        })
        profiles = ["celery"] if self.executor == "CeleryExecutor" else []
        self.config = resolve(env_file, profiles, self.shell_env)
        # the ports the containers bind, each its own locally; the API server reads the
        # log servers of the scheduler (LocalExecutor runs tasks there), of the first
        # worker and of the triggerer at the ports its own settings name
        self.ports = {"scheduler_health": free_port(), "scheduler_logs": free_port(), "triggerer_logs": free_port()}
        self.worker_ports = [free_port() for _ in range(self.workers)]

    def _create_databases(self) -> None:
        with psycopg.connect(self.pg_server, autocommit=True) as conn:
            for role in self.databases:  # the users of the file's URIs; superusers, as the images make them
                conn.execute(f"do $$ begin if not exists (select from pg_roles where rolname = '{role}') then "
                             f"create role {role} login superuser password '{role}'; end if; end $$")
            for role, db in self.databases.items():
                conn.execute(f"create database {db} owner {role}")

    def _drop_databases(self) -> None:
        with psycopg.connect(self.pg_server, autocommit=True) as conn:
            for db in self.databases.values():
                conn.execute(f"drop database if exists {db} with (force)")

    def service(self, name: str) -> dict:
        return self.config["services"][name]

    def home(self, name: str) -> Path:
        return self.root / "homes" / name

    def env(self, name: str, instance: int = 0) -> dict[str, str]:
        log_port = self.worker_ports[instance] if name == "airflow-worker" else self.ports["scheduler_logs"]
        worker_log_port = self.worker_ports[0] if self.executor == "CeleryExecutor" and name != "airflow-worker" \
            else log_port
        ports = {
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.local.api_port),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports["triggerer_logs"]),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.ports["scheduler_health"]),
        }
        return environment(self.service(name), self._home_for(name, instance), self.local, ports)

    def _home_for(self, name: str, instance: int = 0) -> Path:
        home = self.home(f"{name}-{instance + 1}" if name == "airflow-worker" else name)
        if not home.exists():
            mounts = [Mount.parse(v) for v in self.service(name).get("volumes", [])]
            make_home(home, mounts, self.shared)
        return home

    def shared_path(self, target: str) -> Path:
        """A mount of the file (``/opt/airflow/landing``) as the components see it."""
        return self.home("airflow-scheduler") / target.removeprefix("/opt/airflow/")

    # ---------------------------------------------------------------- processes

    def start(self, name: str, instance: int = 0) -> Process:
        home = self._home_for(name, instance)
        command = argv(self.service(name), home)
        if name == "airflow-worker":  # each container has a hostname of its own
            command += ["--celery-hostname", f"worker{instance + 1}@%h"]
        label = f"{name}-{instance + 1}" if name == "airflow-worker" else name
        log = self.root / "logs" / f"{label}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as fh:
            popen = subprocess.Popen(command, env=self.env(name, instance), cwd=home, stdout=fh,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        proc = Process(label, popen, log)
        self.processes.append(proc)
        return proc

    def run_init(self, timeout: float = 600) -> str:
        """airflow-init, to completion (``service_completed_successfully``)."""
        proc = self.start("airflow-init")
        try:
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(proc.popen)
            pytest.fail(f"airflow-init did not finish in {timeout:.0f} s: {proc.tail()}")
        assert proc.popen.returncode == 0, f"airflow-init exited with {proc.popen.returncode}: {proc.tail()}"
        self.processes.remove(proc)
        return proc.log.read_text()

    def up(self, healthy_within: float = 300) -> AirflowAPI:
        """Start the components, wait until the API reports them healthy, log in."""
        self.prepare()
        self.init_output = self.run_init()
        for name in COMPONENTS:
            self.start(name)
        base = f"http://127.0.0.1:{self.local.api_port}"
        wait_until("the API server and its view of the scheduler, DAG processor and triggerer healthy",
                   lambda: self._healthy(base), healthy_within, 2, self.diagnose)
        for i in range(self.workers):  # depends_on: airflow-apiserver healthy
            self.start("airflow-worker", i)
        if self.workers:
            wait_until(f"{self.workers} Celery workers ready", self._workers_ready, healthy_within, 2, self.diagnose)
        self.api = AirflowAPI(base, "admin", self.password)
        return self.api

    def _healthy(self, base: str) -> bool:
        self._check_alive()
        try:
            status, _, body = request(base + "/api/v2/monitor/health")
        except OSError:
            return False
        if status != 200:
            return False
        health = json.loads(body)
        return all((health.get(k) or {}).get("status") == "healthy"
                   for k in ("metadatabase", "scheduler", "triggerer", "dag_processor"))

    def _workers_ready(self) -> bool:
        self._check_alive()
        return all("ready." in p.tail(200_000) for p in self.processes if p.name.startswith("airflow-worker"))

    def _check_alive(self) -> None:
        for p in self.processes:
            if p.popen.poll() is not None:
                pytest.fail(f"{p.name} exited with {p.popen.returncode}: {p.tail()}")

    def diagnose(self) -> str:
        return "\n".join(f"--- {p.name} (running: {p.popen.poll() is None}):\n{p.tail(1500)}" for p in self.processes)

    def log_of(self, name: str) -> str:
        return next(p for p in self.processes if p.name == name).log.read_text(errors="replace")

    def down(self, grace: float = 20) -> None:
        """Stop every component at once (SIGTERM to its session), then wait, bounded."""
        for p in self.processes:
            if p.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.processes:
            stop_process(p.popen, grace=max(0.1, deadline - time.monotonic()))
        if getattr(self, "redis", None):
            self.redis.stop()
        if getattr(self, "databases", None):
            self._drop_databases()
