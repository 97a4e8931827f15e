"""Storm control: what is posted, folded, counted and resolved, and the state file itself."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest
from safeload.alerts import throttle as t
from safeload.alerts.throttle import AlertState


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def state(tmp_path, clock):
    return AlertState(tmp_path / "alerts-state.json", clock=clock)


def fail(
    state, task="load", run="r1", try_number=1, final=True, dag="orders_daily", map_index=None
):
    return state.record_failure(
        dag_id=dag,
        task_id=task,
        run_id=run,
        try_number=try_number,
        final=final,
        map_index=map_index,
    )


def posted(state, decision, ts="1.000001", channel="C1"):
    state.commit(decision, ok=True, thread_ts=ts, channel=channel)
    return decision


def test_first_failure_posts_and_repeats_in_other_runs_are_counted(state, clock):
    first = posted(state, fail(state, run="r1"))
    assert (first.action, first.count, first.reason) == (t.POST, 1, "first failure in the window")
    actions = []
    for i in range(2, 12):
        clock.advance(60)
        d = fail(state, run=f"r{i}")
        actions.append((d.count, d.action, d.thread_ts))
        if d.send:
            posted(state, d, ts=f"9.{i}")
    # 2nd, 3rd, 5th and 10th are announced, in the first message's thread; the rest counted
    assert [(c, a) for c, a, _ in actions] == [
        (2, t.REPEAT),
        (3, t.REPEAT),
        (4, t.SUPPRESS),
        (5, t.REPEAT),
        (6, t.SUPPRESS),
        (7, t.SUPPRESS),
        (8, t.SUPPRESS),
        (9, t.SUPPRESS),
        (10, t.REPEAT),
        (11, t.SUPPRESS),
    ]
    assert {ts for _, a, ts in actions if a == t.REPEAT} == {"1.000001"}


def test_a_new_window_posts_the_full_message_again_as_still_failing(state, clock):
    posted(state, fail(state, run="r1"))
    clock.advance(1800)
    fail(state, run="r2")
    clock.advance(1800)  # the window (from the first failure) is over
    d = fail(state, run="r3")
    assert (d.action, d.count, d.incident_count, d.thread_ts) == (t.POST, 1, 3, None)
    assert d.incident_start == clock.now - 3600


def test_undelivered_post_is_tried_again_on_the_next_failure(state, clock):
    d = fail(state, run="r1")
    state.commit(d, ok=False)
    clock.advance(10)
    again = fail(state, run="r2")
    assert (again.action, again.count) == (t.POST, 2)


def test_same_event_twice_is_a_duplicate(state):
    posted(state, fail(state, run="r1", try_number=1))
    assert fail(state, run="r1", try_number=1).action == t.DUPLICATE


def test_final_failure_after_a_will_retry_alert_of_the_same_run_always_goes_out(state):
    first = posted(state, fail(state, run="r1", try_number=1, final=False))
    assert first.action == t.POST
    second = fail(state, run="r1", try_number=2, final=False)
    assert (second.action, second.reason) == (t.SUPPRESS, "run r1 was alerted already")
    final = fail(state, run="r1", try_number=3, final=True)
    assert (final.action, final.broadcast, final.thread_ts) == (t.REPEAT, True, "1.000001")


def test_mapped_instances_of_one_run_make_one_message(state):
    decisions = [fail(state, run="r1", map_index=i) for i in range(20)]
    assert [d.action for d in decisions] == [t.POST] + [t.SUPPRESS] * 19


def test_second_failing_task_of_a_run_is_folded_into_the_dag_message(state):
    posted(state, fail(state, task="extract", run="r1"))
    load = fail(state, task="load", run="r1")
    check = fail(state, task="check", run="r1")
    assert (load.action, check.action) == (t.FOLD, t.FOLD)
    dag = state.record_dag_failure(dag_id="orders_daily", run_id="r1", reason="task_failure")
    assert dag.action == t.POST
    assert dag.failed_tasks == ["extract", "load", "check"]
    assert dag.folded == ["load", "check"]
    posted(state, dag, ts="5.5")
    # the folded tasks were announced by the DAG message: their success resolves them
    assert state.resolve(dag_id="orders_daily", task_id="load").failures == 1


def test_task_posts_per_run_is_configurable(tmp_path, clock):
    state = AlertState(tmp_path / "s.json", task_posts_per_run=2, clock=clock)
    assert [fail(state, task=x).action for x in ("a", "b", "c")] == [t.POST, t.POST, t.FOLD]


def test_dag_message_is_skipped_when_the_task_alerts_said_it_all(state):
    posted(state, fail(state, task="extract", run="r1"))
    assert (
        state.record_dag_failure(dag_id="orders_daily", run_id="r1", reason="task_failure").action
        == t.SKIP
    )
    # ... but not when the run failed for another reason
    assert (
        state.record_dag_failure(dag_id="orders_daily", run_id="r1", reason="timed_out").action
        == t.DUPLICATE
    )
    assert (
        state.record_dag_failure(dag_id="orders_daily", run_id="r2", reason="timed_out").action
        == t.POST
    )


def test_dag_failures_are_storm_controlled_too(state, clock):
    actions = []
    for i in range(1, 6):
        d = state.record_dag_failure(dag_id="d", run_id=f"r{i}", reason="timed_out")
        actions.append(d.action)
        if d.send:
            posted(state, d)
        clock.advance(60)
    assert actions == [t.POST, t.REPEAT, t.REPEAT, t.SUPPRESS, t.REPEAT]


def test_retries_post_once_per_window_and_open_the_incident(state):
    r1 = posted(
        state, state.record_retry(dag_id="d", task_id="t", run_id="r1", try_number=1), ts="7.7"
    )
    r2 = state.record_retry(dag_id="d", task_id="t", run_id="r2", try_number=1)
    assert (r1.action, r2.action) == (t.POST, t.SUPPRESS)
    res = state.resolve(dag_id="d", task_id="t")
    assert (res.failures, res.thread_ts) == (2, "7.7")


def test_final_failure_after_a_retry_alert_still_gets_the_full_message(state):
    posted(state, state.record_retry(dag_id="d", task_id="t", run_id="r1", try_number=1), ts="7.7")
    d = fail(state, dag="d", task="t", run="r1", try_number=2)
    assert d.action == t.POST


def test_resolve_answers_in_the_failure_thread_and_closes_the_incident(state, clock):
    posted(state, fail(state, run="r1"), ts="1.1", channel="C9")
    clock.advance(120)
    fail(state, run="r2")
    clock.advance(60)
    res = state.resolve(dag_id="orders_daily", task_id="load")
    assert (res.failures, res.thread_ts, res.channel, res.since) == (
        2,
        "1.1",
        "C9",
        clock.now - 180,
    )
    assert state.resolve(dag_id="orders_daily", task_id="load") is None
    # a new failure after the recovery is a first failure again
    assert fail(state, run="r3").action == t.POST


def test_resolve_is_silent_when_nothing_was_ever_posted(state):
    d = fail(state, run="r1")
    state.commit(d, ok=False)
    assert state.resolve(dag_id="orders_daily", task_id="load") is None
    assert state.resolve(dag_id="orders_daily", task_id="never_failed") is None


def test_reopen_after_an_undelivered_resolved_message(state):
    posted(state, fail(state, run="r1"), ts="1.1")
    res = state.resolve(dag_id="orders_daily", task_id="load")
    state.reopen(res)
    again = state.resolve(dag_id="orders_daily", task_id="load")
    assert (again.failures, again.thread_ts) == (1, "1.1")


def test_dag_level_resolve_closes_every_task_of_the_dag(state):
    posted(state, fail(state, task="extract", run="r1"), ts="1.1")
    fail(state, task="load", run="r1")  # folded, never announced
    fail(state, dag="other", task="x", run="r9")
    res = state.resolve(dag_id="orders_daily")
    assert (res.tasks, res.thread_ts, res.failures) == (["extract"], "1.1", 1)
    assert state.resolve(dag_id="orders_daily", task_id="load") is None  # closed silently
    assert state.snapshot()["keys"]["other|x"]["incident_count"] == 1


def test_state_survives_a_new_instance(tmp_path, clock):
    path = tmp_path / "s.json"
    posted(AlertState(path, clock=clock), fail(AlertState(path, clock=clock)))
    assert fail(AlertState(path, clock=clock), run="r2").action == t.REPEAT


def test_corrupt_state_file_is_set_aside(tmp_path, clock, caplog):
    path = tmp_path / "s.json"
    path.write_text("{not json")
    assert fail(AlertState(path, clock=clock)).action == t.POST
    assert (tmp_path / "s.json.corrupt").read_text() == "{not json"
    assert "unreadable" in caplog.text


def test_unusable_state_dir_means_alerts_without_storm_control(tmp_path, clock, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    state = AlertState(blocker / "sub" / "s.json", clock=clock)
    d = fail(state)
    assert (d.action, d.stateless) == (t.POST, True)
    state.commit(d, ok=True)  # no error either
    assert state.resolve(dag_id="orders_daily", task_id="load") is None
    assert "storm control is off" in caplog.text


def test_lock_held_elsewhere_times_out_into_stateless(tmp_path, clock):
    import fcntl

    path = tmp_path / "s.json"
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        d = AlertState(path, clock=clock, lock_timeout=0.2).record_failure(
            dag_id="d", task_id="t", run_id="r"
        )
        assert d.stateless and d.action == t.POST
    finally:
        os.close(fd)


def test_state_file_is_bounded(tmp_path, clock):
    path = tmp_path / "s.json"
    state = AlertState(path, clock=clock, max_keys=20, max_runs=10)
    for i in range(60):
        d = state.record_failure(
            dag_id=f"dag_{i}", task_id="t" * 200, run_id=f"run_{i}" + "r" * 200
        )
        state.commit(d, ok=True, thread_ts="1.1", channel="C1")
        clock.advance(1)
    doc = json.loads(path.read_text())
    assert len(doc["keys"]) <= 20 and len(doc["runs"]) <= 10
    assert path.stat().st_size <= t.MAX_STATE_BYTES
    for _ in range(30):
        state.record_failure(dag_id="d", task_id="t", run_id="r", try_number=_)
    assert len(state.snapshot()["keys"]["d|t"]["events"]) == t.MAX_EVENTS_PER_KEY


def test_old_closed_keys_are_dropped(tmp_path, clock):
    state = AlertState(tmp_path / "s.json", clock=clock)
    posted(state, fail(state))
    state.resolve(dag_id="orders_daily", task_id="load")
    clock.advance(7 * 3600)
    fail(state, dag="other", task="x")
    assert list(state.snapshot()["keys"]) == ["other|x"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param(
            {"window": 0}, "window=0: the storm-control window must be positive", id="window"
        ),
        pytest.param(
            {"task_posts_per_run": 0}, "task_posts_per_run=0: must be at least 1", id="posts"
        ),
    ],
)
def test_bad_settings_are_refused(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        AlertState(tmp_path / "s.json", **kwargs)


def test_default_state_path(tmp_path):
    assert t.default_state_path({"AIRFLOW_HOME": "/opt/af"}) == t.Path(
        "/opt/af/safeload/alerts-state.json"
    )
    assert t.default_state_path(
        {"SAFELOAD_ALERT_STATE_DIR": "/shared", "AIRFLOW_HOME": "/x"}
    ) == t.Path("/shared/alerts-state.json")


def _hammer(path: str, worker: int, n: int) -> None:
    state = AlertState(path, lock_timeout=30)
    for i in range(n):
        state.record_failure(dag_id="d", task_id="t", run_id=f"w{worker}-r{i}")


def test_concurrent_processes_lose_no_count(tmp_path):
    path = str(tmp_path / "s.json")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(path, w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    rec = AlertState(path).snapshot()["keys"]["d|t"]
    assert rec["window_count"] == 100 and rec["incident_count"] == 100
