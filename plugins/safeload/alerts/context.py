"""From an Airflow callback context to a :class:`~safeload.alerts.event.TaskEvent`.

Glue: reads the context Airflow hands a callback (task-level: ``ti``, ``task``,
``exception``; DAG-level: ``dag_run`` and ``reason``; the DAG processor's callbacks of
a killed worker: no exception) and looks up what the alert needs beyond it: the
exception's cause chain and raising place, the DAG's graph (what the failure blocks),
who to ping and the runbook. Everything is read defensively: a half-built object must
not stop the alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from safeload.alerts.causes import cause_chain, describe, raising_location
from safeload.alerts.contacts import Contact, Contacts, ContactsError, owner_names, resolve
from safeload.alerts.event import TaskEvent
from safeload.alerts.impact import Impact, Node, blocked
from safeload.alerts.transport import scrub


def get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` or ``obj[name]``; ``default`` when missing, ``None`` or failing."""
    if obj is None:
        return default
    try:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    except Exception:  # properties of half-built objects (DAG-processor callbacks) may raise
        return default
    return default if value is None else value


def text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(getattr(value, "value", value))


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def is_dag_level(context: Mapping[str, Any]) -> bool:
    """DAG callbacks (scheduler, DAG processor and ``dag.test()``) put ``reason`` in the context."""
    return "reason" in context


def exception_text(error: Any) -> str | None:
    """``"ValueError: bad row"`` for an exception, the text itself for a string."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        message = str(error).strip()
        return f"{type(error).__name__}: {message}" if message else type(error).__name__
    return str(error)


def is_final(ti: Any) -> bool:
    """Whether Airflow is done with this task instance (no retry coming).

    The state says it when it is set; a failure callback can also fire while retries
    remain (Airflow 3: the DAG processor runs a killed worker's callbacks), so without
    a state the try number decides.
    """
    state = (text(get(ti, "state")) or "").lower()
    if state == "failed":
        return True
    if state == "up_for_retry":
        return False
    try_number, max_tries = integer(get(ti, "try_number")), integer(get(ti, "max_tries"))
    if try_number is not None and max_tries is not None:
        return try_number > max_tries
    return True


def error_details(error: Any, roots: Iterable[str] = ()) -> tuple[str | None, tuple[str, ...], str | None]:
    """The exception's text, its chained causes (outermost to root, shortened) and
    where it was raised; secrets scrubbed."""
    if error is None:
        return None, (), None
    if not isinstance(error, BaseException):
        return scrub(str(error)), (), None
    chain = cause_chain(error)
    causes = tuple(scrub(describe(e)) for e in chain[1:])
    try:
        location = raising_location(chain, roots)
    except Exception:  # a traceback we cannot walk must not stop the alert
        location = None
    return scrub(exception_text(error)), causes, scrub(location) if location else None


def dag_graph(dag: Any) -> dict[str, Node]:
    """Each task of ``dag`` as an :class:`~safeload.alerts.impact.Node`."""
    graph = {}
    for task_id, task in (get(dag, "task_dict") or {}).items():
        outlets = []
        for outlet in get(task, "outlets") or ():
            name = get(outlet, "name") or get(outlet, "uri")
            if name:
                outlets.append(str(name))
        graph[str(task_id)] = Node(
            downstream=tuple(sorted(map(str, get(task, "downstream_task_ids") or ()))),
            trigger_rule=text(get(task, "trigger_rule")) or "all_success",
            outlets=tuple(outlets),
        )
    return graph


def impact(dag: Any, failed: Iterable[str]) -> Impact:
    try:
        return blocked(dag_graph(dag), failed)
    except Exception:  # an odd DAG object: say nothing rather than stop the alert
        return Impact()


def has_dag_failure_alert(dag: Any) -> bool:
    """Whether the DAG's own ``on_failure_callback`` includes safeload's failure notifier
    (it will name the run's folded tasks in one message)."""
    callbacks = get(dag, "on_failure_callback")
    if callbacks is None:
        return False
    if not isinstance(callbacks, (list, tuple)):
        callbacks = [callbacks]
    return any(getattr(cb, "names_folded_tasks", False) for cb in callbacks)


def dag_of(context: Mapping[str, Any]) -> Any:
    ti = get(context, "ti") or get(context, "task_instance")
    task = get(context, "task") or get(ti, "task")
    return get(context, "dag") or get(task, "dag")


def contact(context: Mapping[str, Any], event: TaskEvent, mapping: Contacts, *,
            mention: str | None = None, runbook: str | None = None) -> tuple[Contact, str | None]:
    """Who to ping and the runbook for ``event``; a broken override is reported, not raised."""
    dag = dag_of(context)
    params = get(context, "params") or get(dag, "params") or {}
    try:
        param_runbook = params.get("runbook") if hasattr(params, "get") else None
    except Exception:
        param_runbook = None
    try:
        return resolve(mapping, dag_id=event.dag_id, owners=owner_names(event.owner),
                       mention_override=mention, runbook_override=runbook,
                       param_runbook=param_runbook, doc_md=get(dag, "doc_md")), None
    except ContactsError as e:
        fallback = resolve(mapping, dag_id=event.dag_id, owners=owner_names(event.owner),
                           doc_md=get(dag, "doc_md"))
        return fallback, str(e)


def run_url(base_url: str | None, dag_id: str, run_id: str | None) -> str | None:
    """The DAG run's page in Airflow's UI (what a DAG-level alert links to)."""
    if not base_url or not run_id:
        return None
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def event_from_context(context: Mapping[str, Any], *, final: bool | None = None,
                       roots: Iterable[str] = (), base_url: str | None = None) -> TaskEvent:
    """A :class:`TaskEvent` from an Airflow callback context (task- or DAG-level).

    :param final: overrides whether Airflow is done with the task.
    :param roots: folders whose files are shown relative to them (the DAGs folder).
    :param base_url: Airflow's address, for the DAG run's link of a DAG-level event.
    """
    ti = get(context, "ti") or get(context, "task_instance")
    task = get(context, "task") or get(ti, "task")
    dag = dag_of(context)
    dag_run = get(context, "dag_run")
    dag_level = is_dag_level(context)

    dag_id = get(dag, "dag_id") or get(dag_run, "dag_id") or get(ti, "dag_id") or "unknown_dag"
    run_id = get(context, "run_id") or get(dag_run, "run_id") or get(ti, "run_id")
    logical = get(context, "logical_date") or get(dag_run, "logical_date")
    if logical is None and dag_run is not None:
        after = get(dag_run, "run_after")
        logical = f"none (run after {text(after)})" if after is not None else None

    owner = get(task, "owner")
    if dag_level or not owner:
        owner = get(dag, "owner") or owner
    if isinstance(owner, (list, tuple, set)):
        owner = ", ".join(map(str, owner))

    if dag_level:
        start, end = get(dag_run, "start_date"), get(dag_run, "end_date")
    else:
        start, end = get(ti, "start_date"), get(ti, "end_date")
    duration = None
    if isinstance(start, datetime):
        try:
            end_time = end if isinstance(end, datetime) else datetime.now(start.tzinfo)
            duration = (end_time - start).total_seconds()
        except (TypeError, ValueError):
            duration = None
    if duration is None and isinstance(get(ti, "duration"), (int, float)) and not dag_level:
        duration = float(get(ti, "duration"))

    log_url = None
    try:
        log_url = getattr(ti, "log_url", None) if ti is not None else None
    except Exception:
        log_url = None
    if not log_url and dag_level:
        log_url = run_url(base_url, str(dag_id), text(run_id))
    error = context.get("exception") if isinstance(context, Mapping) else None
    exception, causes, location = error_details(error, roots)
    task_id = None if dag_level else (get(ti, "task_id") or get(task, "task_id"))
    failed = [task_id] if task_id else ([get(ti, "task_id")] if get(ti, "task_id") else [])
    effect = impact(dag, failed)

    return TaskEvent(
        dag_id=str(dag_id),
        task_id=task_id,
        run_id=text(run_id),
        logical_date=text(logical),
        try_number=integer(get(ti, "try_number")),
        max_tries=integer(get(ti, "max_tries"))
        if integer(get(ti, "max_tries")) is not None
        else integer(get(task, "retries")),
        duration=duration,
        exception=exception,
        log_url=str(log_url) if log_url else None,
        owner=str(owner) if owner else None,
        map_index=integer(get(ti, "map_index")),
        final=is_final(ti) if final is None else final,
        reason=text(context.get("reason")) if isinstance(context, Mapping) else None,
        causes=causes,
        location=location,
        blocked_tasks=tuple(effect.tasks),
        blocked_assets=tuple(effect.assets),
    )
