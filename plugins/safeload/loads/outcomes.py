"""The load history row of a day that was not published: refused by a gate, or failed.

A publish writes its own ``published`` row, and a stage refused for its bad rows writes
its ``refused`` row, both inside the loader's transaction. Everything else that stops a
day (a critical quality check on staging, a lost connection, a refused publish) would
leave no trace in ``safeload.load_history``, and the page, which lists days from it,
would hide exactly the day that needs a look the morning after. The operators call
:func:`record_unpublished` for those.

Best effort, by design: this runs while a task is already failing, so it never raises
(a warning is logged instead) and never changes the task's outcome. One row per try: a
try that already wrote its row (the loader's own refusal) is left alone. No Airflow import.
"""

from __future__ import annotations

import logging
from typing import Any

from safeload.metadata import ensure_metadata

log = logging.getLogger(__name__)

STATUSES = ("refused", "failed")
MAX_MESSAGE = 4000
CONNECT_TIMEOUT_S = 10


def record_unpublished(conninfo: str, *, target: str, partition_value: str, status: str, message: str,
                       audit: dict[str, Any], source: str | None = None, rows_source: int | None = None,
                       rows_quarantined: int | None = None) -> int | None:
    """Write a ``refused`` or ``failed`` row for ``target``'s ``partition_value``.

    :param conninfo: libpq URI of the warehouse
    :param target: the target as the loader records it (``schema.table``)
    :param partition_value: the day (or other partition value) that was not published
    :param status: ``refused`` (the data broke a rule: a retry will not help) or ``failed``
    :param message: why, for people: the failed checks or the error
    :param audit: ``dag_id``, ``run_id``, ``task_id``, ``try_number`` of the task
    :param source: the source file or query label, where known
    :param rows_source: rows read from the source, where known
    :param rows_quarantined: rows set aside, where known
    :returns: the new row's id, or None when nothing was written
    """
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    import psycopg

    key = (target, partition_value, audit.get("dag_id"), audit.get("run_id"), audit.get("task_id"),
           audit.get("try_number"))
    try:
        with psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT_S, application_name="safeload") as conn:
            ensure_metadata(conn)
            written = conn.execute(
                """select 1 from safeload.load_history
                   where target = %s and partition_value = %s and dag_id is not distinct from %s
                     and run_id is not distinct from %s and task_id is not distinct from %s
                     and try_number is not distinct from %s limit 1""", key).fetchone()
            if written:
                return None
            return conn.execute(
                """insert into safeload.load_history (target, partition_value, status, rows_quarantined,
                       rows_source, source, dag_id, run_id, task_id, try_number, started_at, message)
                   values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now(), %s) returning id""",
                (target, partition_value, status, rows_quarantined, rows_source, source, *key[2:],
                 _shorten(message)),
            ).fetchone()[0]
    except Exception as e:  # noqa: BLE001 - never mask the task's own failure
        log.warning("Could not record %s as %s in safeload.load_history: %s", partition_value, status, e)
        return None


def _shorten(message: str) -> str:
    message = str(message).strip()
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"
