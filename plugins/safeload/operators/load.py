"""Operators that load one partition idempotently: stage, publish, or both in one task.

Use :class:`StagePartitionOperator` >> a quality gate >> :class:`PublishPartitionOperator`
to see write-audit-publish as three tasks (the reference DAG does), or
:class:`PartitionOverwriteOperator` to drop one task into an existing DAG.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from safeload.lineage.operators import PartitionLoadLineage, facts, remember
from safeload.operators import task_audit
from safeload.ui.links import SafeloadReportLink

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from safeload.loads.loader import PartitionLoader
    from safeload.loads.sources.base import Source


class _PartitionOperator(PartitionLoadLineage, BaseOperator):
    """Arguments shared by the partition operators (see :class:`PartitionOverwriteOperator`)."""

    template_fields: Sequence[str] = ("table", "partition_value", "source", "source_version", "source_sql",
                                      "contract", "schema_policy")
    template_ext: Sequence[str] = (".sql",)  # source_sql="sql/orders.sql" renders the file
    ui_color = "#e6f5e6"
    operator_extra_links = (SafeloadReportLink(),)

    def __init__(
        self,
        *,
        table: str | None = None,
        partition_column: str | None = None,
        partition_value: str = "{{ ds }}",
        source: str | ObjectStoragePath | None = None,
        source_version: str | None = None,
        source_format: str | None = None,
        source_conn_id: str | None = None,
        source_sql: str | None = None,
        contract: str | None = None,
        postgres_conn_id: str = "warehouse",
        max_bad_rows: int | None = 0,
        max_bad_fraction: float | None = None,
        allow_empty: bool = False,
        lock_timeout: str = "30s",
        publish_strategy: str = "auto",
        schema_policy: str | None = None,
        parallel: int | str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.publish_strategy = publish_strategy
        self.parallel = parallel
        self.schema_policy = schema_policy
        self.table = table
        self.partition_column = partition_column
        self.partition_value = partition_value
        self.source = source
        self.source_version = source_version
        self.source_format = source_format
        self.source_conn_id = source_conn_id
        self.source_sql = source_sql
        self.contract = contract
        self.postgres_conn_id = postgres_conn_id
        self.max_bad_rows = max_bad_rows
        self.max_bad_fraction = max_bad_fraction
        self.allow_empty = allow_empty
        self.lock_timeout = lock_timeout

    def _loader(self, context: Context) -> PartitionLoader:
        from safeload.contracts.files import load_contract
        from safeload.hooks import warehouse_connect
        from safeload.loads.loader import PartitionLoader

        table, column = self.table, self.partition_column
        self._contract = load_contract(self.contract) if self.contract else None
        if self._contract is not None:
            table = table or self._contract.table
            column = column or self._contract.partition_column
        if not table or not column:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{self.task_id}: give table and partition_column, or a contract that declares "
                                       "target.table and target.partition_column")
        remember(self, target=table, partition_column=column)
        ti = context["ti"]
        return PartitionLoader(
            warehouse_connect(self.postgres_conn_id), table=table, partition_column=column,
            partition_value=self.partition_value, run_key=f"{ti.dag_id}/{ti.run_id}/{table}",
            lock_timeout=self.lock_timeout, max_bad_rows=self.max_bad_rows,
            max_bad_fraction=self.max_bad_fraction, allow_empty=self.allow_empty,
            publish_strategy=self.publish_strategy, parallel=self.parallel,
            audit=task_audit(ti),
        )

    def _evolve(self, loader: PartitionLoader, source: Source | None = None) -> None:
        """Under ``schema_policy: evolve`` (the contract's, or this task's ``schema_policy``),
        new source columns are added to the target on publish."""
        if self._contract is None:
            return
        # "" counts as unset: a template like "{{ params.schema_policy or '' }}" renders it
        policy = self.schema_policy or self._contract.schema_policy
        if policy not in ("fail", "warn", "evolve"):
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{self.task_id}: schema_policy {policy!r} is not one of fail, warn, evolve")
        if policy != "evolve":
            return
        from safeload.contracts.check import check_source, columns_to_add

        if self.source_sql:
            # the stage's own source: the same query text (trailing ';' and comments dropped),
            # one statement, read in a read-only transaction
            with self._source() as src:
                src.columns()
                report = check_source(self._contract, conn=src.connection, query=src.query, policy=policy)
        elif self.source:  # the stage's own file: an object is held to the version checked here
            file = source or self._source()
            report = check_source(self._contract, file.path, fmt=file.fmt, policy=policy)
        else:
            return
        loader.add_columns = columns_to_add(report)

    def _source(self):
        """A :class:`~safeload.loads.sources.files.FileSource` (a local file or an object in
        storage), or a :class:`~safeload.loads.loader.QuerySource` for ``source_sql``."""
        from airflow.sdk.exceptions import AirflowFailException

        if self.source_sql and self.source:
            raise AirflowFailException(f"{self.task_id}: give source (a file) or source_sql (a query), not both")
        if self.source_sql:
            if not self.source_conn_id:
                raise AirflowFailException(f"{self.task_id}: source_sql needs source_conn_id, the connection of "
                                           "the database the query runs on")
            from safeload.hooks import warehouse_conninfo
            from safeload.loads.loader import QuerySource

            return QuerySource.from_conninfo(warehouse_conninfo(self.source_conn_id), self.source_sql)
        if not self.source:
            raise AirflowFailException(f"{self.task_id}: no source given: set source (a file) or "
                                       "source_conn_id + source_sql (a query)")
        from safeload.hooks import stored_source
        from safeload.loads.sources.files import FileSource

        return FileSource(stored_source(self.source, version=self.source_version or None), self.source_format)

    def _stage(self, context: Context, loader: PartitionLoader):
        from safeload.metadata import STAGING_SCHEMA

        source = self._source()
        self._evolve(loader, source)
        staged = loader.stage(source, self.source_format)
        remember(self, staged={**staged.to_dict(), "staging_fqn": f"{STAGING_SCHEMA}.{staged.staging_table}"})
        return staged

    def _publish(self, context: Context, loader: PartitionLoader, staged=None, *, audit=None, source=None,
                 in_transaction: bool = True) -> dict[str, Any]:
        """Publish ``staged``; or, without it, load ``source`` as one unit (``loader.run``)."""
        if staged is not None:
            result = loader.publish(staged).to_dict()
        else:
            result = loader.run(source, self.source_format, audit_hook=audit,
                                audit_in_transaction=in_transaction).to_dict()
        remember(self, published=result)
        meta = {k: result[k] for k in ("target", "partition_value", "rows", "rows_quarantined", "checksum")}
        for outlet in self.outlets or []:
            try:
                context["outlet_events"][outlet].extra.update(meta)
            except (KeyError, TypeError, AttributeError):
                self.log.debug("outlet %r takes no event metadata", outlet)
        return result


def _record_unpublished(op: _PartitionOperator, context: Context, e: Exception, *, target: str | None,
                        partition_value: str | None, source: str | None = None) -> None:
    """Write the day to the load history as refused or failed, so the page shows it (best effort;
    the loader's own refusal rows and a gate's are not written twice)."""
    from airflow.sdk.exceptions import AirflowFailException

    from safeload.errors import SafeloadError
    from safeload.hooks import warehouse_conninfo
    from safeload.identifiers import validate_table_name
    from safeload.loads.outcomes import record_unpublished

    if not target or partition_value is None:
        return
    try:
        schema, table = validate_table_name(target)
        conninfo = warehouse_conninfo(op.postgres_conn_id)
    except Exception:  # noqa: BLE001 - no history row is better than a masked error
        return
    bad_data = isinstance(e, AirflowFailException) or (isinstance(e, SafeloadError) and not e.retryable)
    ti = context["ti"]
    record_unpublished(conninfo, target=f"{schema}.{table}", partition_value=str(partition_value),
                       status="refused" if bad_data else "failed", message=f"{ti.task_id}: {type(e).__name__}: {e}",
                       audit=task_audit(ti), source=None if source is None else str(source))


def _raise_airflow(e: Exception) -> None:
    """Map safeload's errors to Airflow's: bad data is not retried, lock timeouts are."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from safeload.errors import SafeloadError

    if isinstance(e, SafeloadError):
        if e.retryable:
            raise AirflowException(str(e)) from None
        raise AirflowFailException(str(e)) from None
    raise e


class StagePartitionOperator(_PartitionOperator):
    """Stream the source into a staging table (the *write* of write-audit-publish).

    Returns (XCom) the staging result: ``staging_table`` (schema-qualified in
    ``staging_fqn``), row counts, quarantine count and checksum. Parameters as for
    :class:`PartitionOverwriteOperator`.
    """

    _load_role = "stage"

    def execute(self, context: Context) -> dict[str, Any]:
        from safeload.metadata import STAGING_SCHEMA

        loader = self._loader(context)
        try:
            staged = self._stage(context, loader)
        except Exception as e:  # noqa: BLE001 - mapped, not swallowed
            _record_unpublished(self, context, e, target=loader.table, partition_value=loader.partition_value,
                                source=self.source)
            _raise_airflow(e)
        out = staged.to_dict()
        out["staging_fqn"] = f"{STAGING_SCHEMA}.{staged.staging_table}"
        self.log.info("staged %s of %s source rows into %s (%s quarantined)", staged.rows_loaded,
                      staged.rows_source, out["staging_fqn"], staged.rows_quarantined)
        return out


class PublishPartitionOperator(_PartitionOperator):
    """Atomically replace the partition with what the stage task loaded (the *publish*).

    :param stage_task_id: the :class:`StagePartitionOperator` whose XCom names the staging table
    """

    _load_role = "publish"

    def __init__(self, *, stage_task_id: str = "stage", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stage_task_id = stage_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        from safeload.loads.loader import StageResult

        pulled = context["ti"].xcom_pull(task_ids=self.stage_task_id)
        if not pulled:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{self.task_id}: no staging result from task {self.stage_task_id!r}")
        remember(self, staged=pulled)
        pulled = {k: v for k, v in pulled.items() if k != "staging_fqn"}
        staged = StageResult.from_dict(pulled)
        loader = self._loader(context)
        try:
            return self._publish(context, loader, staged)
        except Exception as e:  # noqa: BLE001
            _record_unpublished(self, context, e, target=staged.target, partition_value=staged.partition_value,
                                source=staged.source)
            _raise_airflow(e)


class PartitionOverwriteOperator(_PartitionOperator):
    """Load one partition idempotently: stage with COPY, audit, publish atomically.

    Re-runs, concurrent runs and crashes never duplicate, lose or half-write the
    partition: see docs/decisions/002-write-audit-publish.md.

    .. code-block:: python

        load = PartitionOverwriteOperator(
            task_id="load_orders",
            table="public.orders",
            partition_column="order_date",
            partition_value="{{ ds }}",
            source="/data/orders/{{ ds }}.csv",
            quality_suite="include/expectations/orders.json",
            max_bad_fraction=0.001,
        )

    :param table: target ``schema.table`` (templated); defaults to the contract's
    :param partition_column: defaults to the contract's ``target.partition_column``
    :param partition_value: the partition to replace (templated, default ``{{ ds }}``)
    :param source: CSV(.gz), Parquet or JSON lines file (templated): a local path, an object
        storage URL (``s3://aws_lake@lake/orders/{{ ds }}.csv``: the Airflow connection in the
        user part) or an ``ObjectStoragePath``; an object is streamed, never copied whole
    :param source_version: the object's version (ETag, generation) the load must read, e.g.
        the contract check's ``{{ ti.xcom_pull(task_ids='check')['source_version'] }}``
        (templated); another version is refused, retryably
    :param source_format: ``csv``, ``parquet`` or ``jsonl``; guessed from the name if None
    :param source_conn_id: Airflow connection of a PostgreSQL database to run ``source_sql`` on
        (another database or server than the warehouse, or the same)
    :param source_sql: a query whose result is the source, instead of ``source`` (templated;
        a value ending in ``.sql`` is a template file). Streamed with ``COPY (query) TO
        STDOUT`` into staging; result columns match the target's by name. Make its result
        deterministic for the partition (bounded by the data interval), so re-runs agree.
    :param contract: contract YAML (templated); its ``schema_policy: evolve`` adds new columns
    :param schema_policy: ``fail``, ``warn`` or ``evolve``, overriding the contract's for
        this task (templated; empty means the contract's). Under ``evolve``, additive
        columns are added to the target (nullable) inside the publish transaction. Give
        the contract check task the same ``policy``.
    :param postgres_conn_id: Airflow connection of the warehouse
    :param max_bad_rows: quarantined rows above this refuse the load (default 0)
    :param max_bad_fraction: quarantined fraction above this refuses the load
    :param allow_empty: accept an empty source (default: refuse, nothing is deleted)
    :param lock_timeout: bound on lock waits; past it the task fails and is retried
    :param publish_strategy: ``auto`` (default: ``swap`` where the target is natively
        partitioned and a swap is safe, ``direct`` into a plain table, else
        ``delete_insert``), ``swap`` (the staging table becomes the partition: rows written
        once; readers wait at most one short lock attempt), ``direct`` (no staging: DELETE
        and COPY into the target in one transaction, the gate inside it; rows written
        once) or ``delete_insert`` (rows written twice; never blocks a reader). See
        docs/decisions/002-write-audit-publish.md and 040-direct-publish.md.
    :param parallel: COPY a CSV source in this many streams at once (cut at record
        boundaries), published in one transaction: into staging, or into a plain table by
        the publishing transaction and helpers beside it (``direct``). ``auto`` (default):
        2 for a CSV file of 2 MiB or more, else 1. See docs/decisions/042, 046 and 047
    :param quality_suite: a GX suite JSON to run on staging before publishing (optional)
    :param quality_engine: ``sql`` (default) or ``gx``
    """

    template_fields: Sequence[str] = (*_PartitionOperator.template_fields, "quality_suite")
    _load_role = "overwrite"

    def __init__(self, *, quality_suite: str | None = None, quality_engine: str = "sql", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.quality_suite = quality_suite
        self.quality_engine = quality_engine

    def execute(self, context: Context) -> dict[str, Any]:
        loader = self._loader(context)
        try:
            source = self._source()
            self._evolve(loader)
            # the gate runs inside the publishing transaction of a direct load, on its
            # connection: the sql engine can, the gx engine (its own connections) cannot
            gated = bool(self.quality_suite) or self._contract is not None
            result = self._publish(context, loader, audit=functools.partial(self._audit, context, gated),
                                   source=source, in_transaction=not gated or self._gate_in_transaction())
        except Exception as e:  # noqa: BLE001
            _record_unpublished(self, context, e, target=loader.table, partition_value=loader.partition_value,
                                source=self.source)
            _raise_airflow(e)
        staged = facts(self).get("staged")
        result["stage"] = {k: v for k, v in staged.items() if k != "staging_fqn"} if staged else None
        return result

    def _audit(self, context: Context, gated: bool, audit: Any) -> None:
        """The audit of :meth:`PartitionLoader.run`: remember the staging (lineage), run the gate."""
        from safeload.metadata import STAGING_SCHEMA

        if audit.staged is not None:
            remember(self, staged={**audit.staged.to_dict(),
                                   "staging_fqn": f"{STAGING_SCHEMA}.{audit.staged.staging_table}"})
        if not gated:
            return
        from safeload.operators.quality import run_gate_for

        gate = run_gate_for(self, context, table=audit.table, where=audit.where, conn=audit.conn,
                            target=audit.target, partition_value=audit.partition_value, rows=audit.rows)
        context["ti"].xcom_push(key="quality", value=gate)

    def _gate_in_transaction(self) -> bool:
        from safeload.quality.gate import in_transaction_blocker
        from safeload.quality.suite import build_suite

        why = in_transaction_blocker(build_suite(suite_path=self.quality_suite, contract_path=self.contract),
                                     self.quality_engine)
        if why:
            self.log.info("%s: the gate checks a staging table (%s)", self.task_id, why)
        return why is None
