"""payments_incremental: an incremental PostgreSQL -> PostgreSQL load with late rows. See ``doc_md``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param

from safeload.alerts.notifiers import send_failure_alert, send_recovery_alert
from safeload.operators.contract import SchemaContractCheckOperator
from safeload.operators.incremental import (
    IncrementalPlanOperator,
    ReloadPartitionsOperator,
    WatermarkWindowOperator,
)

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
# a corrected paid_at moves a payment to another day: its old day is found by this key in
# the target, and republished without it
KEY_COLUMNS = ["payment_id"]

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
    source = {"source_query": SOURCE_QUERY, "partition_column": PARTITION_COLUMN, "updated_column": UPDATED_COLUMN,
              "key_columns": KEY_COLUMNS}
    window = WatermarkWindowOperator(task_id="window", lookback_hours="{{ params.lookback_hours }}", **source)
    # the contract is held against exactly the rows this run reads, before any is loaded
    check = SchemaContractCheckOperator(
        task_id="check_contract", contract=CONTRACT, source_conn_id=SOURCE_CONN,
        source_query="{{ ti.xcom_pull(task_ids='window')['query'] }}",
        rule_policy="warn",  # value rules reported here, enforced by the gate on staging
    )
    plan = IncrementalPlanOperator(task_id="plan", window_task_id="window", table=TARGET,
                                   source_conn_id=SOURCE_CONN, postgres_conn_id=WAREHOUSE_CONN, **source)
    reload = ReloadPartitionsOperator(
        task_id="reload", plan_task_id="plan", check_task_id="check_contract", table=TARGET,
        source_conn_id=SOURCE_CONN, postgres_conn_id=WAREHOUSE_CONN, contract=CONTRACT, outlets=[PAYMENTS],
        **source,
    )

    window >> check >> plan >> reload
