"""Storm control for safeload's alerts, kept in a small JSON file.

Pure: no Airflow import. The notifiers ask this module, before they post, whether an
alert is news; they tell it afterwards what happened (posted or not, the Slack ``ts``
of the message). The rules, per ``dag_id.task_id`` ("key"):

1. **Window.** The first failure of a key opens a window (default one hour). It gets
   the full failure message, and its Slack thread (Web API) is remembered.
2. **Repeats** of that key inside the window are counted, not posted anew. A short
   "failed again, Nth time in the last hour" line goes out only at the counts in
   :data:`NOTIFY_COUNTS` (2nd, 3rd, 5th, 10th, 20th, 50th, ...), in the first message's
   thread where the Web API is used. Repeats inside the *same* DAG run (mapped
   instances, a callback fired while retries remain) are not announced again, except
   the **final** failure after a "will retry" one: that one always goes out.
3. **One run, one message.** Within one DAG run, at most ``task_posts_per_run``
   (default 1) task-level failure messages are posted; further failing tasks of the
   run are *folded*: recorded, not posted. The DAG-level failure message (the notifier
   attached as the DAG's ``on_failure_callback``) lists every failed task of the run,
   folded ones marked; it is skipped when the run's task alerts already said it all.
4. **Duplicates** (the same try of the same task instance reported twice, e.g. by a
   callback and by the listener) are dropped.
5. **Resolved.** A success closes the key's open incident; the notifier posts
   "resolved" only if something about the incident was posted, in its thread.
6. A message that could not be delivered does not count as posted: the next failure
   tries the full message again.

If the state file cannot be locked or read, alerts are posted without storm control
(better a duplicate than a lost alert) and a warning is logged.

The file is bounded (``max_keys`` keys, ``max_runs`` runs, short lists, at most
:data:`MAX_STATE_BYTES`), written atomically and locked with ``fcntl.flock`` so that
the callbacks of concurrent tasks on one machine see each other. Machines that do not
share the file (several Celery workers, the DAG processor) each keep their own; point
``SAFELOAD_ALERT_STATE_DIR`` at a shared volume to share it.
"""

from __future__ import annotations

import copy
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_DIR_ENV = "SAFELOAD_ALERT_STATE_DIR"
STATE_FILE = "alerts-state.json"
DEFAULT_WINDOW = 3600.0
DEFAULT_TASK_POSTS_PER_RUN = 1
#: Repeat counts (within a window) that are announced; the others are only counted.
NOTIFY_COUNTS = frozenset({2, 3, 5, 10, 20, 50, 100, 200, 500, 1000})
MAX_STATE_BYTES = 1 << 20
MAX_EVENTS_PER_KEY = 20
MAX_TASKS_PER_RUN = 200
STATE_VERSION = 1

POST = "post"  # the full message
REPEAT = "repeat"  # a short "failed again" line, threaded where possible
FOLD = "fold"  # counted into the run's DAG-level message, not posted
SUPPRESS = "suppress"  # counted, not posted
DUPLICATE = "duplicate"  # this very event was seen already
SKIP = "skip"  # DAG-level message with nothing new to say
SEND_ACTIONS = frozenset({POST, REPEAT})


def is_notify_count(n: int) -> bool:
    return n in NOTIFY_COUNTS or (n > 1000 and n % 1000 == 0)


def default_state_path(environ: dict[str, str] | None = None) -> Path:
    """``$SAFELOAD_ALERT_STATE_DIR/alerts-state.json``, else ``$AIRFLOW_HOME/safeload/...``."""
    env = os.environ if environ is None else environ
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV]) / STATE_FILE
    home = env.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return Path(home) / "safeload" / STATE_FILE


class StateUnavailable(Exception):
    """The state file could not be locked, read or written."""


@dataclass
class Decision:
    """What to do with one alert, and what to remember once it is sent."""

    action: str
    key: str
    kind: str  # failure | retry | dag_failure
    reason: str
    count: int = 1
    incident_count: int = 1
    incident_start: float | None = None
    window: float = DEFAULT_WINDOW
    thread_ts: str | None = None
    channel: str | None = None
    broadcast: bool = False
    run_key: str | None = None
    failed_tasks: list[str] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    stateless: bool = False

    @property
    def send(self) -> bool:
        return self.action in SEND_ACTIONS


@dataclass
class Resolution:
    """An open incident closed by a success."""

    keys: list[str]
    failures: int
    since: float | None
    thread_ts: str | None
    channel: str | None
    tasks: list[str]
    previous: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)


def _key(dag_id: str, task_id: str | None) -> str:
    return f"{dag_id}|{task_id or ''}"


def _new_record(now: float) -> dict[str, Any]:
    return {
        "window_start": None,
        "window_count": 0,
        "posted": False,
        "thread_ts": None,
        "channel": None,
        "retry_window_start": None,
        "retry_count": 0,
        "retry_posted": False,
        "retry_thread_ts": None,
        "retry_channel": None,
        "incident_start": None,
        "incident_count": 0,
        "announced": False,
        "last_run_id": None,
        "last_final": None,
        "events": [],
        "updated": now,
    }


def _closed(rec: dict[str, Any]) -> None:
    events = rec.get("events", [])
    rec.clear()
    rec.update(_new_record(time.time()))
    rec["events"] = events


class AlertState:
    """The storm-control state of one machine (or of one shared directory).

    :param path: the JSON file; default :func:`default_state_path`.
    :param window: seconds during which repeats of a key are folded (default 3600).
    :param task_posts_per_run: task-level failure messages per DAG run before the rest
        are folded into the DAG-level message (default 1).
    :param max_keys: keys kept; the oldest closed ones go first.
    :param max_runs: DAG runs kept (for folding); the oldest go first.
    :param lock_timeout: seconds to wait for the file lock before giving up on storm
        control for this alert.
    :param clock: returns the time in epoch seconds (tests pass a fake one).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        window: float = DEFAULT_WINDOW,
        task_posts_per_run: int = DEFAULT_TASK_POSTS_PER_RUN,
        max_keys: int = 500,
        max_runs: int = 200,
        lock_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window <= 0:
            raise ValueError(
                f"window={window!r}: the storm-control window must be positive seconds, e.g. 3600"
            )
        if task_posts_per_run < 1:
            raise ValueError(f"task_posts_per_run={task_posts_per_run!r}: must be at least 1")
        self.path = Path(path) if path is not None else default_state_path()
        self.window = float(window)
        self.task_posts_per_run = int(task_posts_per_run)
        self.max_keys = max_keys
        self.max_runs = max_runs
        self.lock_timeout = lock_timeout
        self.clock = clock

    # ------------------------------------------------------------------ file

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
                        raise StateUnavailable(
                            f"{lock_path} stayed locked for {self.lock_timeout} s"
                        ) from None
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
            return {"version": STATE_VERSION, "keys": {}, "runs": {}}
        except OSError as e:
            raise StateUnavailable(f"cannot read {self.path}: {e}") from e
        try:
            doc = json.loads(raw)
            if (
                not isinstance(doc, dict)
                or not isinstance(doc.get("keys"), dict)
                or not isinstance(doc.get("runs"), dict)
            ):
                raise ValueError("not a safeload alert state")
        except ValueError as e:
            corrupt = self.path.with_name(self.path.name + ".corrupt")
            log.warning(
                "Alert state %s is unreadable (%s); starting afresh, old file kept as %s",
                self.path,
                e,
                corrupt,
            )
            try:
                os.replace(self.path, corrupt)
            except OSError:
                pass
            return {"version": STATE_VERSION, "keys": {}, "runs": {}}
        return doc

    def _save(self, doc: dict[str, Any]) -> None:
        self._prune(doc)
        data = json.dumps(doc, separators=(",", ":"), sort_keys=True)
        for _ in range(6):  # bounded: each pass halves what is kept
            if len(data) <= MAX_STATE_BYTES:
                break
            self._prune(
                doc, max_keys=max(len(doc["keys"]) // 2, 1), max_runs=max(len(doc["runs"]) // 2, 1)
            )
            data = json.dumps(doc, separators=(",", ":"), sort_keys=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(data, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as e:
            raise StateUnavailable(f"cannot write {self.path}: {e}") from e

    def _prune(
        self, doc: dict[str, Any], *, max_keys: int | None = None, max_runs: int | None = None
    ) -> None:
        now = self.clock()
        max_keys = self.max_keys if max_keys is None else max_keys
        max_runs = self.max_runs if max_runs is None else max_runs
        keys: dict[str, Any] = doc["keys"]
        horizon = max(2 * self.window, 6 * 3600)
        for k in [
            k
            for k, r in keys.items()
            if not r.get("incident_count") and now - r.get("updated", 0) > horizon
        ]:
            del keys[k]
        if len(keys) > max_keys:
            # closed keys go first, then the least recently updated
            order = sorted(
                keys, key=lambda k: (bool(keys[k].get("incident_count")), keys[k].get("updated", 0))
            )
            for k in order[: len(keys) - max_keys]:
                del keys[k]
        runs: dict[str, Any] = doc["runs"]
        for k in [k for k, r in runs.items() if now - r.get("updated", 0) > 2 * 86400]:
            del runs[k]
        if len(runs) > max_runs:
            for k in sorted(runs, key=lambda k: runs[k].get("updated", 0))[: len(runs) - max_runs]:
                del runs[k]

    @contextmanager
    def _document(self) -> Iterator[dict[str, Any]]:
        with self._locked():
            doc = self._load()
            yield doc
            self._save(doc)

    def snapshot(self) -> dict[str, Any]:
        """A copy of the whole state (for tests and debugging)."""
        with self._locked():
            return self._load()

    # ------------------------------------------------------------------ helpers

    def _record(self, doc: dict[str, Any], key: str, now: float) -> dict[str, Any]:
        rec = doc["keys"].get(key)
        if rec is None:
            rec = doc["keys"][key] = _new_record(now)
        for k, v in _new_record(now).items():  # files written by older versions
            rec.setdefault(k, v)
        rec["updated"] = now
        return rec

    def _run(self, doc: dict[str, Any], run_key: str, now: float) -> dict[str, Any]:
        run = doc["runs"].get(run_key)
        if run is None:
            run = doc["runs"][run_key] = {
                "posts": 0,
                "posted": [],
                "failed": [],
                "folded": [],
                "updated": now,
            }
        run["updated"] = now
        return run

    @staticmethod
    def _seen(rec: dict[str, Any], event_id: str) -> bool:
        if event_id in rec["events"]:
            return True
        rec["events"] = (rec["events"] + [event_id])[-MAX_EVENTS_PER_KEY:]
        return False

    def _roll(self, rec: dict[str, Any], now: float, prefix: str = "") -> None:
        start = rec[f"{prefix}window_start"]
        if start is None or now - start >= self.window or now < start:
            rec[f"{prefix}window_start"] = now
            rec[f"{prefix}{'count' if prefix else 'window_count'}"] = 0
            rec[f"{prefix}posted"] = False
            rec[f"{prefix}thread_ts"] = None
            rec[f"{prefix}channel"] = None

    @staticmethod
    def _open_incident(rec: dict[str, Any], now: float) -> None:
        if rec["incident_start"] is None:
            rec["incident_start"] = now
        rec["incident_count"] += 1

    @staticmethod
    def _add(items: list[str], item: str) -> None:
        if item not in items and len(items) < MAX_TASKS_PER_RUN:
            items.append(item)

    def _stateless(self, key: str, kind: str, error: Exception) -> Decision:
        log.warning("Alert storm control is off for this alert: %s", error)
        return Decision(
            action=POST,
            key=key,
            kind=kind,
            reason=f"state unavailable: {error}",
            window=self.window,
            stateless=True,
        )

    # ------------------------------------------------------------------ decisions

    def record_failure(
        self,
        *,
        dag_id: str,
        task_id: str,
        run_id: str | None,
        try_number: int | None = None,
        map_index: int | None = None,
        final: bool = True,
    ) -> Decision:
        """Count a task failure and decide whether (and how) to post it."""
        key = _key(dag_id, task_id)
        run_key = f"{dag_id}|{run_id}"
        event_id = f"failure|{run_id}|{map_index if map_index is not None else -1}|{try_number}"
        try:
            with self._document() as doc:
                now = self.clock()
                rec = self._record(doc, key, now)
                base = dict(key=key, kind="failure", window=self.window, run_key=run_key)
                if self._seen(rec, event_id):
                    return Decision(
                        action=DUPLICATE, reason="this failure was reported already", **base
                    )
                self._roll(rec, now)
                rec["window_count"] += 1
                self._open_incident(rec, now)
                run = self._run(doc, run_key, now)
                self._add(run["failed"], task_id)
                counts = dict(
                    count=rec["window_count"],
                    incident_count=rec["incident_count"],
                    incident_start=rec["incident_start"],
                )
                if not rec["posted"]:
                    if run["posts"] >= self.task_posts_per_run and task_id not in run["posted"]:
                        self._add(run["folded"], task_id)
                        return Decision(
                            action=FOLD,
                            reason=(
                                f"{run['posts']} task alert(s) already posted for run {run_id}; "
                                "folded into the DAG-level message"
                            ),
                            **base,
                            **counts,
                        )
                    rec["posted"] = True
                    if task_id not in run["posted"]:
                        run["posts"] += 1
                        run["posted"].append(task_id)
                    rec["last_run_id"], rec["last_final"] = run_id, final
                    return Decision(
                        action=POST, reason="first failure in the window", **base, **counts
                    )
                thread = dict(thread_ts=rec["thread_ts"], channel=rec["channel"])
                if final and rec["last_run_id"] == run_id and rec["last_final"] is False:
                    rec["last_final"] = True
                    return Decision(
                        action=REPEAT,
                        reason="final failure after a 'will retry' alert of the same run",
                        broadcast=True,
                        **base,
                        **counts,
                        **thread,
                    )
                if rec["last_run_id"] == run_id:
                    return Decision(
                        action=SUPPRESS,
                        reason=f"run {run_id} was alerted already",
                        **base,
                        **counts,
                    )
                if is_notify_count(rec["window_count"]):
                    rec["last_run_id"], rec["last_final"] = run_id, final
                    return Decision(
                        action=REPEAT,
                        reason="repeat count worth a line",
                        **base,
                        **counts,
                        **thread,
                    )
                return Decision(
                    action=SUPPRESS, reason="repeat within the window, counted", **base, **counts
                )
        except StateUnavailable as e:
            return self._stateless(key, "failure", e)

    def record_retry(
        self,
        *,
        dag_id: str,
        task_id: str,
        run_id: str | None,
        try_number: int | None = None,
        map_index: int | None = None,
    ) -> Decision:
        """Count a failed try that will be retried; one post per key and window."""
        key = _key(dag_id, task_id)
        event_id = f"retry|{run_id}|{map_index if map_index is not None else -1}|{try_number}"
        try:
            with self._document() as doc:
                now = self.clock()
                rec = self._record(doc, key, now)
                base = dict(key=key, kind="retry", window=self.window, run_key=f"{dag_id}|{run_id}")
                if self._seen(rec, event_id):
                    return Decision(
                        action=DUPLICATE, reason="this retry was reported already", **base
                    )
                self._roll(rec, now, prefix="retry_")
                rec["retry_count"] += 1
                self._open_incident(rec, now)
                counts = dict(
                    count=rec["retry_count"],
                    incident_count=rec["incident_count"],
                    incident_start=rec["incident_start"],
                )
                if not rec["retry_posted"]:
                    rec["retry_posted"] = True
                    rec["last_run_id"], rec["last_final"] = run_id, False
                    return Decision(
                        action=POST, reason="first retry in the window", **base, **counts
                    )
                return Decision(
                    action=SUPPRESS, reason="retries are posted once per window", **base, **counts
                )
        except StateUnavailable as e:
            return self._stateless(key, "retry", e)

    def record_dag_failure(
        self, *, dag_id: str, run_id: str | None, reason: str | None = None
    ) -> Decision:
        """Decide on the DAG-level message of a failed run (lists folded task failures)."""
        key = _key(dag_id, None)
        run_key = f"{dag_id}|{run_id}"
        try:
            with self._document() as doc:
                now = self.clock()
                rec = self._record(doc, key, now)
                run = doc["runs"].get(run_key) or {
                    "posts": 0,
                    "posted": [],
                    "failed": [],
                    "folded": [],
                }
                base = dict(
                    key=key,
                    kind="dag_failure",
                    window=self.window,
                    run_key=run_key,
                    failed_tasks=list(run["failed"]),
                    folded=list(run["folded"]),
                )
                if self._seen(rec, f"dag_failure|{run_id}"):
                    return Decision(
                        action=DUPLICATE, reason="this run's failure was reported already", **base
                    )
                if (reason in (None, "task_failure")) and run["posts"] > 0 and not run["folded"]:
                    return Decision(action=SKIP, reason="the run's task alerts said it all", **base)
                self._roll(rec, now)
                rec["window_count"] += 1
                self._open_incident(rec, now)
                counts = dict(
                    count=rec["window_count"],
                    incident_count=rec["incident_count"],
                    incident_start=rec["incident_start"],
                )
                if not rec["posted"]:
                    rec["posted"] = True
                    rec["last_run_id"], rec["last_final"] = run_id, True
                    return Decision(
                        action=POST, reason="first failed run in the window", **base, **counts
                    )
                thread = dict(thread_ts=rec["thread_ts"], channel=rec["channel"])
                if is_notify_count(rec["window_count"]):
                    return Decision(
                        action=REPEAT,
                        reason="repeat count worth a line",
                        **base,
                        **counts,
                        **thread,
                    )
                return Decision(
                    action=SUPPRESS, reason="repeat within the window, counted", **base, **counts
                )
        except StateUnavailable as e:
            return self._stateless(key, "dag_failure", e)

    def commit(
        self,
        decision: Decision,
        *,
        ok: bool,
        thread_ts: str | None = None,
        channel: str | None = None,
    ) -> None:
        """Remember how a decided alert went: delivered (and its Slack ``ts``) or not."""
        if decision.stateless or not decision.send:
            return
        try:
            with self._document() as doc:
                rec = doc["keys"].get(decision.key)
                if rec is None:
                    return
                run = doc["runs"].get(decision.run_key or "")
                prefix = "retry_" if decision.kind == "retry" else ""
                if ok:
                    rec["announced"] = True
                    if decision.action == POST:
                        rec[f"{prefix}thread_ts"] = thread_ts
                        rec[f"{prefix}channel"] = channel
                    if decision.kind == "dag_failure":
                        dag_id = decision.key.split("|", 1)[0]
                        for task_id in decision.failed_tasks:
                            task_rec = doc["keys"].get(_key(dag_id, task_id))
                            if task_rec is not None and task_rec.get("incident_count"):
                                task_rec["announced"] = True
                elif decision.action == POST:
                    rec[f"{prefix}posted"] = False
                    if decision.kind == "failure" and run is not None:
                        task_id = decision.key.split("|", 1)[1]
                        if task_id in run["posted"]:
                            run["posted"].remove(task_id)
                            run["posts"] = max(run["posts"] - 1, 0)
        except StateUnavailable as e:
            log.warning("Could not record the alert's outcome: %s", e)

    def resolve(self, *, dag_id: str, task_id: str | None = None) -> Resolution | None:
        """Close open incidents on success: the task's, or for a DAG run all of the DAG's.

        Returns what to say "resolved" about, or ``None`` when nothing about them was
        ever posted (the incidents are closed silently then).
        """
        try:
            with self._document() as doc:
                keys = doc["keys"]
                if task_id:
                    chosen = [
                        k for k in (_key(dag_id, task_id),) if keys.get(k, {}).get("incident_count")
                    ]
                else:
                    prefix = f"{dag_id}|"
                    chosen = [
                        k
                        for k, r in keys.items()
                        if k.startswith(prefix) and r.get("incident_count")
                    ]
                if not chosen:
                    return None
                previous = {k: copy.deepcopy(keys[k]) for k in chosen}
                announced = [k for k in chosen if keys[k].get("announced")]
                for k in chosen:
                    _closed(keys[k])
                    keys[k]["updated"] = self.clock()
                if not announced:
                    return None
                dag_key = _key(dag_id, None)
                # the thread to answer in: the DAG-level message's, else the oldest incident's
                ordered = sorted(
                    announced, key=lambda k: (k != dag_key, previous[k].get("incident_start") or 0)
                )
                thread_ts = channel = None
                for k in ordered:
                    p = previous[k]
                    if p.get("thread_ts"):
                        thread_ts, channel = p["thread_ts"], p.get("channel")
                        break
                    if p.get("retry_thread_ts"):
                        thread_ts, channel = p["retry_thread_ts"], p.get("retry_channel")
                        break
                if dag_key in announced and not task_id:
                    failures = previous[dag_key]["incident_count"]
                else:
                    failures = sum(previous[k]["incident_count"] for k in announced if k != dag_key)
                starts = [
                    previous[k]["incident_start"]
                    for k in announced
                    if previous[k].get("incident_start")
                ]
                tasks = sorted(k.split("|", 1)[1] for k in announced if k != dag_key)
                return Resolution(
                    keys=announced,
                    failures=failures,
                    since=min(starts) if starts else None,
                    thread_ts=thread_ts,
                    channel=channel,
                    tasks=tasks,
                    previous=previous,
                )
        except StateUnavailable as e:
            log.warning(
                "Cannot tell whether %s.%s had failed before; no 'resolved' message: %s",
                dag_id,
                task_id,
                e,
            )
            return None

    def reopen(self, resolution: Resolution) -> None:
        """Undo :meth:`resolve` when the "resolved" message could not be delivered."""
        try:
            with self._document() as doc:
                for k, rec in resolution.previous.items():
                    current = doc["keys"].get(k)
                    if current is None or not current.get("incident_count"):
                        doc["keys"][k] = rec
        except StateUnavailable as e:
            log.warning("Could not reopen the incident after a failed 'resolved' message: %s", e)
