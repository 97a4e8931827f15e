"""Airflow's REST API as a user drives it: a token from the login, then /api/v2.

Every request has a timeout and every wait a deadline.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

FINISHED = ("success", "failed")


def request(url: str, *, method: str | None = None, headers: dict[str, str] | None = None,
            body: Any = None, timeout: float = 30) -> tuple[int, dict, str]:
    """One request, redirects not followed: ``(status, headers, text)``."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})} if data is not None else dict(headers or {})
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


class AirflowAPI:
    """Logged in as ``user`` (SimpleAuthManager's ``POST /auth/token``)."""

    def __init__(self, base: str, user: str, password: str):
        self.base = base
        status, _, body = request(f"{base}/auth/token", method="POST", body={"username": user, "password": password})
        assert status in (200, 201), f"login as {user} refused: {status} {body[:300]}"
        self.token = json.loads(body)["access_token"]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kw) -> tuple[int, str]:
        status, _, body = request(self.base + path, headers={**self.auth, "Accept": "application/json"}, **kw)
        return status, body

    def json(self, path: str, method: str = "GET", body: Any = None, expect: tuple[int, ...] = (200,)) -> Any:
        status, _, text = request(self.base + path, method=method, body=body,
                                  headers={**self.auth, "Accept": "application/json"})
        assert status in expect, f"{method} {path}: {status} {text[:500]}"
        return json.loads(text) if text else None

    # ---------------------------------------------------------------- DAGs and runs

    def wait_for_dag(self, dag_id: str, timeout: float, diagnose=lambda: "") -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.get(f"/api/v2/dags/{dag_id}")
            if status == 200:
                return json.loads(body)
            if time.monotonic() > deadline:
                errors = self.get("/api/v2/importErrors")[1]
                pytest.fail(f"DAG {dag_id} not parsed within {timeout:.0f} s; import errors: {errors[:2000]}. "
                            f"{diagnose()}")
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self.json(f"/api/v2/dags/{dag_id}", "PATCH", {"is_paused": False})

    def trigger(self, dag_id: str, run_id: str, logical_date: str, conf: dict | None = None) -> dict:
        return self.json(f"/api/v2/dags/{dag_id}/dagRuns", "POST",
                         {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf or {}})

    def clear(self, dag_id: str, run_id: str) -> None:
        """Run a DAG run again, every task (the UI's "Clear"; a logical date has one run)."""
        self.json(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/clear", "POST", {"dry_run": False})

    def runs(self, dag_id: str) -> list[dict]:
        return self.json(f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.json(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        tis = self.json(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]
        return {ti["task_id"]: ti for ti in tis}

    def states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {t: ti["state"] for t, ti in self.task_instances(dag_id, run_id).items()}

    def wait_for_runs(self, dag_id: str, run_ids: list[str], timeout: float, diagnose=lambda: "") -> dict[str, str]:
        """Wait until every run has finished; return ``{run_id: state}``."""
        deadline = time.monotonic() + timeout
        while True:
            states = {r: self.run(dag_id, r)["state"] for r in run_ids}
            if all(s in FINISHED for s in states.values()):
                return states
            if time.monotonic() > deadline:
                detail = {r: self.states(dag_id, r) for r in run_ids}
                pytest.fail(f"{dag_id} runs not finished within {timeout:.0f} s: {states}; tasks: {detail}. "
                            f"{diagnose()}")
            time.sleep(2)

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log as the UI shows it (served by the component that holds it while it runs)."""
        data = self.json(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
                         "?full_content=true")
        content = data.get("content")
        if isinstance(content, list):
            return "\n".join(c.get("event", "") if isinstance(c, dict) else str(c) for c in content)
        return str(content)
