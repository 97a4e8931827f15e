"""docker-compose.yaml as its containers would see it, turned into local processes' settings.

The file is resolved by Debian's ``docker-compose config`` (anchors merged, ``${VAR}``
interpolated from an env file), so this module never re-implements compose. What a
container has that a local process lacks is then substituted, and only that:

* **hosts and ports**: ``postgres``, ``warehouse``, ``redis`` and ``airflow-apiserver`` in
  URIs become 127.0.0.1 and the local port, and the databases one of their own on the
  tests' PostgreSQL server; ports a container binds (API, log servers, health check)
  become free local ports, set through Airflow's own settings;
* **paths**: ``/opt/airflow`` (the image's AIRFLOW_HOME) becomes the component's own home
  folder, where each mount of the file is a symlink: read-only mounts (dags, plugins,
  include) to the repository, the others (logs, landing, the state volume) to folders
  that every component shares, as the containers share those volumes;
* **the image's entrypoint**: ``python ...`` and ``bash ...`` run as they are, anything
  else as ``airflow ...``, with the virtualenv's interpreter and ``airflow``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from ci import in_ci

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
IMAGE_HOME = "/opt/airflow"
BIN = Path(sys.executable).parent
# the services whose hosts appear in the file's URIs, and their ports inside the network
NETWORK_PORTS = {"postgres": 5432, "warehouse": 5432, "redis": 6379, "airflow-apiserver": 8080}
_HOST_IN_URI = re.compile(r"(?P<lead>@|://)(?P<host>" + "|".join(map(re.escape, NETWORK_PORTS))
                          + r")(?::(?P<port>\d+))?(?=[/?\s]|$)(?P<path>/[A-Za-z0-9_]*)?")


def full() -> bool:
    """``make e2e``: the whole story on every executor (``make test`` runs part of it)."""
    return os.environ.get("SAFELOAD_E2E", "").lower() == "full"


def docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe:
        return exe
    if in_ci():
        pytest.fail("docker-compose is not installed; .ci/run installs Debian's docker-compose")
    pytest.skip("docker-compose not installed (apt-get install docker-compose): it resolves docker-compose.yaml")


def readme_env_block() -> str:
    """The shell block of README's "Deploy it" section that writes ``.env``."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Deploy it", 1)
    assert len(section) == 2, "README.md has no '## Deploy it' section"
    blocks = re.findall(r"```bash\n(.*?)```", section[1].split("\n## ", 1)[0], flags=re.S)
    env_blocks = [b for b in blocks if re.search(r"(?<!>)> \.env\b", b)]  # the one that creates it
    assert len(env_blocks) == 1, f"README's 'Deploy it' should have one block writing .env, found {len(env_blocks)}"
    return env_blocks[0]


def write_env_file(folder: Path, extra: dict[str, str]) -> Path:
    """Run README's block in ``folder`` (as a team does, once), then add ``extra`` lines."""
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_env_block()], cwd=folder, capture_output=True,
                          text=True, timeout=60, env={"PATH": os.environ["PATH"], "HOME": str(folder)})
    assert proc.returncode == 0, f"README's .env block failed: {proc.stderr}"
    env_file = folder / ".env"
    with open(env_file, "a") as fh:
        for k, v in extra.items():
            fh.write(f"{k}={v}\n")
    return env_file


def resolve(env_file: Path, profiles: list[str], shell_env: dict[str, str] | None = None) -> dict:
    """``docker-compose config`` of the file, with ``env_file`` and the given profiles."""
    argv = [docker_compose(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE)]
    for p in profiles:
        argv += ["--profile", p]
    env = {"PATH": os.environ["PATH"], "HOME": str(env_file.parent), **(shell_env or {})}
    proc = subprocess.run([*argv, "config"], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert proc.returncode == 0, f"docker-compose config failed: {proc.stderr}"
    return yaml.safe_load(proc.stdout)


@dataclass(frozen=True)
class Mount:
    source: str  # a host path (bind mount) or a volume name
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith("/")

    @classmethod
    def parse(cls, spec: str | dict) -> Mount:
        if isinstance(spec, dict):  # long syntax
            return cls(spec["source"], spec["target"], bool(spec.get("read_only")))
        parts = spec.split(":")
        mode = parts[2] if len(parts) > 2 else "rw"
        return cls(parts[0], parts[1], "ro" in mode.split(","))


@dataclass
class Local:
    """Where the containers' network services are on this machine."""

    pg_port: int
    databases: dict[str, str]  # compose database name -> local database name
    api_port: int
    redis_port: int | None = None

    def port_of(self, host: str) -> int | None:
        if host in ("postgres", "warehouse"):
            return self.pg_port
        if host == "redis":
            return self.redis_port
        return self.api_port

    def uri(self, value: str) -> str:
        """``value`` with every compose service host in it replaced by this machine's
        (a service this deployment does not run, e.g. redis under LocalExecutor, stays)."""
        def local(m: re.Match) -> str:
            if self.port_of(m.group("host")) is None:
                return m.group(0)
            path = m.group("path") or ""
            if path and m.group("host") in ("postgres", "warehouse"):
                path = "/" + self.databases.get(path[1:], path[1:])
            return f"{m.group('lead')}127.0.0.1:{self.port_of(m.group('host'))}{path}"

        return _HOST_IN_URI.sub(local, value)


def local_path(value: str, home: Path) -> str:
    """``/opt/airflow/...`` in ``value`` as the component's home."""
    return re.sub(rf"(?<![\w/]){re.escape(IMAGE_HOME)}(?=/|$|\s)", str(home), value)


def argv(service: dict, home: Path) -> list[str]:
    """The service's command as the image's entrypoint runs it, with local paths."""
    command = service.get("command") or []
    words = shlex.split(command) if isinstance(command, str) else list(command)
    entrypoint = service.get("entrypoint")
    if entrypoint:
        words = (shlex.split(entrypoint) if isinstance(entrypoint, str) else list(entrypoint)) + words
    words = [local_path(w, home) for w in words]
    if words and words[0] in ("python", "python3"):
        return [sys.executable, *words[1:]]
    if words and words[0] in ("bash", "/bin/bash"):
        return ["bash", *words[1:]]
    if words and words[0] == "airflow":
        words = words[1:]
    return [str(BIN / "airflow"), *words]


def make_home(home: Path, mounts: list[Mount], shared: Path) -> None:
    """A component's AIRFLOW_HOME: each mount under /opt/airflow as a symlink.

    Read-only bind mounts point at their source (the repository's dags, plugins, include);
    everything else at ``shared/<name>``, one folder per volume or writable bind mount, the
    same for every component, as containers share them."""
    home.mkdir(parents=True, exist_ok=True)
    for m in mounts:
        if not m.target.startswith(IMAGE_HOME + "/"):
            continue
        link = home / m.target[len(IMAGE_HOME) + 1:]
        if m.is_bind and m.read_only:
            dest = Path(m.source)
        else:
            dest = shared / (Path(m.source).name if m.is_bind else m.source)
            dest.mkdir(parents=True, exist_ok=True)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(dest, target_is_directory=True)


def environment(service: dict, home: Path, local: Local, ports: dict[str, str]) -> dict[str, str]:
    """The process environment of one component: the service's, localised, and nothing of
    the test process's Airflow settings."""
    env = {k: v for k, v in os.environ.items()
           if k in ("LANG", "LC_ALL", "TMPDIR", "TZ")}
    for key, value in (service.get("environment") or {}).items():
        value = "" if value is None else str(value)
        env[key] = local_path(local.uri(value), home)
    env.update({
        "AIRFLOW_HOME": str(home),  # the image's ENV AIRFLOW_HOME=/opt/airflow
        "HOME": str(home),
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        **ports,
    })
    return env
