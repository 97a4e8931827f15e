"""Alert state in a JSON file on this machine: the fallback without a database.

Pure: no Airflow. Locked with ``fcntl.flock`` (the callbacks of concurrent tasks on one
machine see each other), written atomically, bounded (:data:`MAX_STATE_BYTES`, at most
``max_dags`` DAGs). Machines that do not share the file keep their own state: use the
PostgreSQL store (:mod:`safeload.alerts.store_postgres`) when several workers alert.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from safeload.alerts.store import StateUnavailable, is_open, last_update, normalised

log = logging.getLogger(__name__)

STATE_DIR_ENV = "SAFELOAD_ALERT_STATE_DIR"
STATE_FILE = "alerts-state.json"
STATE_VERSION = 2
MAX_STATE_BYTES = 1 << 20
MAX_DAGS = 200


def default_state_path(environ: dict[str, str] | None = None) -> Path:
    """``$SAFELOAD_ALERT_STATE_DIR/alerts-state.json``, else ``$AIRFLOW_HOME/safeload/...``."""
    env = os.environ if environ is None else environ
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV]) / STATE_FILE
    home = env.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return Path(home) / "safeload" / STATE_FILE


def _from_version_1(doc: dict[str, Any]) -> dict[str, Any]:
    """A file of the first format (keys ``dag|task``, Slack ``thread_ts`` on the key)."""
    dags: dict[str, Any] = {}
    for key, rec in doc.get("keys", {}).items():
        dag_id, _, task_id = key.partition("|")
        state = normalised(dags.setdefault(dag_id, {}))
        for prefix in ("", "retry_"):
            if rec.get(f"{prefix}thread_ts"):
                thread_id = f"v1-{task_id}-{prefix or 'failure'}"
                state["threads"][thread_id] = {
                    "ts": rec[f"{prefix}thread_ts"], "channel": rec.get(f"{prefix}channel"),
                    "status": "sent", "since": rec.get("updated", 0), "kind": "failure",
                    "task_id": task_id, "run_id": rec.get("last_run_id"), "pending": [],
                    "updated": rec.get("updated", 0)}
                rec[f"{prefix}thread"] = thread_id
        state["keys"][task_id] = rec
    for key, run in doc.get("runs", {}).items():
        dag_id, _, run_id = key.partition("|")
        normalised(dags.setdefault(dag_id, {}))["runs"][run_id] = run
    return {"version": STATE_VERSION, "dags": dags}


class FileStore:
    """The alert state of one machine (or of one shared directory).

    :param path: the JSON file; default :func:`default_state_path`.
    :param lock_timeout: seconds to wait for the file lock before giving up.
    :param max_dags: DAGs kept; those without an open incident, least recently
        updated, go first.
    :param max_bytes: the file's largest size.
    """

    name = "file"

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_timeout: float = 5.0,
                 max_dags: int = MAX_DAGS, max_bytes: int = MAX_STATE_BYTES) -> None:
        self.path = Path(path) if path is not None else default_state_path()
        self.lock_timeout = lock_timeout
        self.max_dags = max_dags
        self.max_bytes = max_bytes

    @property
    def where(self) -> str:
        return str(self.path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StateUnavailable(f"cannot open {lock_path}: {e}") from e
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:  # bounded by the deadline
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StateUnavailable(f"{lock_path} stayed locked for {self.lock_timeout} s") from None
                    time.sleep(0.01)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"version": STATE_VERSION, "dags": {}}
        except OSError as e:
            raise StateUnavailable(f"cannot read {self.path}: {e}") from e
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise ValueError("not a safeload alert state")
            if doc.get("version") == 1 and isinstance(doc.get("keys"), dict):
                doc = _from_version_1(doc)
            if not isinstance(doc.get("dags"), dict):
                raise ValueError("not a safeload alert state")
        except ValueError as e:
            corrupt = self.path.with_name(self.path.name + ".corrupt")
            log.warning("Alert state %s is unreadable (%s); starting afresh, old file kept as %s",
                        self.path, e, corrupt)
            try:
                os.replace(self.path, corrupt)
            except OSError:
                pass
            return {"version": STATE_VERSION, "dags": {}}
        return doc

    def _bound(self, doc: dict[str, Any], data: str, keep: str) -> str:
        dags: dict[str, Any] = doc["dags"]
        for dag_id in [d for d, s in dags.items() if not any(s.get(k) for k in ("keys", "runs", "threads", "notices"))]:
            del dags[dag_id]
        for _ in range(8):  # bounded: each pass drops at least one DAG or stops
            over = len(dags) - self.max_dags
            if over <= 0 and len(data) <= self.max_bytes:
                break
            order = sorted((d for d in dags if d != keep),
                           key=lambda d: (is_open(dags[d]), last_update(dags[d])))
            drop = max(over, len(dags) // 2 if len(data) > self.max_bytes else 0, 1)
            for dag_id in order[:drop]:
                del dags[dag_id]
            data = json.dumps(doc, separators=(",", ":"), sort_keys=True)
            if not order:
                break
        return data

    def _save(self, doc: dict[str, Any], dag_id: str) -> None:
        data = self._bound(doc, json.dumps(doc, separators=(",", ":"), sort_keys=True), dag_id)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(data, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as e:
            raise StateUnavailable(f"cannot write {self.path}: {e}") from e

    @contextmanager
    def dag(self, dag_id: str) -> Iterator[dict[str, Any]]:
        with self._locked():
            doc = self._load()
            state = normalised(doc["dags"].setdefault(dag_id, {}))
            yield state
            self._save(doc, dag_id)

    def close(self) -> None:
        """Nothing to release: the file is opened and locked per transaction."""

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._locked():
            return {d: normalised(s) for d, s in self._load()["dags"].items()}
