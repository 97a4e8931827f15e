"""QualityGateOperator: Great Expectations suites with per-check severity and history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from safeload.lineage.operators import QualityGateLineage, remember
from safeload.operators import task_audit
from safeload.ui.links import SafeloadReportLink

if TYPE_CHECKING:
    from airflow.sdk import Context


class QualityGateOperator(QualityGateLineage, BaseOperator):
    """Run an expectation suite on a table, a partition of it, or a staging table.

    Severity is Great Expectations' own field: ``critical`` failures fail the task with
    ``AirflowFailException`` *after every check has run*, with one report of each failed
    check's observed against expected values; ``warning`` and ``info`` failures are
    reported (XCom, Slack summary) and the run goes on. Every result is stored in
    ``safeload.quality_results``.

    .. code-block:: python

        gate = QualityGateOperator(
            task_id="audit_staging",
            stage_task_id="stage",                       # check what was just staged
            suite="include/expectations/orders.json",
            contract="include/contracts/orders.yaml",    # + expectations from its column rules
            volume_check={"last_n": 14, "k": 4, "severity": "warning"},
        )

    :param table: the table to check (templated); or use ``stage_task_id``
    :param stage_task_id: check the staging table that this stage task loaded
    :param suite: a GX suite JSON file (templated)
    :param contract: a contract YAML whose column rules become expectations (templated)
    :param where: a SQL filter selecting the partition to check (templated)
    :param engine: ``sql`` (one aggregate scan; unsupported types go to GX) or ``gx``
    :param volume_check: compare the row count with earlier loads of the target
        (median ± k·MAD of the last N); ``True`` for defaults, or a dict of
        ``last_n``, ``k``, ``severity``
    :param postgres_conn_id: the warehouse connection
    """

    template_fields: Sequence[str] = ("table", "suite", "contract", "where")
    ui_color = "#f5eefc"
    operator_extra_links = (SafeloadReportLink(),)

    def __init__(
        self,
        *,
        table: str | None = None,
        stage_task_id: str | None = None,
        suite: str | None = None,
        contract: str | None = None,
        where: str | None = None,
        engine: str = "sql",
        volume_check: bool | dict[str, Any] = False,
        postgres_conn_id: str = "warehouse",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not (table or stage_task_id):
            raise ValueError(f"{kwargs.get('task_id')}: give table= or stage_task_id=")
        if not (suite or contract):
            raise ValueError(f"{kwargs.get('task_id')}: give suite= and/or contract=")
        self.table = table
        self.stage_task_id = stage_task_id
        self.suite = suite
        self.contract = contract
        self.where = where
        self.engine = engine
        self.volume_check = volume_check
        self.postgres_conn_id = postgres_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        target = partition = rows = None
        table = self.table
        if self.stage_task_id:
            staged = context["ti"].xcom_pull(task_ids=self.stage_task_id) or {}
            if not staged:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(f"{self.task_id}: no staging result from task {self.stage_task_id!r}")
            remember(self, staged=staged)
            table = staged["staging_fqn"]
            target, partition, rows = staged["target"], staged["partition_value"], staged["rows_loaded"]
        return run_gate_for(self, context, table=table, target=target or table, partition_value=partition, rows=rows)


def run_gate_for(op: Any, context: Context, *, table: str, target: str, partition_value: str | None,
                 rows: int | None = None, where: str | None = None, conn: Any = None) -> dict[str, Any]:
    """Run the gate configured on ``op`` (suite, contract, engine, where, volume_check).

    :param where: the rows of ``table`` to check, when ``op`` has no ``where`` of its own
    :param conn: check on this connection, inside its open transaction (a direct load's
        rows: ``run_gate(conn=...)``)
    """
    from airflow.sdk.exceptions import AirflowFailException

    from safeload.errors import SafeloadError
    from safeload.hooks import warehouse_conninfo
    from safeload.quality.gate import run_gate, volume_check, write_history
    from safeload.quality.suite import build_suite

    ti = context["ti"]
    conninfo = warehouse_conninfo(getattr(op, "postgres_conn_id", "warehouse"))
    store = {"target": target, "partition_value": partition_value, "dag_id": ti.dag_id, "run_id": ti.run_id,
             "task_id": ti.task_id, "run_key": f"{ti.dag_id}/{ti.run_id}/{target}"}
    try:
        suite = build_suite(suite_path=getattr(op, "quality_suite", None) or getattr(op, "suite", None),
                            contract_path=getattr(op, "contract", None))
        result = run_gate(conninfo, table=table, suite=suite, where=getattr(op, "where", None) or where,
                          engine=getattr(op, "quality_engine", None) or getattr(op, "engine", "sql"), store=store,
                          conn=conn)
        vc = getattr(op, "volume_check", False)
        if vc:
            opts = vc if isinstance(vc, dict) else {}
            if rows is None:
                import psycopg
                from psycopg import sql

                with psycopg.connect(conninfo) as counting:
                    schema, _, name = table.rpartition(".")
                    rows = counting.execute(sql.SQL("select count(*) from {}").format(
                        sql.Identifier(schema or "public", name))).fetchone()[0]
            volume = volume_check(conninfo, target=target, rows=rows, **opts)
            result.add(volume)
            write_history(conninfo, [volume], store=store)
    except SafeloadError as e:
        _record_unpublished(conninfo, ti, store, "failed", f"{ti.task_id}: the gate could not run: {e}")
        raise AirflowFailException(str(e)) from None
    report = result.to_dict()
    remember(op, gate=report)
    op.log.info("%s", result.summary())
    if not result.success:
        ti.xcom_push(key="return_value", value=report)
        try:
            result.raise_for_critical()
        except SafeloadError as e:  # bad data: a retry will not help
            # the partition is not published: say so in the load history, or the page,
            # which lists days from it, would not show this day at all
            _record_unpublished(conninfo, ti, store, "refused", f"{ti.task_id}: {result.summary()}", rows=rows)
            raise AirflowFailException(str(e)) from None
    return report


def _record_unpublished(conninfo: str, ti: Any, store: dict[str, Any], status: str, message: str,
                        rows: int | None = None) -> None:
    """A gate that stops a load's partition writes its day to the load history (best effort)."""
    if store.get("partition_value") is None:
        return  # a gate on a whole table, not on a load's partition
    from safeload.loads.outcomes import record_unpublished

    audit = task_audit(ti)
    record_unpublished(conninfo, target=store["target"], partition_value=store["partition_value"], status=status,
                       message=message, audit=audit, rows_source=rows)
