"""safeload's Airflow operators; what they share of the task instance."""

from __future__ import annotations

from typing import Any


def task_audit(ti: Any) -> dict[str, Any]:
    """Which task try wrote a row (load history, contract checks, quality results): its
    ``dag_id``, ``run_id``, ``task_id`` and ``try_number``."""
    return {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "try_number": ti.try_number}
