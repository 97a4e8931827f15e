"""orders_daily: a daily fact-table load that expects failure. See ``doc_md`` below."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param

from safeload.alerts.notifiers import send_failure_alert, send_recovery_alert
from safeload.operators.contract import SchemaContractCheckOperator
from safeload.operators.load import PublishPartitionOperator, StagePartitionOperator
from safeload.operators.quality import QualityGateOperator
from safeload.operators.summary import LoadSummaryOperator
from safeload.sensors.source import SourceReadySensor

INCLUDE = Path(__file__).resolve().parents[1] / "include"
DATA_DIR = Path(os.environ.get("SAFELOAD_DATA_DIR", INCLUDE / "data" / "generated"))
CONTRACT = str(INCLUDE / "contracts" / "orders.yaml")
SOURCE = str(DATA_DIR / "orders" / "{{ ds }}.csv")

# Named, without a postgres:// URI: a URI scheme makes every parse load Airflow's provider
# asset-URI handlers (about 30 ms here, more than the rest of this file).
ORDERS = Asset(name="warehouse.public.orders")

DOC = """
### orders_daily: one published, audited partition of `public.orders` per day

**What it does.** Waits for the day's `orders/<ds>.csv` (and its `.done` marker), holds it
against the data contract `include/contracts/orders.yaml`, streams it into a staging
table with COPY, runs the quality gate on staging, and only then replaces the day's
partition of `public.orders` in one transaction. A summary goes to Slack.

**Why it is built this way.**

* *Partitioned by `order_date`, one run per logical date.* A run owns exactly one
  partition, so a re-run or a backfill of any day replaces that day and nothing else:
  idempotent by construction, not by care. Native partitions keep the day's rows
  together, so replacing a day touches only that day.
* *Contract check first.* A renamed or retyped column is caught before a row moves, with
  a report that says what changed and what to do. A new column is only a warning here
  (`schema_policy: warn`): today's load goes on without it. Once the column is agreed on,
  a run triggered with `{"schema_policy": "evolve"}` adds it to `public.orders` (nullable,
  inside the publish transaction, so readers never see the column without the day's rows).
  The contract's value rules (unique ids, amount bounds, allowed currencies) are checked in
  the same pass and reported as warnings (`rule_policy="warn"`): here the gate on staging
  enforces them, after the quarantine has taken the rows that do not parse. A day the check
  stops is listed as refused on the safeload page (`partition_value`), beside the days that
  loaded: the morning after, the missing day is in the list, not absent from it.
* *Write-audit-publish.* Bad data is found in staging, where it harms nobody; the
  published partition changes only after the gate passes, atomically, in one transaction
  serialised per partition by an advisory lock: the audited staging table is swapped in
  as the day's partition (its rows are written once; readers wait at most one 200 ms lock
  attempt), or, while a long report holds the table, the day is replaced by DELETE +
  INSERT, which no reader blocks. Readers see yesterday's version or today's, never half
  of one. A crash anywhere leaves the old partition.
* *Quarantine, not crash.* Rows that do not parse go to `safeload.quarantine` with their
  line and reason; more than 0.5% of them refuses the load.
* *Severities.* `critical` checks (uniqueness, not-null, allowed values from the
  contract) stop the publish; `warning` checks (amount distribution, volume against the
  last 14 loads) are reported and let it through.
* *Retries are for the infrastructure, not for data.* `retries=2` covers a lock timeout or
  a dropped connection; bad data raises `AirflowFailException`, which is not retried.
* *Alerts.* Failures go to Slack with the log link; repeats are folded into one message,
  and a later success posts "resolved" in the same thread.
* *A run per finished day; days run side by side.* The run for a day starts once the day
  is over (a data-interval schedule: `ds` is the day whose orders the file holds),
  and waits for its file up to 6 hours, in the triggerer (deferrable) or between pokes
  (reschedule), holding no worker slot. Up to 8 days run at once, so a day still waiting
  for its file never holds up a re-run or a backfill of other days; runs of the same day
  serialise on the partition's advisory lock, and runs of different days touch
  different partitions. No catchup: backfills are explicit (`airflow backfill create`).
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
    dag_id="orders_daily",
    # the run for day D starts at D+1 00:00 UTC, when D's orders are complete
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 5, 1, tz="UTC"),
    catchup=False,
    # days are independent (one partition each): a day waiting for its file must not
    # queue the others behind it; 8 bounds the warehouse load of a burst of triggers
    max_active_runs=8,
    default_args=default_args,
    # a per-run override of the contract's drift policy: trigger with {"schema_policy": "evolve"}
    # to take a new column into the target for this run (e.g. after the producer announced it)
    params={"schema_policy": Param(None, type=["null", "string"], enum=[None, "fail", "warn", "evolve"],
                                   description="override the contract's schema_policy for this run")},
    tags=["safeload", "reference", "orders"],
    doc_md=DOC,
) as dag:
    wait = SourceReadySensor(
        task_id="wait_for_source",
        path=SOURCE,
        marker="{path}.done",
        poke_interval=60,
        timeout=6 * 3600,
        mode="reschedule",
    )
    # value rules (duplicate ids, amounts out of bounds) are reported here and enforced by the
    # gate on staging, after the quarantine took the malformed rows: see doc_md
    check = SchemaContractCheckOperator(task_id="check_contract", contract=CONTRACT, source=SOURCE,
                                        policy="{{ params.schema_policy or '' }}", rule_policy="warn",
                                        partition_value="{{ ds }}")
    stage = StagePartitionOperator(
        task_id="stage", contract=CONTRACT, source=SOURCE, partition_value="{{ ds }}", max_bad_fraction=0.005,
        max_bad_rows=None, schema_policy="{{ params.schema_policy or '' }}",
    )
    audit = QualityGateOperator(
        task_id="audit_staging",
        stage_task_id="stage",
        contract=CONTRACT,
        suite=str(INCLUDE / "expectations" / "orders.json"),
        volume_check={"last_n": 14, "k": 4.0, "severity": "warning"},
    )
    publish = PublishPartitionOperator(
        task_id="publish", contract=CONTRACT, stage_task_id="stage", partition_value="{{ ds }}", outlets=[ORDERS],
    )
    summary = LoadSummaryOperator(
        task_id="summary", check_task_id="check_contract", stage_task_id="stage", gate_task_id="audit_staging",
        publish_task_id="publish",
    )

    wait >> check >> stage >> audit >> publish >> summary
