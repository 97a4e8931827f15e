"""Storm control for safeload's alerts: the rules of :mod:`safeload.alerts.rules` on a store.

Pure: no Airflow import. The notifiers ask :class:`AlertState`, before they post,
whether an alert is news; they tell it afterwards what happened (posted or not, the
Slack ``ts`` of the message). The rules themselves (first failure, repeats at the 2nd,
3rd, 5th, 10th..., one message per run, queued replies, one recovery summary per thread)
are described in :mod:`safeload.alerts.rules`.

The state lives in a store (:mod:`safeload.alerts.store`): PostgreSQL, shared by every
worker (:class:`~safeload.alerts.store_postgres.PostgresStore`), or a JSON file on this
machine without a database (:class:`~safeload.alerts.store_file.FileStore`). When the
shared store cannot be reached (the warehouse is down: the very moment every load
fails), this machine's file takes over for the rest of the alert, so repeats still fold
per machine. If no store can be used, the alert is posted without storm control
(better a duplicate than a lost alert) and a warning is logged.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from safeload.alerts import rules
from safeload.alerts.rules import (  # noqa: F401  (the names callers use)
    ALSO,
    DEFAULT_TASK_POSTS_PER_RUN,
    DEFAULT_WINDOW,
    DUPLICATE,
    FOLD,
    MAX_EVENTS_PER_KEY,
    NOTIFY_COUNTS,
    POST,
    QUEUED,
    REPEAT,
    SEND_ACTIONS,
    SKIP,
    SUPPRESS,
    Decision,
    Resolution,
    is_notify_count,
)
from safeload.alerts.store import StateStore, StateUnavailable
from safeload.alerts.store_file import (  # noqa: F401
    MAX_STATE_BYTES,
    STATE_DIR_ENV,
    STATE_FILE,
    FileStore,
    default_state_path,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
#: the state of notices that concern the whole deployment, not one DAG
DEPLOYMENT = ""


class AlertState:
    """Storm-control decisions on a store of alert state.

    :param path: the JSON file of a :class:`FileStore` (when ``store`` is not given);
        default :func:`default_state_path`.
    :param store: where the state lives; default a :class:`FileStore` at ``path``.
    :param fallback: the store used when ``store`` is unavailable (for the rest of this
        object's life: one alert), e.g. this machine's file behind PostgreSQL.
    :param window: seconds during which repeats of a key are folded (default 3600).
    :param task_posts_per_run: task-level failure messages per DAG run before the rest
        are folded (default 1).
    :param max_keys: task records kept per DAG; closed and least recently used go first.
    :param max_runs: DAG runs kept per DAG (for folding); the oldest go first.
    :param lock_timeout: seconds to wait for the file lock (file store only).
    :param clock: returns the time in epoch seconds (tests pass a fake one).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        store: StateStore | None = None,
        fallback: StateStore | None = None,
        window: float = DEFAULT_WINDOW,
        task_posts_per_run: int = DEFAULT_TASK_POSTS_PER_RUN,
        max_keys: int = rules.MAX_KEYS_PER_DAG,
        max_runs: int = rules.MAX_RUNS_PER_DAG,
        lock_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = rules.Settings(window=window, task_posts_per_run=task_posts_per_run,
                                       max_keys=max_keys, max_runs=max_runs)
        self.store: StateStore = store if store is not None else FileStore(path, lock_timeout=lock_timeout)
        self.fallback = fallback
        self.clock = clock

    @property
    def window(self) -> float:
        return self.settings.window

    def _apply(self, dag_id: str, change: Callable[[dict[str, Any], float], T]) -> T:
        """Run ``change`` on the DAG's state under the store's lock; prune; save."""
        try:
            with self.store.dag(dag_id) as state:
                now = self.clock()
                result = change(state, now)
                rules.prune(state, now, self.settings)
                return result
        except StateUnavailable as e:
            if self.fallback is None:
                raise
            log.warning("Shared alert state unavailable (%s); %s decides for this alert, so other "
                        "workers may post the same failure: %s", self.store.where, self.fallback.where, e)
            self.store, self.fallback = self.fallback, None
            return self._apply(dag_id, change)

    def _stateless(self, dag_id: str, task_id: str, kind: str, error: Exception) -> Decision:
        if isinstance(error, StateUnavailable):
            log.warning("Alert storm control is off for this alert (%s state): %s", self.store.name, error)
        else:  # a bug here must not lose the alert either
            log.error("Alert storm control is off for this alert (%s state): %s: %s",
                      self.store.name, type(error).__name__, error, exc_info=error)
        return Decision(action=POST, dag_id=dag_id, task_id=task_id, kind=kind,
                        reason=f"state unavailable: {error}", window=self.window, stateless=True)

    # ------------------------------------------------------------------ decisions

    def record_failure(self, *, dag_id: str, task_id: str, run_id: str | None,
                       try_number: int | None = None, map_index: int | None = None,
                       final: bool = True, dag_alert: bool = True,
                       detail: dict[str, Any] | None = None) -> Decision:
        """Count a task failure and decide whether (and how) to post it
        (see :func:`safeload.alerts.rules.record_failure`)."""
        try:
            return self._apply(dag_id, lambda s, now: rules.record_failure(
                s, now, self.settings, dag_id=dag_id, task_id=task_id, run_id=run_id,
                try_number=try_number, map_index=map_index, final=final, dag_alert=dag_alert,
                detail=detail))
        except Exception as e:
            return self._stateless(dag_id, task_id, "failure", e)

    def record_retry(self, *, dag_id: str, task_id: str, run_id: str | None,
                     try_number: int | None = None, map_index: int | None = None) -> Decision:
        """Count a failed try that will be retried; one post per key and window."""
        try:
            return self._apply(dag_id, lambda s, now: rules.record_retry(
                s, now, self.settings, dag_id=dag_id, task_id=task_id, run_id=run_id,
                try_number=try_number, map_index=map_index))
        except Exception as e:
            return self._stateless(dag_id, task_id, "retry", e)

    def record_dag_failure(self, *, dag_id: str, run_id: str | None, reason: str | None = None,
                           causing_task: str | None = None) -> Decision:
        """Decide on the DAG-level message of a failed run (names the run's failed tasks)."""
        try:
            return self._apply(dag_id, lambda s, now: rules.record_dag_failure(
                s, now, self.settings, dag_id=dag_id, run_id=run_id, reason=reason,
                causing_task=causing_task))
        except Exception as e:
            decision = self._stateless(dag_id, rules.DAG_KEY, "dag_failure", e)
            decision.failed_tasks = [causing_task] if causing_task else []
            return decision

    def commit(self, decision: Decision, *, ok: bool, thread_ts: str | None = None,
               channel: str | None = None) -> list[dict[str, Any]]:
        """Remember how a decided alert went; returns the replies that waited for its
        thread (send them there now)."""
        if decision.stateless or not decision.send:
            return []
        try:
            return self._apply(decision.dag_id, lambda s, now: rules.commit(
                s, decision, now, ok=ok, thread_ts=thread_ts, channel=channel))
        except Exception as e:
            log.warning("Could not record the alert's outcome (%s state): %s", self.store.name, e)
            return []

    def resolve(self, *, dag_id: str, task_id: str | None = None) -> list[Resolution]:
        """Close incidents on success: the task's, or for a DAG run all of the DAG's.

        Returns one summary to post per thread whose members have all recovered.
        """
        try:
            return self._apply(dag_id, lambda s, now: rules.resolve(s, now, dag_id=dag_id, task_id=task_id))
        except Exception as e:
            log.warning("Cannot tell whether %s.%s had failed before; no 'resolved' message: %s",
                        dag_id, task_id, e)
            return []

    def settle(self, resolution: Resolution, *, ok: bool) -> None:
        """After a summary was sent (or not): close its members, or keep them for the next try."""
        if not ok:
            return
        try:
            self._apply(resolution.dag_id, lambda s, now: rules.settle(s, resolution, now, ok=ok))
        except Exception as e:
            log.warning("Could not close the incidents after the 'resolved' message: %s", e)

    def once(self, name: str, period: float) -> bool:
        """``True`` at most once per ``period`` seconds per deployment (``True`` when the
        state is unavailable: a notice said twice beats one never said)."""
        try:
            return self._apply(DEPLOYMENT, lambda s, now: rules.once(s, now, name, period))
        except Exception as e:
            log.warning("Alert state unavailable for a notice: %s", e)
            return True

    def close(self) -> None:
        """Release what the stores hold (a database connection)."""
        for store in (self.store, self.fallback):
            close = getattr(store, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as e:  # closing must not break an alert
                    log.debug("closing the alert state: %s", e)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every DAG's state (for tests and debugging)."""
        return self.store.snapshot()
