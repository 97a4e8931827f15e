"""``safeload.load_history``: one row per stage refused or partition published, with its
counts, checksum, source and the Airflow run that did it (what the UI and the volume
checks read)."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from safeload.loads import sql as q
from safeload.loads.spec import LoadSpec


def record(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, status: str, *, source: str | None = None,
           rows_loaded: int | None = None, rows_quarantined: int | None = None, rows_source: int | None = None,
           checksum: str | None = None, schema_changes: str | None = None, message: str | None = None) -> int:
    """Insert the history row of ``status`` (``published`` or ``refused``); returns its id."""
    a: Any = load.audit
    return conn.execute(
        """insert into safeload.load_history (target, partition_value, status, rows_loaded, rows_quarantined,
               rows_source, checksum, source, dag_id, run_id, task_id, try_number, started_at, published_at,
               duration_s, schema_changes, message)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s),
                   case when %s = 'published' then now() end, %s, %s, %s)
           returning id""",
        (info.name, load.partition_value, status, rows_loaded, rows_quarantined, rows_source, checksum, source,
         a.get("dag_id"), a.get("run_id"), a.get("task_id"), a.get("try_number"), load.started, status,
         round(time.time() - load.started, 3), schema_changes, message),
    ).fetchone()[0]
