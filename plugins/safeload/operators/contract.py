"""SchemaContractCheckOperator: hold the source against its contract before a row moves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from safeload.lineage.operators import ContractCheckLineage, remember
from safeload.operators import task_audit
from safeload.ui.links import SafeloadReportLink

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath


class SchemaContractCheckOperator(ContractCheckLineage, BaseOperator):
    """Check a source against a data contract: its shape, and its values against the
    contract's rules, in one pass; then apply the policies.

    Every difference is classified (additive, compatible, breaking) and reported; the
    policy decides: breaking drift always fails the task (``AirflowFailException``: a
    retry cannot fix the data), additive drift fails under ``fail``, warns under
    ``warn`` and is added to the target by the load under ``evolve``. A broken value
    rule (a duplicate key, a value out of bounds or not allowed, too many nulls...)
    fails the task under ``rule_policy="fail"`` and is logged under ``"warn"``; a rule of
    severity ``warning`` in the contract only ever warns. Every rule, checked or not, is
    in the returned report with its path in the contract.

    .. code-block:: python

        check = SchemaContractCheckOperator(
            task_id="check_contract",
            contract="include/contracts/orders.yaml",
            source="/data/orders/{{ ds }}.csv",
        )

    :param contract: path of the contract YAML (templated)
    :param source: a CSV(.gz), Parquet or JSON lines file (templated): a local path, an object
        storage URL (``s3://aws_lake@lake/orders/{{ ds }}.csv``: the Airflow connection in the
        user part) or an ``ObjectStoragePath``; an object is streamed, never copied whole
    :param source_format: ``csv``, ``parquet`` or ``jsonl``; guessed from the name if None
    :param source_conn_id: Airflow connection of a PostgreSQL source (with ``source_table``
        or ``source_query``)
    :param source_table: ``schema.table`` to check (templated)
    :param source_query: a query whose result is checked (templated)
    :param policy: ``fail``, ``warn`` or ``evolve``; overrides the contract's (templated)
    :param rule_policy: ``fail`` (default) or ``warn``: what a broken value rule does (templated)
    :param history_conn_id: warehouse connection whose ``safeload.contract_checks`` keeps
        the report (the drift events of the safeload page, docs/ui.md); None keeps nothing.
        Only contracts that name ``target.table`` are kept.
    :param partition_value: the partition of the contract's ``target.table`` this check
        speaks for (templated, e.g. ``"{{ ds }}"``): a failed check also writes that day to
        ``safeload.load_history`` as ``refused``, so the page lists the day it stopped with
        the others. None (default): the check is not one partition's (a window of rows).

    Returns (XCom) the report: ``decision``, ``passed``, ``changes`` (broken rules among
    them, with their lines), ``rules`` (every rule and its status), ``rules_count``,
    ``add_columns`` and, for an object in storage, ``source_version`` (its ETag or
    generation: give it to the load's ``source_version`` to load exactly what was checked).
    """

    template_fields: Sequence[str] = ("contract", "source", "source_table", "source_query", "policy", "rule_policy",
                                      "partition_value")
    ui_color = "#e8f4fd"
    operator_extra_links = (SafeloadReportLink(),)

    def __init__(
        self,
        *,
        contract: str,
        source: str | ObjectStoragePath | None = None,
        source_format: str | None = None,
        source_conn_id: str | None = None,
        source_table: str | None = None,
        source_query: str | None = None,
        policy: str | None = None,
        rule_policy: str = "fail",
        history_conn_id: str | None = "warehouse",
        partition_value: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.contract = contract
        self.source = source
        self.source_format = source_format
        self.source_conn_id = source_conn_id
        self.source_table = source_table
        self.source_query = source_query
        self.policy = policy
        self.rule_policy = rule_policy
        self.history_conn_id = history_conn_id
        self.partition_value = partition_value

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from safeload.contracts.check import check_source, columns_to_add
        from safeload.contracts.files import load_contract
        from safeload.errors import SafeloadError
        from safeload.hooks import stored_source
        from safeload.storage import StoredFile

        if self.rule_policy not in ("fail", "warn"):
            raise AirflowFailException(f"{self.task_id}: rule_policy {self.rule_policy!r} is not fail or warn")
        contract = None
        try:
            contract = load_contract(self.contract)
            source = None if self.source is None else stored_source(self.source)
            conn = None
            if self.source_conn_id:
                import psycopg

                from safeload.hooks import warehouse_conninfo

                conn = psycopg.connect(warehouse_conninfo(self.source_conn_id), autocommit=True)
            try:
                report = check_source(contract, source, fmt=self.source_format, policy=self.policy or None,
                                      conn=conn, table=self.source_table, query=self.source_query,
                                      rule_policy=self.rule_policy)
            finally:
                if conn is not None:
                    conn.close()
        except SafeloadError as e:
            if e.retryable:  # an object that changed or could not be reached while it was read
                from airflow.sdk.exceptions import AirflowException

                raise AirflowException(str(e)) from None
            if contract is not None:  # the source broke the contract's ground rules (no rows, unreadable)
                self._record_refused(context, contract, str(e), None)
            raise AirflowFailException(str(e)) from None
        summary = report.summary()
        result = report.to_dict()
        result["add_columns"] = [list(c) for c in columns_to_add(report)]
        if isinstance(source, StoredFile):
            result["source_version"] = source.identity().version
        remember(self, report=result)
        self._keep(context, contract, result)
        if not report.passed:
            # the report still reaches XCom, so the summary and alerts can show it
            context["ti"].xcom_push(key="return_value", value=result)
            self._record_refused(context, contract, summary, source)
            raise AirflowFailException(summary)
        (self.log.warning if report.changes else self.log.info)("%s", summary)
        return result

    def _keep(self, context: Context, contract: Any, result: dict[str, Any]) -> None:
        """Keep the report in ``safeload.contract_checks``. Evidence, not a gate: if the
        warehouse cannot take it, the check's own outcome stands and the log says why."""
        if not self.history_conn_id or not getattr(contract, "table", None):
            return
        from safeload.contracts.history import record_contract_check
        from safeload.hooks import warehouse_conninfo

        try:
            record_contract_check(warehouse_conninfo(self.history_conn_id), result, table=contract.table,
                                  audit=task_audit(context["ti"]))
        except Exception as e:  # noqa: BLE001 - see the docstring
            self.log.warning("contract check report not kept in safeload.contract_checks of connection %r (%s); "
                             "set history_conn_id=None to stop keeping it", self.history_conn_id, e)

    def _record_refused(self, context: Context, contract: Any, summary: str, source: Any) -> None:
        """The partition this check stopped, as a ``refused`` day in ``safeload.load_history``
        (best effort: :func:`~safeload.loads.outcomes.record_unpublished` never raises)."""
        if not self.history_conn_id or self.partition_value in (None, "") or not getattr(contract, "table", None):
            return
        from safeload.contracts.history import target_name
        from safeload.hooks import warehouse_conninfo
        from safeload.loads.outcomes import record_unpublished

        ti = context["ti"]
        try:
            conninfo, target = warehouse_conninfo(self.history_conn_id), target_name(contract.table)
        except Exception as e:  # noqa: BLE001 - the check's own outcome stands
            self.log.warning("refused day not written to safeload.load_history (%s)", e)
            return
        record_unpublished(conninfo, target=target, partition_value=str(self.partition_value),
                           status="refused", message=f"{ti.task_id}: {summary}", audit=task_audit(ti),
                           source=None if source is None else str(source))
