"""customers_scd2: an SCD Type 2 customer dimension from daily snapshots. See ``doc_md``."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable

from safeload.alerts.notifiers import send_failure_alert, send_recovery_alert
from safeload.operators.contract import SchemaContractCheckOperator
from safeload.operators.load import PublishPartitionOperator, StagePartitionOperator
from safeload.operators.quality import QualityGateOperator
from safeload.operators.scd2 import SCD2RebuildOperator
from safeload.sensors.source import SourceReadySensor

INCLUDE = Path(__file__).resolve().parents[1] / "include"
DATA_DIR = Path(os.environ.get("SAFELOAD_DATA_DIR", INCLUDE / "data" / "generated"))
CONTRACT = str(INCLUDE / "contracts" / "customers.yaml")
SOURCE = str(DATA_DIR / "customers" / "{{ ds }}.csv")

DOC = """
### customers_scd2: the customer dimension with full history (SCD Type 2)

**What it does.** Loads the CRM's daily full snapshot of customers as one partition of
`customers_snapshot` (contract check, write-audit-publish), then rebuilds
`dim_customers` from all snapshots: one row per customer *version* with `valid_from`,
`valid_to` (exclusive; 9999-12-31 while current), `is_current`, and `row_hash`, the
hash of the tracked columns that detects a change.

**Why Type 2 here.** Orders are analysed by the customer's segment and country *at the
time of the order* ("revenue from enterprise customers in Q2"). A Type 1 table
(overwrite in place) would silently move every past order to the customer's current
segment: last quarter's report would change each time a customer is reclassified, and
nobody could say when a customer moved or was deleted. Type 2 keeps each version with
its validity, so `orders.order_date between valid_from and valid_to` joins each order
to the customer as they were. Type 1 is right for attributes nobody reports history
on (a typo in a name); here all tracked columns drive reports.

**Why rebuilt from snapshots instead of merged.** The classic SCD2 merge ("close the
changed rows, insert new versions") applies today's snapshot to yesterday's state, so
its result depends on the order of runs: re-running a day or backfilling an old one
corrupts the history. Here each snapshot is an immutable, idempotently loaded
partition, and the dimension is recomputed from them in one transaction, serialised by
an advisory lock. Re-running a date, running dates out of order, or backfilling gives
the same history by construction, and readers see the old dimension or the new one.
The cost is a recompute over all snapshots: minutes only beyond hundreds of millions of
snapshot rows; past that, restrict the recompute to keys that changed.

**Why these guards.** `schema_policy: fail`: a new column in the CRM export could be a
new tracked attribute, so it needs a decision, not a silent load. A deletion is a
customer missing from a full snapshot, so an empty or truncated snapshot would "delete"
everyone: the sensor waits for the `.done` marker, the load refuses empty files, and the
volume check warns when the snapshot shrinks against the last 14.

**Why days run side by side.** The run for a day starts once the day is over and waits
for its snapshot up to 6 hours without holding a worker slot. Up to 8 days run at once,
so a day still waiting never holds up a re-run or backfill of others: each publishes its
own partition, and the rebuilds, which read every snapshot, run one at a time
(`max_active_tis_per_dag=1`, besides the advisory lock) and give the same history in
any order.
"""

default_args = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "execution_timeout": timedelta(hours=1),
    "on_failure_callback": send_failure_alert(),
    "on_success_callback": send_recovery_alert(),
}

with DAG(
    dag_id="customers_scd2",
    # the run for day D starts at D+1 00:00 UTC, when D's snapshot is taken
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 5, 1, tz="UTC"),
    catchup=False,
    max_active_runs=8,
    default_args=default_args,
    tags=["safeload", "reference", "scd2", "customers"],
    doc_md=DOC,
) as dag:
    wait = SourceReadySensor(task_id="wait_for_snapshot", path=SOURCE, marker="{path}.done", poke_interval=60,
                             timeout=6 * 3600, mode="reschedule")
    # value rules are reported here; the gate on staging enforces them
    check = SchemaContractCheckOperator(task_id="check_contract", contract=CONTRACT, source=SOURCE, rule_policy="warn",
                                        partition_value="{{ ds }}")
    stage = StagePartitionOperator(task_id="stage", contract=CONTRACT, source=SOURCE, partition_value="{{ ds }}")
    audit = QualityGateOperator(task_id="audit_staging", stage_task_id="stage", contract=CONTRACT,
                                volume_check={"last_n": 14, "k": 4.0, "severity": "warning"})
    publish = PublishPartitionOperator(task_id="publish_snapshot", contract=CONTRACT, stage_task_id="stage",
                                       partition_value="{{ ds }}")
    rebuild = SCD2RebuildOperator(
        task_id="rebuild_dim_customers",
        snapshots="public.customers_snapshot",
        dimension="public.dim_customers",
        key="customer_id",
        tracked=["name", "email", "country", "segment"],
        # one rebuild at a time: a second would only wait on the dimension's advisory lock
        max_active_tis_per_dag=1,
        # named, without a postgres:// URI, which would load the provider URI handlers at every parse
        outlets=[Asset(name="warehouse.public.dim_customers")],
    )

    wait >> check >> stage >> audit >> publish >> rebuild
