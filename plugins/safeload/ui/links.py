"""The operator extra link from a task instance to its safeload report.

Imported by the operator modules, so it stays light: ``airflow.sdk`` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: Where the plugin mounts its FastAPI app (plugin.py); also in the links below.
URL_PREFIX = "/safeload"


def report_path(*, dag_id: str, run_id: str, task_id: str, try_number: int | None = None) -> str:
    """The report page of one task instance, relative to Airflow's base URL."""
    params = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id}
    if try_number:
        params["try_number"] = str(try_number)
    return f"{URL_PREFIX}/task?{urlencode(params)}"


class SafeloadReportLink(BaseOperatorLink):
    """"safeload report": what this task loaded, checked, quarantined, and the drift it saw.

    Airflow 3 computes the link in the worker when the task ends and keeps it in XCom; the
    base is ``[api] base_url`` (empty: a path on the same host as Airflow's UI).
    """

    name = "safeload report"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.configuration import conf

        base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
        return base + report_path(dag_id=ti_key.dag_id, run_id=ti_key.run_id, task_id=ti_key.task_id,
                                  try_number=getattr(ti_key, "try_number", None))
