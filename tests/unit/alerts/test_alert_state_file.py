"""The no-database store: storm control on a JSON file, through AlertState.

What the file must do: keep the state across processes on one machine (locked), stay
bounded, survive a corrupt or old file, and when it cannot be used, let the alert go out
without storm control rather than lose it.
"""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest
from safeload.alerts import store_file as sf
from safeload.alerts import throttle as t
from safeload.alerts.store_file import FileStore
from safeload.alerts.throttle import AlertState


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def fail(state, task="load", run="r1", dag="orders_daily", try_number=1):
    return state.record_failure(dag_id=dag, task_id=task, run_id=run, try_number=try_number)


def test_state_survives_a_new_instance(tmp_path, clock):
    path = tmp_path / "s.json"
    first = AlertState(path, clock=clock)
    first.commit(fail(first), ok=True, thread_ts="1.1", channel="C1")
    again = fail(AlertState(path, clock=clock), run="r2")
    assert (again.action, again.thread_ts) == (t.REPEAT, "1.1")


def test_each_dag_has_its_own_section(tmp_path, clock):
    state = AlertState(tmp_path / "s.json", clock=clock)
    fail(state, dag="a")
    fail(state, dag="b")
    snapshot = state.snapshot()
    assert sorted(snapshot) == ["a", "b"] and list(snapshot["a"]["keys"]) == ["load"]


def test_corrupt_state_file_is_set_aside(tmp_path, clock, caplog):
    path = tmp_path / "s.json"
    path.write_text("{not json")
    assert fail(AlertState(path, clock=clock)).action == t.POST
    assert (tmp_path / "s.json.corrupt").read_text() == "{not json"
    assert "unreadable" in caplog.text


def test_a_file_of_the_first_format_keeps_its_threads(tmp_path, clock):
    path = tmp_path / "s.json"
    record = {"window_start": clock.now - 60, "window_count": 1, "posted": True, "thread_ts": "9.9",
              "channel": "C9", "incident_start": clock.now - 60, "incident_count": 1, "announced": True,
              "last_run_id": "r0", "last_final": True, "events": [], "updated": clock.now - 60}
    path.write_text(json.dumps({"version": 1, "keys": {"orders_daily|load": record},
                                "runs": {"orders_daily|r0": {"posts": 1, "posted": ["load"], "failed": ["load"],
                                                             "folded": [], "updated": clock.now - 60}}}))
    state = AlertState(path, clock=clock)
    assert (fail(state, run="r1").thread_ts) == "9.9"  # the 2nd failure replies in the old thread
    [summary] = state.resolve(dag_id="orders_daily", task_id="load")
    assert (summary.thread_ts, summary.channel, summary.failures) == ("9.9", "C9", 2)


def test_unusable_state_dir_means_alerts_without_storm_control(tmp_path, clock, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    state = AlertState(blocker / "sub" / "s.json", clock=clock)
    d = fail(state)
    assert (d.action, d.stateless) == (t.POST, True)
    state.commit(d, ok=True)  # no error either
    assert state.resolve(dag_id="orders_daily", task_id="load") == []
    assert "storm control is off" in caplog.text


def test_a_broken_record_means_alerts_without_storm_control(tmp_path, clock, caplog):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"version": 2, "dags": {"orders_daily": {"keys": {"load": "garbage"}}}}))
    d = fail(AlertState(path, clock=clock))
    assert (d.action, d.stateless) == (t.POST, True)
    assert "storm control is off for this alert (file state): AttributeError" in caplog.text


def test_lock_held_elsewhere_times_out_into_stateless(tmp_path, clock):
    import fcntl

    path = tmp_path / "s.json"
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        d = AlertState(path, clock=clock, lock_timeout=0.2).record_failure(dag_id="d", task_id="t", run_id="r")
        assert d.stateless and d.action == t.POST
    finally:
        os.close(fd)


def test_state_file_is_bounded(tmp_path, clock):
    path = tmp_path / "s.json"
    state = AlertState(store=FileStore(path, max_dags=10, max_bytes=20_000), clock=clock)
    for i in range(60):
        d = state.record_failure(dag_id=f"dag_{i}", task_id="t" * 200, run_id=f"run_{i}" + "r" * 200)
        state.commit(d, ok=True, thread_ts="1.1", channel="C1")
        clock.now += 1
    doc = json.loads(path.read_text())
    assert len(doc["dags"]) <= 10 and path.stat().st_size <= 20_000
    assert "dag_59" in doc["dags"]  # the DAG just written is kept


def test_default_state_path():
    assert sf.default_state_path({"AIRFLOW_HOME": "/opt/af"}) == sf.Path("/opt/af/safeload/alerts-state.json")
    assert sf.default_state_path({"SAFELOAD_ALERT_STATE_DIR": "/shared", "AIRFLOW_HOME": "/x"}) == sf.Path(
        "/shared/alerts-state.json")


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
    rec = AlertState(path).snapshot()["d"]["keys"]["t"]
    assert rec["window_count"] == 100 and rec["incident_count"] == 100
