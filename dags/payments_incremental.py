"""payments_incremental: an incremental PostgreSQL -> PostgreSQL load with late rows. See ``doc_md``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param, task

from safeload.alerts.notifiers import send_failure_alert, send_recovery_alert
from safeload.operators.contract import SchemaContractCheckOperator

INCLUDE = Path(__file__).resolve().parents[1] / "include"
CONTRACT = str(INCLUDE / "contracts" / "payments.yaml")
TARGET = "public.payments"
SOURCE_CONN = "app_source"  # the application's database (read-only user)
WAREHOUSE_CONN = "warehouse"
# The application's columns as they are (``p.*``: a new or renamed column reaches the
# contract check, which classifies it), plus the business date that names the partition.
SOURCE_QUERY = "select p.*, (p.paid_at at time zone 'UTC')::date as payment_date from app.payments p"
PARTITION_COLUMN = "payment_date"
UPDATED_COLUMN = "updated_at"

PAYMENTS = Asset(name="warehouse.public.payments")

DOC = """
### payments_incremental: the application's payments, loaded incrementally, late rows included

**What it does.** Each run reads which payments changed in the application database
(`app.payments`, by `updated_at`) during its data interval plus a lookback, maps them to
the *business dates* they belong to (`payment_date`, the UTC day of `paid_at`), and
republishes each of those days of `public.payments` wholesale, through write-audit-publish:
stream the day out of the source into staging (COPY TO STDOUT -> COPY FROM STDIN), run the quality gate, replace the partition
in one transaction. Days whose published rows already equal the source's are skipped.

**Why incremental here, and not a full load.** `app.payments` is a live OLTP table that
grows forever and changes in place (a payment is captured, then refunded days later). A
full copy each night reads years of rows to find a few thousand changes, and holds a
long snapshot on the application's primary. The watermark reads only what changed.
(A small reference table would be a full load: simpler, and it sees deletions.)

**Why reload whole days instead of merging the changed rows.** An upsert of "rows
changed since last time" is only right if every earlier run happened exactly once and
in order; a re-run, a backfill or an overlapping window can double-apply or miss a
change. Here the watermark only *finds* the affected days; each is then replaced from
the source as a whole, so the result for a day is a function of the source alone:
re-runs, overlaps and backfills cannot duplicate a payment.

**Why the watermark comes from the data interval, with a lookback.** The run's window is
`[data_interval_start - lookback, data_interval_end)` (reaching back to the last
successful run's end after missed runs). Nothing is stored: a re-run reads the same
window, and there is no Variable or max(updated_at) to corrupt or to move past a late
row. The lookback (param `lookback_hours`, default 24) catches rows whose `updated_at`
is older than the moment they became visible: a long transaction commits after the run
read the table. See docs/decisions/012-incremental-watermark.md for the alternatives.

**Why the same day is not republished by every overlapping window.** Each candidate
day is fingerprinted on both sides (row count and checksum, on the target's types);
only days that differ are reloaded. A late row changes its day's fingerprint, so the day
is republished once; the next run's lookback finds it again, equal, and skips it.

**Guards.** The contract check runs on exactly the rows the run reads (a renamed or
retyped column fails before a row moves); the gate runs on each staged day (critical
failures stop the publish of *every* day of the run, so a run is all or nothing on the
gate); a window touching more than 62 days refuses (a mass update in the application is
a backfill to decide on). Bad data is not retried; lock timeouts and lost connections are.

**Limits.** A watermark cannot see hard deletes: the application must soft-delete
(status) or the table needs CDC (logical replication) instead. `updated_at` must move on
every change (a trigger, not application discipline).
"""

default_args = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=1),
    "on_failure_callback": send_failure_alert(),
    "on_success_callback": send_recovery_alert(),
}


def _source(query: str = SOURCE_QUERY):
    from safeload.loads.incremental import IncrementalSource

    return IncrementalSource(query, PARTITION_COLUMN, UPDATED_COLUMN)


def _fail_on(e: Exception) -> None:
    """Bad data is not retried (AirflowFailException); infrastructure errors are."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from safeload.errors import SafeloadError

    if isinstance(e, SafeloadError):
        raise (AirflowException if e.retryable else AirflowFailException)(str(e)) from None
    raise e


def _loader(context: dict[str, Any], partition_value: str):
    from safeload.hooks import warehouse_connect
    from safeload.loads.loader import PartitionLoader

    ti = context["ti"]
    return PartitionLoader(
        warehouse_connect(WAREHOUSE_CONN), table=TARGET, partition_column=PARTITION_COLUMN,
        partition_value=partition_value, run_key=f"{ti.dag_id}/{ti.run_id}/{TARGET}",
        audit={"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "try_number": ti.try_number},
    )


def _target_columns() -> list[str]:
    import psycopg

    from safeload.hooks import warehouse_conninfo
    from safeload.loads.sql import target_info

    with psycopg.connect(warehouse_conninfo(WAREHOUSE_CONN)) as wh:
        return [c.name for c in target_info(wh, TARGET).columns]


with DAG(
    dag_id="payments_incremental",
    # a real interval: the run of 2024-05-01 covers [05-01, 05-02) (a bare "@daily" gives
    # Airflow 3's CronTriggerTimetable, whose runs are points in time, not intervals)
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 5, 1, tz="UTC"),
    catchup=False,  # a missed run is covered by the next one: its window reaches back to the last success
    max_active_runs=1,
    default_args=default_args,
    params={"lookback_hours": Param(24, type="integer", minimum=0,
                                    description="re-read this many hours before the interval, for late commits")},
    tags=["safeload", "reference", "incremental", "payments"],
    doc_md=DOC,
) as dag:

    @task
    def window(**context: Any) -> dict[str, Any]:
        """The watermark window of this run, from its data interval (nothing stored)."""
        from safeload.loads.incremental import watermark_window

        try:  # a lazy lookup in Airflow's metadata; absent before the first success
            last = context["prev_data_interval_end_success"]
            last = pendulum.instance(last) if last is not None else None
        except Exception:  # noqa: BLE001 - no previous success: the interval alone
            last = None
        low, high = watermark_window(
            pendulum.instance(context["data_interval_start"]), pendulum.instance(context["data_interval_end"]),
            lookback=timedelta(hours=int(context["params"]["lookback_hours"])), last_success_end=last)
        return {"low": low.isoformat(), "high": high.isoformat(),
                "query": _source().window_query((low, high))}

    win = window()

    check = SchemaContractCheckOperator(
        task_id="check_contract", contract=CONTRACT, source_conn_id=SOURCE_CONN,
        source_query="{{ ti.xcom_pull(task_ids='window')['query'] }}",
    )

    @task
    def plan(win: dict[str, Any]) -> dict[str, Any]:
        """Days with rows changed in the window, minus those already published as they are."""
        import psycopg

        from safeload.hooks import warehouse_conninfo
        from safeload.loads.incremental import plan_reloads

        bounds = (pendulum.parse(win["low"]), pendulum.parse(win["high"]))
        try:
            with psycopg.connect(warehouse_conninfo(SOURCE_CONN), autocommit=True) as src, \
                    psycopg.connect(warehouse_conninfo(WAREHOUSE_CONN), autocommit=True) as wh:
                return plan_reloads(src, wh, _source(), table=TARGET, window=bounds).to_dict()
        except Exception as e:  # noqa: BLE001 - mapped, not swallowed
            _fail_on(e)

    @task
    def stage(plan: dict[str, Any], **context: Any) -> list[dict[str, Any]]:
        """Stream each day out of the source into staging (the *write*): COPY (query) TO
        STDOUT on the application's database into COPY FROM STDIN on the warehouse."""
        from safeload.hooks import warehouse_conninfo
        from safeload.loads.loader import QuerySource
        from safeload.loads.metadata import STAGING_SCHEMA

        out = []
        try:
            columns = _target_columns()
            for day in plan["reload"]:
                query = _source().partition_query(day, columns).as_string(None)
                staged = _loader(context, day).stage(QuerySource.from_conninfo(warehouse_conninfo(SOURCE_CONN), query))
                out.append({**staged.to_dict(), "staging_fqn": f"{STAGING_SCHEMA}.{staged.staging_table}"})
        except Exception as e:  # noqa: BLE001 - mapped, not swallowed
            _fail_on(e)
        return out

    @task
    def audit(staged: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
        """The quality gate on every staged day; any critical failure stops the whole publish."""
        from airflow.sdk.exceptions import AirflowFailException

        from safeload.hooks import warehouse_conninfo
        from safeload.quality.gate import run_gate
        from safeload.quality.suite import build_suite

        ti = context["ti"]
        suite = build_suite(contract_path=CONTRACT)
        results, failed = {}, []
        for s in staged:
            store = {"target": s["target"], "partition_value": s["partition_value"], "dag_id": ti.dag_id,
                     "run_id": ti.run_id, "task_id": ti.task_id, "run_key": s["run_key"]}
            gate = run_gate(warehouse_conninfo(WAREHOUSE_CONN), table=s["staging_fqn"], suite=suite, store=store)
            results[s["partition_value"]] = gate.to_dict()
            if not gate.success:
                failed.append(f"{s['partition_value']}: {gate.summary()}")
        report = {"success": not failed, "partitions": results}
        if failed:
            ti.xcom_push(key="return_value", value=report)
            raise AirflowFailException(f"{len(failed)} of {len(staged)} staged day(s) failed the quality gate; "
                                       "nothing was published:\n" + "\n".join(failed))
        return report

    @task(outlets=[PAYMENTS])
    def publish(staged: list[dict[str, Any]], **context: Any) -> list[dict[str, Any]]:
        """Replace each audited day of the target, one transaction per day (the *publish*)."""
        from safeload.loads.loader import StageResult

        published = []
        try:
            for s in staged:
                result = _loader(context, s["partition_value"]).publish(
                    StageResult.from_dict({k: v for k, v in s.items() if k != "staging_fqn"}))
                published.append(result.to_dict())
        except Exception as e:  # noqa: BLE001
            _fail_on(e)
        context["outlet_events"][PAYMENTS].extra.update(
            {"partitions": [p["partition_value"] for p in published], "rows": sum(p["rows"] for p in published)})
        return published

    @task
    def summary(plan: dict[str, Any], published: list[dict[str, Any]], gates: dict[str, Any],
                **context: Any) -> dict[str, Any]:
        """One Slack message: the window, which days were republished and which were unchanged."""
        from safeload.alerts.notifiers import send_quality_summary

        drift = context["ti"].xcom_pull(task_ids="check_contract") or {}
        days = ", ".join(p["partition_value"] for p in published) or "none"
        results = [dict(r, column=f"{day} {r.get('column') or ''}".strip())
                   for day, g in (gates.get("partitions") or {}).items() for r in g.get("results", [])]
        msg = {
            "table": TARGET,
            "partition": f"published {days}; unchanged {', '.join(plan['unchanged']) or 'none'} "
                         f"(window {plan['window'][0]} .. {plan['window'][1]})",
            "load": {"status": "published" if published else "unchanged",
                     "rows_source": sum(p["rows_source"] for p in published),
                     "rows_loaded": sum(p["rows"] for p in published),
                     "rows_quarantined": sum(p["rows_quarantined"] for p in published),
                     "rows_replaced": sum(p["rows_replaced"] for p in published)},
            "drift": {k: drift.get(k) for k in ("decision", "policy", "changes")} if drift else None,
            "quality": {"success": gates.get("success", True), "results": results},
        }
        send_quality_summary(msg, context=context)
        return msg

    planned = plan(win)
    staged = stage(planned)
    gates = audit(staged)
    done = publish(staged)
    win >> check >> planned
    gates >> done
    summary(planned, done, gates)
