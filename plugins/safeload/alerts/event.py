"""What an alert says about one task (or DAG run) event, as plain data.

Pure: no Airflow import. :mod:`safeload.alerts.context` fills it from an Airflow callback
context; the message builders (:mod:`safeload.alerts.messages`) render it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskEvent:
    """What an alert says about one task (or DAG run) event, as plain data.

    :param dag_id: the DAG.
    :param task_id: the task; ``None`` for a DAG-level event.
    :param run_id: the DAG run.
    :param logical_date: ISO text; ``None`` for runs without one (Airflow 3 allows it).
    :param try_number: this try, counted from 1.
    :param max_tries: Airflow's ``max_tries``; the run allows ``max_tries + 1`` tries.
    :param duration: seconds the try (or the run) took.
    :param exception: short text of the error, e.g. ``"ValueError: bad row"``.
    :param log_url: link to the task's log in the Airflow UI.
    :param owner: the task's (or DAG's) owner.
    :param map_index: index of a mapped task instance, ``None`` or ``-1`` if not mapped.
    :param final: ``False`` while Airflow will retry the task.
    :param reason: why a DAG-level callback fired (``task_failure``, ``timed_out``, ...).
    :param causes: the exception's chained causes (``raise ... from ...`` or raised while
        handling), outermost first, the root cause last; each already shortened.
    :param location: where the error was raised: ``file:line in function`` of the
        innermost frame that is not library code.
    :param mention: who to ping, as Slack mention syntax (``<@U…>``, ``<!subteam^S…>``).
    :param runbook: a link to what to do.
    :param blocked_tasks: downstream tasks that will not run because of this failure.
    :param blocked_assets: assets those tasks (and this one) would have updated.
    :param other_failed: the other failed tasks of the same DAG run.
    :param deployment: which Airflow deployment sent the alert (e.g. ``production``).
    :param notices: things the team should fix in its set-up, said in the alert.
    """

    dag_id: str
    task_id: str | None = None
    run_id: str | None = None
    logical_date: str | None = None
    try_number: int | None = None
    max_tries: int | None = None
    duration: float | None = None
    exception: str | None = None
    log_url: str | None = None
    owner: str | None = None
    map_index: int | None = None
    final: bool = True
    reason: str | None = None
    causes: tuple[str, ...] = ()
    location: str | None = None
    mention: str | None = None
    runbook: str | None = None
    blocked_tasks: tuple[str, ...] = ()
    blocked_assets: tuple[str, ...] = ()
    other_failed: tuple[str, ...] = ()
    deployment: str | None = None
    notices: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``dag.task`` (``dag.task[3]`` for a mapped instance), or the DAG alone."""
        if not self.task_id:
            return self.dag_id
        suffix = f"[{self.map_index}]" if self.map_index is not None and self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{suffix}"

    @property
    def root_cause(self) -> str | None:
        """The innermost cause, when the exception has chained causes."""
        return self.causes[-1] if self.causes else None

    @property
    def tries(self) -> str | None:
        """``"2 of 3"``, or ``None`` when the try number is unknown."""
        if not self.try_number:
            return None
        if self.max_tries is None:
            return str(self.try_number)
        return f"{self.try_number} of {max(self.max_tries + 1, self.try_number)}"
