"""A real ``airflow api-server`` for the UI tests: its environment, start, health wait and stop.

Every wait is bounded; the server runs in its own process group so that stopping it also
stops its workers.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SIMPLE = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, *, method: str | None = None, headers: dict[str, str] | None = None,
            data: bytes | None = None) -> tuple[int, dict, str]:
    """One request, redirects not followed: ``(status, headers, body)``."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=15) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def airflow_env(home: Path, *, ui_conn_uri: str, auth_manager: str = SIMPLE) -> tuple[dict[str, str], str]:
    """Airflow's environment for a throw-away deployment in ``home``: SQLite metadata, no
    examples, SimpleAuthManager's ``viewer`` user (not an admin) with a fresh password, and
    the page reading the connection ``history_db`` (not the default ``warehouse``, so the
    ``[safeload] ui_conn_id`` setting is exercised). Returns ``(env, viewer's password)``."""
    (home / "dags").mkdir(parents=True)
    password = secrets.token_urlsafe(12)
    (home / "passwords.json").write_text(json.dumps({"viewer": password}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": auth_manager,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__SAFELOAD__UI_CONN_ID": "history_db",
        "AIRFLOW_CONN_HISTORY_DB": ui_conn_uri,
    })
    return env, password


@contextmanager
def api_server(env: dict[str, str], log_path: Path, *, healthy_within: float = 120) -> Iterator[str]:
    """Run ``airflow api-server`` on a free port of 127.0.0.1 (metadata already migrated);
    yield its base URL once it reports healthy; stop it on exit."""
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen([AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + healthy_within
        while True:  # bounded by the deadline
            if proc.poll() is not None:
                pytest.fail(f"api-server exited with {proc.returncode}: {log_path.read_text()[-3000:]}")
            try:
                if request(base + "/api/v2/monitor/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"api-server not healthy in {healthy_within:.0f} s: {log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)  # a throw-away server: no need to wait out its graceful shutdown
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
