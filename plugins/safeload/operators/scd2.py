"""SCD2RebuildOperator: rebuild a Type 2 dimension from its daily snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from safeload.lineage.operators import SCD2Lineage, remember

if TYPE_CHECKING:
    from airflow.sdk import Context


class SCD2RebuildOperator(SCD2Lineage, BaseOperator):
    """Recompute an SCD Type 2 dimension from its snapshot table, in one transaction.

    Idempotent and order-independent by construction: the history is a function of the
    snapshots (see :mod:`safeload.loads.scd2`), so re-runs, out-of-order runs and
    backfills converge on the same dimension.

    .. code-block:: python

        SCD2RebuildOperator(
            task_id="rebuild_dim_customers",
            snapshots="public.customers_snapshot",
            dimension="public.dim_customers",
            key="customer_id",
            tracked=["name", "email", "country", "segment"],
        )

    :param snapshots: the snapshot table, one partition per snapshot date
    :param dimension: the dimension (columns: key, valid_from, valid_to, is_current,
        row_hash and the tracked columns)
    :param key: the business key column
    :param tracked: columns whose change starts a new version
    :param snapshot_column: the snapshot date column
    :param postgres_conn_id: the warehouse connection
    """

    template_fields: Sequence[str] = ("snapshots", "dimension")
    ui_color = "#e6f5e6"

    def __init__(self, *, snapshots: str, dimension: str, key: str, tracked: list[str],
                 snapshot_column: str = "snapshot_date", postgres_conn_id: str = "warehouse",
                 lock_timeout: str = "30s", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshots = snapshots
        self.dimension = dimension
        self.key = key
        self.tracked = tracked
        self.snapshot_column = snapshot_column
        self.postgres_conn_id = postgres_conn_id
        self.lock_timeout = lock_timeout

    def execute(self, context: Context) -> dict[str, int]:
        import psycopg

        from safeload.hooks import warehouse_conninfo
        from safeload.loads.scd2 import rebuild_scd2

        try:
            with psycopg.connect(warehouse_conninfo(self.postgres_conn_id), autocommit=True) as conn:
                result = rebuild_scd2(conn, self.snapshots, self.dimension, key=self.key, tracked=self.tracked,
                                      snapshot_column=self.snapshot_column, lock_timeout=self.lock_timeout)
        except psycopg.errors.LockNotAvailable as e:
            from airflow.sdk.exceptions import AirflowException

            raise AirflowException(f"{self.dimension}: lock not available within {self.lock_timeout} ({e}); "
                                   "retrying") from None
        remember(self, result=result)
        self.log.info("%s rebuilt: %s versions, %s current", self.dimension, result["versions"], result["current"])
        return result
