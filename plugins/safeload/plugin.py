"""The safeload Airflow plugin, registered through the ``airflow.plugins`` entry point.

Operators need no registration in Airflow 3 (DAGs import them); the plugin carries what
Airflow must know of: the opt-in failure listener (set SAFELOAD_ALERT_LISTENER_TAGS).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


def _listeners() -> list:
    try:
        from safeload.alerts.listener import enabled_listeners
    except ImportError:  # pragma: no cover - alerts extra not installed
        return []
    return enabled_listeners()


class SafeloadPlugin(AirflowPlugin):
    name = "safeload"
    listeners = _listeners()
