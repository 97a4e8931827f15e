"""What a store of alert state is: one DAG's state, loaded and locked, saved on success.

Pure: no Airflow. Two stores implement it: :mod:`safeload.alerts.store_postgres` (the
state every worker shares) and :mod:`safeload.alerts.store_file` (one machine's file,
for a deployment without a database). The rules (:mod:`safeload.alerts.rules`) never
see which one is in use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol


class StateUnavailable(Exception):
    """The state could not be locked, read or written; the alert goes out without it."""


class StateStore(Protocol):
    """Where the alert state lives.

    ``dag(dag_id)`` is a context manager: it takes a lock that every process using the
    same store respects, yields the DAG's state as a plain dict (see
    :func:`safeload.alerts.rules.empty_dag_state`), and writes back what the body changed
    when the body ends without an exception. Failing to lock, read or write raises
    :class:`StateUnavailable`.
    """

    #: ``file`` or ``postgres``
    name: str
    #: where the state is, for log lines (never a password)
    where: str

    def dag(self, dag_id: str) -> AbstractContextManager[dict[str, Any]]: ...

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every DAG's state (for tests and debugging)."""
        ...

    def close(self) -> None:
        """Release what the store holds (a connection); it may be used again after."""
        ...


def normalised(state: Any) -> dict[str, Any]:
    """A DAG's state with every section present (records of older versions lack some)."""
    doc = state if isinstance(state, dict) else {}
    for section in ("keys", "runs", "threads", "notices"):
        if not isinstance(doc.get(section), dict):
            doc[section] = {}
    return doc


def is_open(state: dict[str, Any]) -> bool:
    """Whether any incident of this DAG is still open (its state is worth keeping)."""
    return any(isinstance(r, dict) and r.get("incident_count") for r in state.get("keys", {}).values())


def last_update(state: dict[str, Any]) -> float:
    return max((r.get("updated", 0) for section in ("keys", "runs", "threads")
                for r in state.get(section, {}).values() if isinstance(r, dict)), default=0.0)


def iter_sections(state: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """``(section, name, record)`` of every record of one DAG's state."""
    for section in ("keys", "runs", "threads", "notices"):
        for name, record in state.get(section, {}).items():
            yield section, name, record
