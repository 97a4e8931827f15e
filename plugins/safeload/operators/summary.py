"""LoadSummaryOperator: one Slack message per load with what every guard did."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class LoadSummaryOperator(BaseOperator):
    """Post a summary of the load: rows loaded and quarantined, checks failed and warned
    (observed against expected), schema drift and what the policy did.

    It reads the XComs of the upstream safeload tasks named below. Posting never fails
    the task: a Slack outage is logged, not turned into a failed load.

    :param check_task_id: the SchemaContractCheckOperator task (optional)
    :param gate_task_id: the QualityGateOperator task (optional)
    :param publish_task_id: the PublishPartitionOperator or PartitionOverwriteOperator task
    :param stage_task_id: the StagePartitionOperator task (optional)
    :param slack_conn_id: Slack connection (webhook or Web API); without one, the summary
        goes to the log and a local file
    :param channel: channel for the Web API transport
    """

    template_fields: Sequence[str] = ("channel",)
    ui_color = "#fffbe6"

    def __init__(self, *, publish_task_id: str, check_task_id: str | None = None, gate_task_id: str | None = None,
                 stage_task_id: str | None = None, slack_conn_id: str = "slack_alerts", channel: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.publish_task_id = publish_task_id
        self.check_task_id = check_task_id
        self.gate_task_id = gate_task_id
        self.stage_task_id = stage_task_id
        self.slack_conn_id = slack_conn_id
        self.channel = channel

    def execute(self, context: Context) -> dict[str, Any]:
        from safeload.alerts.notifiers import send_quality_summary

        summary = build_summary(context, publish_task_id=self.publish_task_id, check_task_id=self.check_task_id,
                                gate_task_id=self.gate_task_id, stage_task_id=self.stage_task_id)
        send_quality_summary(summary, slack_conn_id=self.slack_conn_id, channel=self.channel, context=context)
        return summary


def build_summary(context: Context, *, publish_task_id: str, check_task_id: str | None = None,
                  gate_task_id: str | None = None, stage_task_id: str | None = None) -> dict[str, Any]:
    """The summary dict (see docs/alerts.md) from the upstream tasks' XComs."""
    ti = context["ti"]

    def pull(task_id: str | None, key: str = "return_value") -> dict[str, Any]:
        return (ti.xcom_pull(task_ids=task_id, key=key) or {}) if task_id else {}

    published = pull(publish_task_id)
    staged = pull(stage_task_id) or published.get("stage", {})
    drift = pull(check_task_id)
    quality = pull(gate_task_id) or pull(publish_task_id, "quality")
    logical = context.get("logical_date")
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "logical_date": logical.isoformat() if hasattr(logical, "isoformat") else logical,
        "table": published.get("target") or staged.get("target"),
        "partition": published.get("partition_value") or staged.get("partition_value"),
        "load": {
            "status": "published" if published else "not published",
            "rows_source": published.get("rows_source", staged.get("rows_source")),
            "rows_loaded": published.get("rows", staged.get("rows_loaded")),
            "rows_quarantined": published.get("rows_quarantined", staged.get("rows_quarantined")),
            "rows_replaced": published.get("rows_replaced"),
            "checksum": published.get("checksum"),
            "added_columns": published.get("added_columns", []),
        },
        "drift": {k: drift.get(k) for k in ("decision", "policy", "changes")} if drift else None,
        "quality": quality or None,
        "log_url": getattr(ti, "log_url", None),
    }
