"""Operators for an incremental load driven by a watermark (see :mod:`safeload.loads.incremental`).

``WatermarkWindowOperator`` >> a contract check of the window's rows >>
``IncrementalPlanOperator`` >> ``ReloadPartitionsOperator``: the reference DAG
``dags/payments_incremental.py`` wires them, docs/decisions/012 says why. Plain
operators rather than TaskFlow functions: ``@task`` imports the standard provider's
PythonOperator at every parse (about 40 ms, more than the rest of the DAG file).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from safeload.lineage.operators import PlanLineage, ReloadLineage, remember
from safeload.operators import task_audit
from safeload.ui.links import SafeloadReportLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from safeload.loads.incremental import IncrementalSource


def _fail_on(e: Exception) -> None:
    """Bad data is not retried (AirflowFailException); lock timeouts and lost connections are."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from safeload.errors import SafeloadError

    if isinstance(e, SafeloadError):
        raise (AirflowException if e.retryable else AirflowFailException)(str(e)) from None
    raise e


def _utc_sessions(connect: Any) -> Any:
    """``connect`` whose sessions print and read timestamps in UTC (ISO dates), as the plan's
    fingerprints do (safeload.loads.incremental): a source ``timestamptz`` copied into a
    target ``timestamp`` (or the reverse) must convert exactly as the fingerprint's cast
    did, or the published day never equals the source's and every window republishes it."""

    from safeload.loads.incremental import utc_session

    def utc() -> Any:
        conn = connect()
        utc_session(conn)
        conn.commit()  # idle again: the loader and QuerySource set their own transaction modes
        return conn

    return utc


class _IncrementalOperator(BaseOperator):
    """The source query and its two columns, shared by the incremental operators.

    :param source_query: a ``SELECT`` returning the target's columns by name (templated)
    :param partition_column: the business-date column naming the target partition
    :param updated_column: the column that moves on every insert and update (the watermark)
    :param key_columns: the row's key: a changed row's old partition is found by it in the
        target (a corrected business date moves a row out of a day; that day is reloaded too)
    """

    template_fields: Sequence[str] = ("source_query",)
    ui_color = "#e6f5e6"

    def __init__(self, *, source_query: str, partition_column: str, updated_column: str,
                 key_columns: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source_query = source_query
        self.partition_column = partition_column
        self.updated_column = updated_column
        self.key_columns = tuple(key_columns)

    def _source(self) -> IncrementalSource:
        from safeload.loads.incremental import IncrementalSource

        return IncrementalSource(self.source_query, self.partition_column, self.updated_column, self.key_columns)


class WatermarkWindowOperator(_IncrementalOperator):
    """The ``[low, high)`` watermark window of this run, derived from its data interval.

    ``[data_interval_start - lookback, data_interval_end)``; after missed or failed runs
    the start reaches back to the last successful run's ``data_interval_end``. Nothing is
    stored: a re-run computes the same window. Returns (XCom) ``low``, ``high`` and
    ``query``, the SQL of the rows in the window (give it to a contract check).

    :param lookback_hours: hours re-read before the interval, for rows that became visible
        late (templated, e.g. ``"{{ params.lookback_hours }}"``)
    """

    template_fields: Sequence[str] = (*_IncrementalOperator.template_fields, "lookback_hours")

    def __init__(self, *, lookback_hours: int | str = 24, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lookback_hours = lookback_hours

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import timedelta

        import pendulum

        from safeload.loads.incremental import watermark_window

        # A lazy look-up in Airflow's run records: a proxy, of None before the first success.
        # Resolved here, so a failed look-up fails the task (retried) instead of quietly
        # narrowing the window to the interval and skipping the days of missed runs.
        last = context.get("prev_data_interval_end_success")
        last = getattr(last, "__wrapped__", last)
        last = pendulum.instance(last) if last is not None else None
        low, high = watermark_window(
            pendulum.instance(context["data_interval_start"]), pendulum.instance(context["data_interval_end"]),
            lookback=timedelta(hours=int(self.lookback_hours)), last_success_end=last)
        self.log.info("watermark window %s .. %s (last successful run ended %s)", low, high, last)
        return {"low": low.isoformat(), "high": high.isoformat(), "query": self._source().window_query((low, high))}


class IncrementalPlanOperator(PlanLineage, _IncrementalOperator):
    """The partitions to reload: changed in the window, and different from what is published.

    Returns (XCom) :class:`~safeload.loads.incremental.ReloadPlan` as a dict: ``window``,
    ``candidates``, ``reload``, ``unchanged``, ``fingerprints``.

    :param window_task_id: the :class:`WatermarkWindowOperator` task
    :param table: the target table (templated)
    :param source_conn_id: the Airflow connection of the source database
    :param postgres_conn_id: the warehouse connection
    :param max_partitions: refuse a window touching more partitions (a mass update)
    """

    template_fields: Sequence[str] = (*_IncrementalOperator.template_fields, "table")

    def __init__(self, *, window_task_id: str, table: str, source_conn_id: str, postgres_conn_id: str = "warehouse",
                 max_partitions: int | None = 62, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_task_id = window_task_id
        self.table = table
        self.source_conn_id = source_conn_id
        self.postgres_conn_id = postgres_conn_id
        self.max_partitions = max_partitions

    def execute(self, context: Context) -> dict[str, Any]:
        import pendulum
        import psycopg

        from safeload.hooks import warehouse_conninfo
        from safeload.loads.incremental import plan_reloads

        win = context["ti"].xcom_pull(task_ids=self.window_task_id)
        bounds = (pendulum.parse(win["low"]), pendulum.parse(win["high"]))
        try:
            with psycopg.connect(warehouse_conninfo(self.source_conn_id), autocommit=True) as src, \
                    psycopg.connect(warehouse_conninfo(self.postgres_conn_id), autocommit=True) as wh:
                return plan_reloads(src, wh, self._source(), table=self.table, window=bounds,
                                    max_partitions=self.max_partitions).to_dict()
        except Exception as e:  # noqa: BLE001 - mapped, not swallowed
            _fail_on(e)


class ReloadPartitionsOperator(ReloadLineage, _IncrementalOperator):
    """Republish each planned partition wholesale: stage all, gate all, then publish all.

    Each partition is streamed from the source (``COPY (query) TO STDOUT`` into ``COPY
    staging FROM STDIN``), checked by the quality gate on staging, and only if *every*
    partition passed are they published, one transaction each. A critical gate failure
    publishes nothing (``AirflowFailException``, not retried). Then one summary goes to
    Slack (never failing the task). Returns (XCom) the publish results.

    :param plan_task_id: the :class:`IncrementalPlanOperator` task
    :param check_task_id: the contract check task, for the summary (optional)
    :param table: the target table (templated)
    :param contract: a contract whose column rules gate each staged partition (templated)
    :param suite: a GX suite JSON adding checks (templated, optional)
    :param source_conn_id: the Airflow connection of the source database
    :param postgres_conn_id: the warehouse connection
    :param slack_conn_id: the Slack connection of the summary
    """

    template_fields: Sequence[str] = (*_IncrementalOperator.template_fields, "table", "contract", "suite")
    operator_extra_links = (SafeloadReportLink(),)  # its loads and gates are on the report

    def __init__(self, *, plan_task_id: str, table: str, source_conn_id: str, contract: str | None = None,
                 suite: str | None = None, check_task_id: str | None = None, postgres_conn_id: str = "warehouse",
                 slack_conn_id: str = "slack_alerts", lock_timeout: str = "30s", **kwargs: Any) -> None:
        # One reload of a DAG at a time: overlapping windows of concurrent runs (backfills
        # are not bound by the DAG's max_active_runs) find the same days, and a reload that
        # staged earlier could publish its older snapshot of a day over a newer one. One at
        # a time, each publishes the source as it was when it staged: never older.
        kwargs.setdefault("max_active_tis_per_dag", 1)
        super().__init__(**kwargs)
        if not (contract or suite):
            raise ValueError(f"{kwargs.get('task_id')}: give contract= and/or suite= for the quality gate")
        self.plan_task_id = plan_task_id
        self.table = table
        self.source_conn_id = source_conn_id
        self.contract = contract
        self.suite = suite
        self.check_task_id = check_task_id
        self.postgres_conn_id = postgres_conn_id
        self.slack_conn_id = slack_conn_id
        self.lock_timeout = lock_timeout

    def _loader(self, context: Context, partition_value: str, *, allow_empty: bool = False):
        from safeload.hooks import warehouse_connect
        from safeload.loads.loader import PartitionLoader

        ti = context["ti"]
        return PartitionLoader(
            _utc_sessions(warehouse_connect(self.postgres_conn_id)), table=self.table,
            partition_column=self.partition_column,
            partition_value=partition_value, run_key=f"{ti.dag_id}/{ti.run_id}/{self.table}",
            lock_timeout=self.lock_timeout, allow_empty=allow_empty,
            audit=task_audit(ti))

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow.sdk.exceptions import AirflowFailException

        from safeload.hooks import warehouse_conninfo
        from safeload.loads.loader import QuerySource
        from safeload.metadata import STAGING_SCHEMA
        from safeload.loads.sql import target_info
        from safeload.quality.gate import run_gate
        from safeload.quality.suite import build_suite

        ti = context["ti"]
        plan = ti.xcom_pull(task_ids=self.plan_task_id)
        warehouse, source_uri = warehouse_conninfo(self.postgres_conn_id), warehouse_conninfo(self.source_conn_id)
        staged, gates, failed, published = [], {}, [], []
        remember(self, staged=staged, gates=gates, published=published)  # filled in as the reload goes
        try:
            import psycopg

            with psycopg.connect(warehouse) as conn:
                columns = [c.name for c in target_info(conn, self.table).written]
            suite = build_suite(suite_path=self.suite, contract_path=self.contract)
            for day in plan["reload"]:  # the write
                query = self._source().partition_query(day, columns).as_string(None)
                # a day the plan saw empty in the source but not in the target: its rows all
                # moved to another day (found by key); it is republished empty, not refused
                emptied = plan["fingerprints"].get(day, {}).get("source", [None])[0] == 0
                src = QuerySource.from_conninfo(source_uri, query)
                src.connect = _utc_sessions(src.connect)
                staged.append(self._loader(context, day, allow_empty=emptied).stage(src))
            for s in staged:  # the audit, of every day before any is published
                store = {"target": s.target, "partition_value": s.partition_value, "dag_id": ti.dag_id,
                         "run_id": ti.run_id, "task_id": ti.task_id, "run_key": s.run_key}
                gate = run_gate(warehouse, table=f"{STAGING_SCHEMA}.{s.staging_table}", suite=suite, store=store)
                gates[s.partition_value] = gate.to_dict()
                if not gate.success:
                    failed.append(f"{s.partition_value}: {gate.summary()}")
            if failed:
                raise AirflowFailException(f"{len(failed)} of {len(staged)} staged partition(s) failed the quality "
                                           "gate; nothing was published:\n" + "\n".join(failed))
            for s in staged:  # the publish, one transaction per day
                emptied = plan["fingerprints"].get(s.partition_value, {}).get("source", [None])[0] == 0
                published.append(self._loader(context, s.partition_value, allow_empty=emptied).publish(s).to_dict())
        except AirflowFailException:
            raise
        except Exception as e:  # noqa: BLE001 - mapped, not swallowed
            _fail_on(e)
        for outlet in self.outlets or []:
            try:
                context["outlet_events"][outlet].extra.update(
                    {"partitions": [p["partition_value"] for p in published], "rows": sum(p["rows"] for p in published)})
            except (KeyError, TypeError, AttributeError):
                self.log.debug("outlet %r takes no event metadata", outlet)
        self._summary(context, plan, published, gates)
        return published

    def _summary(self, context: Context, plan: dict[str, Any], published: list[dict[str, Any]],
                 gates: dict[str, Any]) -> None:
        from safeload.alerts.notifiers import send_quality_summary

        drift = (context["ti"].xcom_pull(task_ids=self.check_task_id) or {}) if self.check_task_id else {}
        days = ", ".join(p["partition_value"] for p in published) or "none"
        results = [dict(r, column=f"{day} {r.get('column') or ''}".strip())
                   for day, g in gates.items() for r in g.get("results", [])]
        send_quality_summary({
            "table": self.table,
            "partition": f"published {days}; unchanged {', '.join(plan['unchanged']) or 'none'} "
                         f"(window {plan['window'][0]} .. {plan['window'][1]})",
            "load": {"status": "published" if published else "unchanged",
                     "rows_source": sum(p["rows_source"] for p in published),
                     "rows_loaded": sum(p["rows"] for p in published),
                     "rows_quarantined": sum(p["rows_quarantined"] for p in published),
                     "rows_replaced": sum(p["rows_replaced"] for p in published)},
            "drift": {k: drift.get(k) for k in ("decision", "policy", "changes")} if drift else None,
            "quality": {"success": True, "results": results},
        }, slack_conn_id=self.slack_conn_id, context=context)
