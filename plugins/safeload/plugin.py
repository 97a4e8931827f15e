"""The safeload Airflow plugin, registered through the ``airflow.plugins`` entry point.

Operators need no registration in Airflow 3 (DAGs import them); the plugin carries what
Airflow must know of: the opt-in failure listener (set SAFELOAD_ALERT_LISTENER_TAGS) and
the history page inside Airflow's UI (``/safeload``, docs/ui.md).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


def _listeners() -> list:
    try:
        from safeload.alerts.listener import enabled_listeners
    except ImportError:  # pragma: no cover - alerts extra not installed
        return []
    return enabled_listeners()


class _FastAPIApps:
    """``fastapi_apps``, built on first read. Only the api-server reads it; every other
    Airflow process that loads plugins (task runner, scheduler, DAG processor) would
    otherwise pay ~0.3 s importing FastAPI for a page it never serves."""

    def __get__(self, obj: object, owner: type | None = None) -> list[dict]:
        from safeload.ui.app import app

        return [{"app": app, "url_prefix": "/safeload", "name": "safeload"}]


class SafeloadPlugin(AirflowPlugin):
    name = "safeload"
    listeners = _listeners()
    # The history page (docs/ui.md): a FastAPI app under /safeload, shown inside Airflow's
    # UI by the external views: a "safeload" entry in the menu, and a tab on every task
    # instance with that task's report. Relative hrefs resolve against [api] base_url.
    fastapi_apps = _FastAPIApps()
    external_views = [
        {"name": "safeload", "href": "safeload/", "url_route": "safeload", "destination": "nav"},
        {"name": "safeload report", "url_route": "safeload-task", "destination": "task_instance",
         "href": "safeload/task?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}"},
    ]
