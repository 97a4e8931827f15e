"""Storm control as rules on plain data: what to post, fold, count, queue and resolve.

Pure: no Airflow, no I/O, no clock. Each function takes the alert state of ONE DAG (a
plain dict, see :func:`empty_dag_state`), the time, the settings, and mutates the state
in place; the caller (:class:`safeload.alerts.throttle.AlertState`) loads and saves it
under a lock through a store (a JSON file, or PostgreSQL that every worker shares). The
rules, per task ("key"; ``""`` is the DAG itself):

1. **Window.** The first failure of a key opens a window (default one hour) and gets
   the full message; the message opens a *thread* (an announcement).
2. **Repeats** in the window are counted; a short "failed again" line goes out only at
   the counts in :data:`NOTIFY_COUNTS`, in the key's thread. Within one DAG run a key
   is announced once, except the final failure after a "will retry" alert.
3. **One run, one message.** At most ``task_posts_per_run`` task messages per run.
   Further failing tasks of the run are folded: into the DAG-level message when the DAG
   has safeload's DAG-level failure callback, else into a short "also failed" line in
   the run's first thread (webhooks: a top-level line, they cannot thread). Either way
   the folded task becomes a member of that thread.
4. **Replies wait for their thread.** A reply whose thread is still being posted (by
   another worker, at the same moment) is queued on the thread; the poster sends the
   queue as one reply once it knows the thread's Slack ``ts``.
5. **Duplicates** (the same try of the same task instance) are dropped.
6. **Resolved.** A success closes the key's incident. The recovery of what one message
   announced is ONE summary in that message's thread, posted when every member of the
   thread has recovered (a DAG-level success resolves all of the DAG's members).
7. A message that was not delivered does not count as posted.

Every list in the state is bounded, and :func:`prune` keeps a DAG's state small.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

DEFAULT_WINDOW = 3600.0
DEFAULT_TASK_POSTS_PER_RUN = 1
#: Repeat counts (within a window) that are announced; the others are only counted.
NOTIFY_COUNTS = frozenset({2, 3, 5, 10, 20, 50, 100, 200, 500, 1000})
MAX_EVENTS_PER_KEY = 20
MAX_TASKS_PER_RUN = 200
MAX_PENDING = 50
MAX_KEYS_PER_DAG = 500
MAX_RUNS_PER_DAG = 200
MAX_THREADS_PER_DAG = 200
#: A thread still "sending" after this many seconds lost its poster (a killed worker):
#: its replies stop waiting for it.
STALE_SENDING = 300.0
#: Runs are kept this long (for folding), notices a week.
RUN_HORIZON = 2 * 86400.0
NOTICE_HORIZON = 7 * 86400.0

POST = "post"  # the full message; opens a thread
REPEAT = "repeat"  # a short "failed again" line in the key's thread
ALSO = "also"  # a short "also failed in this run" line in the run's first thread
FOLD = "fold"  # folded into the run's DAG-level message, not posted now
QUEUED = "queued"  # a reply waiting for its thread's ts; its poster sends it
SUPPRESS = "suppress"  # counted, not posted
DUPLICATE = "duplicate"  # this very event was seen already
SKIP = "skip"  # DAG-level message with nothing new to say
SEND_ACTIONS = frozenset({POST, REPEAT, ALSO})

SENDING, SENT, FAILED = "sending", "sent", "failed"
DAG_KEY = ""


def is_notify_count(n: int) -> bool:
    return n in NOTIFY_COUNTS or (n > 1000 and n % 1000 == 0)


@dataclass(frozen=True)
class Settings:
    """The storm-control settings.

    :param window: seconds during which repeats of a key are folded.
    :param task_posts_per_run: task failure messages per DAG run before the rest fold.
    :param max_keys: key records kept per DAG (closed and least recently used go first).
    :param max_runs: run records kept per DAG.
    """

    window: float = DEFAULT_WINDOW
    task_posts_per_run: int = DEFAULT_TASK_POSTS_PER_RUN
    max_keys: int = MAX_KEYS_PER_DAG
    max_runs: int = MAX_RUNS_PER_DAG

    def __post_init__(self) -> None:
        if not isinstance(self.window, (int, float)) or not self.window > 0:
            raise ValueError(
                f"window={self.window!r}: the storm-control window must be positive seconds, e.g. 3600"
            )
        if not isinstance(self.task_posts_per_run, int) or self.task_posts_per_run < 1:
            raise ValueError(f"task_posts_per_run={self.task_posts_per_run!r}: must be at least 1")


@dataclass
class Decision:
    """What to do with one alert, and what to remember once it is sent."""

    action: str
    dag_id: str
    task_id: str  # "" for the DAG-level message
    kind: str  # failure | retry | dag_failure
    reason: str
    run_id: str | None = None
    count: int = 1
    incident_count: int = 1
    incident_start: float | None = None
    window: float = DEFAULT_WINDOW
    thread_id: str | None = None  # the thread this alert opens (POST) or replies in
    thread_ts: str | None = None
    channel: str | None = None
    broadcast: bool = False
    failed_tasks: list[str] = field(default_factory=list)  # of the run, in order
    folded: list[str] = field(default_factory=list)  # of the run: no message of their own
    announces: list[str] = field(default_factory=list)  # failed tasks this message names first
    stateless: bool = False

    @property
    def send(self) -> bool:
        return self.action in SEND_ACTIONS

    @property
    def key(self) -> str:
        return f"{self.dag_id}|{self.task_id}"

    @property
    def others(self) -> list[str]:
        """The run's other failed tasks."""
        return [t for t in self.failed_tasks if t != self.task_id]


@dataclass
class Member:
    """One recovered key of a thread: what its summary says about it."""

    task_id: str
    failures: int
    since: float | None


@dataclass
class Resolution:
    """The recovery of everything one message announced: one summary in its thread."""

    dag_id: str
    thread_id: str | None
    thread_ts: str | None
    channel: str | None
    members: list[Member]

    @property
    def tasks(self) -> list[str]:
        return sorted(m.task_id for m in self.members if m.task_id)

    @property
    def failures(self) -> int:
        dag = [m for m in self.members if not m.task_id]
        return dag[0].failures if dag and not self.tasks else sum(m.failures for m in self.members if m.task_id)

    @property
    def since(self) -> float | None:
        starts = [m.since for m in self.members if m.since is not None]
        return min(starts) if starts else None


# ---------------------------------------------------------------------------- records


def empty_dag_state() -> dict[str, Any]:
    """The state of one DAG: its keys, runs, threads and notices (plain JSON data)."""
    return {"keys": {}, "runs": {}, "threads": {}, "notices": {}}


def _new_key(now: float) -> dict[str, Any]:
    return {
        "window_start": None,
        "window_count": 0,
        "posted": False,
        "thread": None,
        "retry_window_start": None,
        "retry_count": 0,
        "retry_posted": False,
        "retry_thread": None,
        "incident_start": None,
        "incident_count": 0,
        "announced": False,
        "resolved": False,
        "last_run_id": None,
        "last_final": None,
        "events": [],
        "updated": now,
    }


def _key(state: dict[str, Any], task_id: str, now: float) -> dict[str, Any]:
    rec = state["keys"].get(task_id)
    if rec is None:
        rec = state["keys"][task_id] = _new_key(now)
    for k, v in _new_key(now).items():  # records written by older versions
        rec.setdefault(k, v)
    rec["updated"] = now
    return rec


def _run(state: dict[str, Any], run_id: str, now: float) -> dict[str, Any]:
    run = state["runs"].get(run_id)
    if run is None:
        run = state["runs"][run_id] = {"posts": 0, "posted": [], "failed": [], "folded": [],
                                       "thread": None}
    run.setdefault("thread", None)
    run["updated"] = now
    return run


def _new_thread(state: dict[str, Any], now: float, *, kind: str, task_id: str,
                run_id: str | None) -> str:
    thread_id = uuid.uuid4().hex[:16]
    seq = 1 + max((t.get("seq", 0) for t in state["threads"].values()), default=0)
    state["threads"][thread_id] = {"ts": None, "channel": None, "status": SENDING, "since": now, "seq": seq,
                                   "kind": kind, "task_id": task_id, "run_id": run_id,
                                   "pending": [], "updated": now}
    return thread_id


def thread_status(state: dict[str, Any], thread_id: str | None, now: float) -> str | None:
    """``sending``, ``sent``, ``failed`` (or lost: a poster that never reported), or ``None``."""
    thread = state["threads"].get(thread_id or "")
    if thread is None:
        return None
    if thread["status"] == SENDING and now - thread.get("since", now) > STALE_SENDING:
        return FAILED
    return thread["status"]


def _seen(rec: dict[str, Any], event_id: str) -> bool:
    if event_id in rec["events"]:
        return True
    rec["events"] = (rec["events"] + [event_id])[-MAX_EVENTS_PER_KEY:]
    return False


def _roll(rec: dict[str, Any], now: float, window: float, prefix: str = "") -> None:
    start = rec[f"{prefix}window_start"]
    if start is None or now - start >= window or now < start:
        rec[f"{prefix}window_start"] = now
        rec["retry_count" if prefix else "window_count"] = 0
        rec[f"{prefix}posted"] = False
        rec[f"{prefix}thread"] = None


def _open_incident(rec: dict[str, Any], now: float) -> None:
    if rec["incident_start"] is None or rec["resolved"]:
        if rec["resolved"]:  # it had recovered, its thread's summary still to come
            rec["incident_count"] = 0
        rec["incident_start"] = now
        rec["resolved"] = False
    rec["incident_count"] += 1


def _add(items: list[str], item: str) -> None:
    if item not in items and len(items) < MAX_TASKS_PER_RUN:
        items.append(item)


def _announced_here(state: dict[str, Any], rec: dict[str, Any], now: float) -> bool:
    """Whether the key is announced in this window (a thread that is not lost)."""
    return bool(rec["posted"]) and thread_status(state, rec["thread"], now) in (SENT, SENDING)


def _thread_fields(state: dict[str, Any], thread_id: str | None) -> dict[str, Any]:
    thread = state["threads"].get(thread_id or "") or {}
    return {"thread_id": thread_id, "thread_ts": thread.get("ts"), "channel": thread.get("channel")}


def _queue(state: dict[str, Any], thread_id: str, item: dict[str, Any]) -> None:
    pending = state["threads"][thread_id]["pending"]
    if len(pending) < MAX_PENDING:
        pending.append(item)
    else:
        pending[-1]["more"] = pending[-1].get("more", 0) + 1


def _reply(state: dict[str, Any], decision: Decision, now: float, item: dict[str, Any]) -> Decision:
    """Send a reply now, or queue it on a thread whose post is still under way."""
    if thread_status(state, decision.thread_id, now) == SENDING:
        _queue(state, decision.thread_id, {**item, "action": decision.action, "count": decision.count})
        decision.reason = f"{decision.reason}; queued until its thread is posted"
        decision.action = QUEUED
    return decision


# ---------------------------------------------------------------------------- failures


def record_failure(state: dict[str, Any], now: float, settings: Settings, *, dag_id: str,
                   task_id: str, run_id: str | None, try_number: int | None = None,
                   map_index: int | None = None, final: bool = True, dag_alert: bool = True,
                   detail: dict[str, Any] | None = None) -> Decision:
    """Count a task failure and decide whether (and how) to post it.

    :param dag_alert: the DAG has safeload's DAG-level failure callback, which lists the
        run's folded tasks; without it a folded task gets an "also failed" line.
    :param detail: what a queued reply needs to be written later (short error, tries,
        log link), as plain data.
    """
    rec = _key(state, task_id, now)
    base = dict(dag_id=dag_id, task_id=task_id, kind="failure", window=settings.window, run_id=run_id)
    event_id = f"failure|{run_id}|{map_index if map_index is not None else -1}|{try_number}"
    if _seen(rec, event_id):
        return Decision(action=DUPLICATE, reason="this failure was reported already", **base)
    _roll(rec, now, settings.window)
    rec["window_count"] += 1
    _open_incident(rec, now)
    run = _run(state, str(run_id), now)
    _add(run["failed"], task_id)
    base.update(count=rec["window_count"], incident_count=rec["incident_count"],
                incident_start=rec["incident_start"], failed_tasks=list(run["failed"]),
                folded=list(run["folded"]))
    item = {"task_id": task_id, "run_id": run_id, **(detail or {})}

    if not _announced_here(state, rec, now):
        if run["posts"] >= settings.task_posts_per_run and task_id not in run["posted"]:
            _add(run["folded"], task_id)
            base["folded"] = list(run["folded"])
            first = run["thread"] if thread_status(state, run["thread"], now) in (SENT, SENDING) else None
            if dag_alert or first is None:
                return Decision(action=FOLD, reason=(
                    f"{run['posts']} task alert(s) already posted for run {run_id}; "
                    "folded into the DAG-level message"), **base)
            rec["posted"], rec["thread"] = True, first
            rec["last_run_id"], rec["last_final"] = run_id, final
            decision = Decision(action=ALSO, reason=(
                f"{run['posts']} task alert(s) already posted for run {run_id}; "
                "named in that message's thread"), **base, **_thread_fields(state, first))
            return _reply(state, decision, now, item)
        thread_id = _new_thread(state, now, kind="failure", task_id=task_id, run_id=run_id)
        rec["posted"], rec["thread"] = True, thread_id
        if task_id not in run["posted"]:
            run["posts"] += 1
            run["posted"].append(task_id)
        run["thread"] = run["thread"] if thread_status(state, run["thread"], now) in (SENT, SENDING) else thread_id
        rec["last_run_id"], rec["last_final"] = run_id, final
        return Decision(action=POST, reason="first failure in the window", thread_id=thread_id, **base)

    thread = _thread_fields(state, rec["thread"])
    if final and rec["last_run_id"] == run_id and rec["last_final"] is False:
        rec["last_final"] = True
        decision = Decision(action=REPEAT, reason="final failure after a 'will retry' alert of the same run",
                            broadcast=True, **base, **thread)
        return _reply(state, decision, now, item)
    if rec["last_run_id"] == run_id:
        return Decision(action=SUPPRESS, reason=f"run {run_id} was alerted already", **base)
    if is_notify_count(rec["window_count"]):
        rec["last_run_id"], rec["last_final"] = run_id, final
        decision = Decision(action=REPEAT, reason="repeat count worth a line", **base, **thread)
        return _reply(state, decision, now, item)
    return Decision(action=SUPPRESS, reason="repeat within the window, counted", **base)


def record_retry(state: dict[str, Any], now: float, settings: Settings, *, dag_id: str,
                 task_id: str, run_id: str | None, try_number: int | None = None,
                 map_index: int | None = None) -> Decision:
    """Count a failed try that will be retried; one post per key and window."""
    rec = _key(state, task_id, now)
    base = dict(dag_id=dag_id, task_id=task_id, kind="retry", window=settings.window, run_id=run_id)
    event_id = f"retry|{run_id}|{map_index if map_index is not None else -1}|{try_number}"
    if _seen(rec, event_id):
        return Decision(action=DUPLICATE, reason="this retry was reported already", **base)
    _roll(rec, now, settings.window, prefix="retry_")
    rec["retry_count"] += 1
    _open_incident(rec, now)
    base.update(count=rec["retry_count"], incident_count=rec["incident_count"],
                incident_start=rec["incident_start"])
    if not rec["retry_posted"] or thread_status(state, rec["retry_thread"], now) == FAILED:
        thread_id = _new_thread(state, now, kind="retry", task_id=task_id, run_id=run_id)
        rec["retry_posted"], rec["retry_thread"] = True, thread_id
        rec["last_run_id"], rec["last_final"] = run_id, False
        return Decision(action=POST, reason="first retry in the window", thread_id=thread_id, **base)
    return Decision(action=SUPPRESS, reason="retries are posted once per window", **base)


def record_dag_failure(state: dict[str, Any], now: float, settings: Settings, *, dag_id: str,
                       run_id: str | None, reason: str | None = None,
                       causing_task: str | None = None) -> Decision:
    """Decide on the DAG-level message of a failed run: it names the run's failed tasks,
    and announces those that no message announced yet."""
    rec = _key(state, DAG_KEY, now)
    run = state["runs"].get(str(run_id)) or {"posts": 0, "posted": [], "failed": [], "folded": [],
                                             "thread": None}
    failed = list(run["failed"]) or ([causing_task] if causing_task else [])
    base = dict(dag_id=dag_id, task_id=DAG_KEY, kind="dag_failure", window=settings.window,
                run_id=run_id, failed_tasks=failed, folded=list(run["folded"]))
    if _seen(rec, f"dag_failure|{run_id}"):
        return Decision(action=DUPLICATE, reason="this run's failure was reported already", **base)
    unannounced = [t for t in run["failed"] if not _announced_here(
        state, state["keys"].get(t) or _new_key(now), now)]
    if reason in (None, "task_failure") and run["failed"] and not unannounced:
        return Decision(action=SKIP, reason="the run's task alerts said it all", **base)
    _roll(rec, now, settings.window)
    rec["window_count"] += 1
    fresh = not rec["incident_count"] or rec["resolved"]
    _open_incident(rec, now)
    # a run failed by its tasks is over when they are; a timeout needs the DAG's success
    rec["tasks_only"] = reason in (None, "task_failure") and (fresh or rec.get("tasks_only", False))
    base.update(count=rec["window_count"], incident_count=rec["incident_count"],
                incident_start=rec["incident_start"], announces=unannounced)
    if not _announced_here(state, rec, now):
        thread_id = _new_thread(state, now, kind="dag_failure", task_id=DAG_KEY, run_id=run_id)
        rec["posted"], rec["thread"] = True, thread_id
        rec["last_run_id"], rec["last_final"] = run_id, True
        # the tasks no message announced become members of this thread
        for task_id in unannounced:
            task = _key(state, task_id, now)
            task["posted"], task["thread"] = True, thread_id
        return Decision(action=POST, reason="first failed run in the window", thread_id=thread_id, **base)
    for task_id in unannounced:  # named in the DAG's thread from now on
        task = _key(state, task_id, now)
        task["posted"], task["thread"] = True, rec["thread"]
    thread = _thread_fields(state, rec["thread"])
    if is_notify_count(rec["window_count"]) or unannounced:
        decision = Decision(action=REPEAT, reason="repeat count worth a line" if not unannounced
                            else "failed tasks that no message named yet", **base, **thread)
        return _reply(state, decision, now, {"task_id": DAG_KEY, "run_id": run_id,
                                             "tasks": unannounced})
    return Decision(action=SUPPRESS, reason="repeat within the window, counted", **base)


def commit(state: dict[str, Any], decision: Decision, now: float, *, ok: bool,
           thread_ts: str | None = None, channel: str | None = None) -> list[dict[str, Any]]:
    """Remember how a decided alert went; return the replies queued on the thread it
    opened, for the caller to send in that thread now that its ``ts`` is known."""
    if decision.stateless or not decision.send:
        return []
    rec = state["keys"].get(decision.task_id)
    thread = state["threads"].get(decision.thread_id or "")
    if rec is None:
        return []
    rec["updated"] = now
    if ok:
        rec["announced"] = True
        if decision.action != POST:
            return []
        pending: list[dict[str, Any]] = []
        if thread is not None:
            thread.update(status=SENT, ts=thread_ts, channel=channel, updated=now)
            pending, thread["pending"] = thread["pending"], []
        for task in state["keys"].values():  # the folded tasks it names are announced now
            if task is not rec and task.get("thread") == decision.thread_id and task["incident_count"]:
                task["announced"] = True
        return pending
    if decision.action == ALSO:
        rec["posted"], rec["thread"] = False, None
    if decision.action != POST:
        return []
    prefix = "retry_" if decision.kind == "retry" else ""
    rec[f"{prefix}posted"], rec[f"{prefix}thread"] = False, None
    if thread is not None:
        thread.update(status=FAILED, pending=[], updated=now)
    for task in state["keys"].values():  # its members are announced nowhere now
        if task.get("thread") == decision.thread_id:
            task["posted"], task["thread"] = False, None
    run = state["runs"].get(str(decision.run_id))
    if decision.kind == "failure" and run is not None:
        if decision.task_id in run["posted"]:
            run["posted"].remove(decision.task_id)
            run["posts"] = max(run["posts"] - 1, 0)
        if run.get("thread") == decision.thread_id:
            run["thread"] = None
    return []


# ---------------------------------------------------------------------------- recovery


def _membership(rec: dict[str, Any]) -> str | None:
    return rec.get("thread") or rec.get("retry_thread")


def _close(rec: dict[str, Any], now: float) -> None:
    events = rec["events"]
    rec.clear()
    rec.update(_new_key(now))
    rec["events"] = events


def _resolution(state: dict[str, Any], dag_id: str, thread_id: str | None,
                members: list[str]) -> Resolution:
    thread = state["threads"].get(thread_id or "") or {}
    keys = state["keys"]
    return Resolution(dag_id=dag_id, thread_id=thread_id, thread_ts=thread.get("ts"),
                      channel=thread.get("channel"),
                      members=[Member(t, keys[t]["incident_count"], keys[t]["incident_start"])
                               for t in members])


def resolve(state: dict[str, Any], now: float, *, dag_id: str,
            task_id: str | None = None) -> list[Resolution]:
    """A success: the task's (or, for a DAG run, every task's) incident is over.

    Returns one :class:`Resolution` per thread whose members have all recovered, for the
    caller to post as one summary in that thread and then :func:`settle`. A key whose
    incident was never announced closes silently; a key whose thread still has members
    failing waits (resolved) for them.
    """
    keys = state["keys"]
    chosen = [task_id] if task_id else list(keys)
    open_keys = [k for k in chosen if k in keys and keys[k]["incident_count"]]
    touched: list[str | None] = []
    for k in open_keys:
        rec = keys[k]
        rec["updated"] = now
        if not rec["announced"]:
            _close(rec, now)
            continue
        rec["resolved"] = True
        if _membership(rec) not in touched:
            touched.append(_membership(rec))
    resolutions = []
    touched.sort(key=lambda tid: state["threads"].get(tid or "", {}).get("seq", 0))
    for thread_id in touched:
        if thread_id is None:  # announced, but its thread is gone: a summary of its own
            resolutions += [_resolution(state, dag_id, None, [k]) for k in open_keys
                            if keys.get(k, {}).get("resolved") and _membership(keys[k]) is None]
            continue
        members = [k for k, r in keys.items() if r["incident_count"] and _membership(r) == thread_id]
        waiting = [k for k in members if not (k == DAG_KEY and keys[k].get("tasks_only") and len(members) > 1)]
        if all(keys[k]["resolved"] for k in waiting):
            for k in members:
                keys[k]["resolved"] = True
            resolutions.append(_resolution(state, dag_id, thread_id, sorted(members)))
    return resolutions


def settle(state: dict[str, Any], resolution: Resolution, now: float, *, ok: bool) -> None:
    """After a summary was posted (``ok``), close its members; otherwise they stay
    resolved and the next success of any of them posts it again."""
    if not ok:
        return
    for member in resolution.members:
        rec = state["keys"].get(member.task_id)
        if rec is not None and rec["resolved"]:
            _close(rec, now)


def once(state: dict[str, Any], now: float, name: str, period: float) -> bool:
    """``True`` at most once per ``period`` seconds for ``name`` (a notice worth saying once)."""
    last = state["notices"].get(name)
    if last is not None and 0 <= now - last < period:
        return False
    state["notices"][name] = now
    return True


# ---------------------------------------------------------------------------- bounds


def prune(state: dict[str, Any], now: float, settings: Settings, *, max_keys: int | None = None,
          max_runs: int | None = None) -> None:
    """Keep one DAG's state small: closed keys, old runs, unreferenced threads go."""
    max_keys = settings.max_keys if max_keys is None else max_keys
    max_runs = settings.max_runs if max_runs is None else max_runs
    keys: dict[str, Any] = state["keys"]
    horizon = max(2 * settings.window, 6 * 3600)
    for k in [k for k, r in keys.items() if not r.get("incident_count") and now - r.get("updated", 0) > horizon]:
        del keys[k]
    if len(keys) > max_keys:
        order = sorted(keys, key=lambda k: (bool(keys[k].get("incident_count")), keys[k].get("updated", 0)))
        for k in order[: len(keys) - max_keys]:
            del keys[k]
    runs: dict[str, Any] = state["runs"]
    for k in [k for k, r in runs.items() if now - r.get("updated", 0) > RUN_HORIZON]:
        del runs[k]
    if len(runs) > max_runs:
        for k in sorted(runs, key=lambda k: runs[k].get("updated", 0))[: len(runs) - max_runs]:
            del runs[k]
    threads: dict[str, Any] = state["threads"]
    used = {r.get(f) for r in keys.values() for f in ("thread", "retry_thread")}
    used |= {r.get("thread") for r in runs.values()}
    for k in [k for k, t in threads.items() if k not in used and now - t.get("updated", 0) > horizon]:
        del threads[k]
    if len(threads) > MAX_THREADS_PER_DAG:
        order = sorted(threads, key=lambda k: (k in used, threads[k].get("updated", 0)))
        for k in order[: len(threads) - MAX_THREADS_PER_DAG]:
            del threads[k]
    notices: dict[str, Any] = state["notices"]
    for k in [k for k, t in notices.items() if now - t > NOTICE_HORIZON]:
        del notices[k]


def has_open_incident(state: dict[str, Any]) -> bool:
    return any(r.get("incident_count") for r in state["keys"].values())
