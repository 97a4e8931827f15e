"""Alert state shared by workers on different machines, through PostgreSQL.

Each "machine" is an OS process with its own AIRFLOW_HOME (tests/integration/alerts/
alert_worker.py), as separate containers or Celery workers have; they share only the
warehouse database and Slack (the local server of tests/slack_server.py, real HTTP).
They fire the callbacks of different tasks of one DAG run at the same moment: the
channel gets one message, and everything after it (the other failed tasks, the repeats
of a later run, the one recovery summary, fired on other machines than the failures)
lands in that message's thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slack_server import FAST_RETRIES

HERE = Path(__file__).resolve().parent
TASKS = ("extract_a", "extract_b", "load_c", "load_d")
DAG_ID = "safeload_shared_state"
START_SECONDS = 120  # importing Airflow in four processes at once on a loaded 2-core machine

pytestmark = pytest.mark.timeout(300)


class Machines:
    """Worker processes, each with its own AIRFLOW_HOME, that fire callbacks in phases."""

    def __init__(self, where: Path, env: dict[str, str], phases_by_machine: list[list[list[dict]]]) -> None:
        self.where = where
        self.names = [f"machine{i}" for i in range(len(phases_by_machine))]
        self.procs = []
        for name, phases in zip(self.names, phases_by_machine):
            home = where / name / "airflow"
            home.mkdir(parents=True)
            job = where / f"{name}.json"
            job.write_text(json.dumps({"name": name, "dir": str(where), "phases": phases}))
            self.procs.append(subprocess.Popen(
                [sys.executable, str(HERE / "alert_worker.py"), str(job)],
                env={**env, "AIRFLOW_HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            ))
        self._wait([where / f"{n}.ready" for n in self.names], START_SECONDS)

    def _wait(self, paths: list[Path], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not all(p.exists() for p in paths):  # bounded by the deadline
            dead = [p for p in self.procs if p.poll() not in (None, 0)]
            if dead or time.monotonic() > deadline:
                self.stop()
                out = b"\n".join(p.stdout.read()[-3000:] for p in self.procs if p.stdout)
                raise AssertionError(f"machines not done: {[p.name for p in paths if not p.exists()]}\n"
                                     f"{out.decode(errors='replace')}")
            time.sleep(0.01)

    def phase(self, i: int) -> None:
        """All machines fire phase ``i``'s callbacks at the same moment; wait for them."""
        (self.where / f"go.{i}").write_text("go")
        self._wait([self.where / f"{n}.done.{i}" for n in self.names], 120)

    def results(self) -> list[dict]:
        return [json.loads(line) for n in self.names
                for line in (self.where / f"{n}.results").read_text().splitlines()]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)


@pytest.fixture
def machine_env(pg_uri, slack_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SAFELOAD_ALERT"))}
    env.update(FAST_RETRIES)
    env.update({
        "AIRFLOW_CONN_WAREHOUSE": pg_uri,
        "AIRFLOW_CONN_SLACK_ALERTS": slack_server.web_api_conn(channel="#data-alerts"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__BASE_URL": "https://airflow.example.com",
    })
    return env


def call(callback: str, task_id: str, run_id: str) -> dict:
    return {"callback": callback, "task_id": task_id, "run_id": run_id}


def test_callbacks_on_separate_machines_make_one_message_and_one_thread(machine_env, slack_server, tmp_path):
    # machine i: the failure of task i in run 1, its repeat in run 2, and the recovery of
    # task i+1 in run 3: every "resolved" is fired on another machine than the failure
    phases = [[[call("failure", t, "run_1")], [call("failure", t, "run_2")],
               [call("success", TASKS[(i + 1) % len(TASKS)], "run_3")]] for i, t in enumerate(TASKS)]
    machines = Machines(tmp_path / "machines", machine_env, phases)
    try:
        for i in range(3):
            machines.phase(i)
    finally:
        machines.stop()

    posts = slack_server.posts("chat.postMessage")
    top = [p for p in posts if p.thread_ts is None]
    assert len(top) == 1, [p.text for p in top]
    [first] = top
    ts = "1700000000.000001"
    assert first.text.startswith(f"Failed: {DAG_ID}.") and first.body["channel"] == "#data-alerts"
    replies = [p for p in posts if p is not first]
    assert replies and all(p.thread_ts == ts for p in replies)
    thread_text = "\n".join(p.all_text() for p in posts)
    for task_id in TASKS:  # every failed task is named in the message or its thread
        assert f"{DAG_ID}.{task_id}" in thread_text, task_id
    assert sum("failed again, 2nd time" in p.all_text() for p in replies) == len(TASKS)  # run 2's repeats
    resolved = [p for p in replies if "Resolved" in p.text]
    assert len(resolved) == 1, [p.text for p in resolved]  # one summary, not four
    assert all(f"`{t}` (" in resolved[0].all_text() for t in TASKS)
    # the state lived in the database, not on any machine's disk
    assert not list((tmp_path / "machines").rglob("alerts-state.json"))
    outcomes = machines.results()
    assert sum(r["sent"] for r in outcomes if r["call"]["callback"] == "success") == 1


def test_resolved_on_another_machine_finds_the_thread(machine_env, slack_server, tmp_path):
    phases = [[[call("failure", "load_c", "run_1")], []], [[], [call("success", "load_c", "run_2")]]]
    machines = Machines(tmp_path / "machines", machine_env, phases)
    try:
        machines.phase(0)
        machines.phase(1)
    finally:
        machines.stop()
    failure, resolved = slack_server.posts("chat.postMessage")
    assert failure.thread_ts is None and resolved.thread_ts == "1700000000.000001"
    assert resolved.text.startswith(f"Resolved: {DAG_ID}.load_c succeeded on try 1 of 1 after 1 failure")
