"""SourceReadySensor: wait until the day's source exists and is complete."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, conf

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath


class SourceReadySensor(BaseSensorOperator):
    """Wait for a source: a complete file (local or in object storage), or a SQL source
    with data past the interval end.

    A file is complete when its marker exists (``marker="{path}.done"``), or, without a
    marker, when it has not changed for ``settle_seconds``. An object in storage is asked
    of the store the same way (its size, its marker object, its last-modified time).
    Deferrable: while waiting, the triggerer polls and no worker slot is held.

    .. code-block:: python

        wait = SourceReadySensor(
            task_id="wait_for_file",
            path="/data/orders/{{ ds }}.csv",
            marker="{path}.done",
            timeout=6 * 3600,
        )
        SourceReadySensor(task_id="wait_for_object", path="s3://aws_lake@lake/orders/{{ ds }}.csv",
                          marker="{path}.done", deferrable=True)

    :param path: the file to wait for (templated): a local path, an object storage URL
        (``s3://aws_lake@lake/key``: the Airflow connection id in the user part) or an
        ``ObjectStoragePath``
    :param marker: marker file pattern; ``{path}`` and ``{dir}`` are substituted (templated)
    :param min_bytes: smaller files are not ready (an empty delivery is not a delivery)
    :param settle_seconds: without a marker, how long the file must be unchanged
    :param sql_conn_id: for a SQL source: the Airflow connection to query
    :param sql: for a SQL source: a query returning one truthy value when ready; it may
        use ``%(interval_start)s`` and ``%(interval_end)s`` (templated)
    :param deferrable: defer to the triggerer (default from ``[operators] default_deferrable``)
    """

    template_fields: Sequence[str] = ("path", "marker", "sql")
    ui_color = "#fdf2e6"

    def __init__(
        self,
        *,
        path: str | ObjectStoragePath | None = None,
        marker: str | None = None,
        min_bytes: int = 1,
        settle_seconds: float = 30.0,
        sql_conn_id: str | None = None,
        sql: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (path is None) == (sql is None):
            raise ValueError(f"{kwargs.get('task_id')}: give exactly one of path= or sql=")
        self.path = path
        self.marker = marker
        self.min_bytes = min_bytes
        self.settle_seconds = settle_seconds
        self.sql_conn_id = sql_conn_id
        self.sql = sql
        self.deferrable = deferrable

    def poke(self, context: Context) -> bool:
        if self.path is not None:
            from safeload.triggers.source import source_readiness

            r = source_readiness(str(self.path), self.marker, self.min_bytes, self.settle_seconds)
        else:
            import psycopg

            from safeload.loads.readiness import sql_ready

            from safeload.hooks import warehouse_conninfo

            params = {"interval_start": context.get("data_interval_start"), "interval_end": context.get("data_interval_end")}
            with psycopg.connect(warehouse_conninfo(self.sql_conn_id or "warehouse")) as conn:
                r = sql_ready(conn, self.sql, params)
        self.log.info("%s", r.reason)
        return r.ready

    def execute(self, context: Context) -> Any:
        if not self.deferrable or self.path is None:
            return super().execute(context)
        if self.poke(context):
            return None
        from safeload.triggers.source import SourceReadyTrigger

        self.defer(
            trigger=SourceReadyTrigger(str(self.path), self.marker, self.min_bytes, self.settle_seconds,
                                       float(self.poke_interval if not isinstance(self.poke_interval, dt.timedelta)
                                             else self.poke_interval.total_seconds())),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        if not event or event.get("status") != "ready":
            from airflow.sdk.exceptions import AirflowException

            raise AirflowException(f"{self.task_id}: source {self.path} did not become ready: {event}")
        self.log.info("%s", event.get("reason"))
