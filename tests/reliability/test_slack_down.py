"""Slack down for a whole run: refused connections, HTTP 500, 429 and a Slack that hangs.

Against the local Slack of tests/slack_server.py (real HTTP on 127.0.0.1), scripted to
fail *every* request. What must hold: the alerting never changes a task's outcome or
exception, no callback raises, and every alert is tried at most ``1 + max_retries`` times,
counted on the server's side (for "refused", nothing can reach it: the attempts are the
client's count and its log).

Fast (``make test``): the notifiers are called as Airflow calls them in a failed run (the
failing task's failure callback, the other task's success callback, the DAG's failure
callback), with contexts built by hand. Full (``make reliability``): one real
``dag.test()`` run per failure mode, plus one with Slack up; the task states and
the exception a later callback sees must be the same in all of them.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from reliability.figures import FULL, record

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from slack_server import FakeSlack, RateLimited, Slow, Status  # noqa: E402

HERE = Path(__file__).resolve().parent
CONN_ENV = "AIRFLOW_CONN_SLACK_ALERTS"
MAX_RETRIES = 2
POLICY = {
    "SAFELOAD_ALERT_MAX_RETRIES": str(MAX_RETRIES),
    "SAFELOAD_ALERT_BACKOFF": "0.05",
    "SAFELOAD_ALERT_MAX_BACKOFF": "0.2",
    "SAFELOAD_ALERT_TIMEOUT": "0.5",  # the hanging Slack: each attempt gives up after 0.5 s
    "SAFELOAD_ALERT_RETRY_AFTER_CAP": "0.2",  # a 429's Retry-After (1 s) is honoured up to 0.2 s
    "SAFELOAD_ALERT_BUDGET": "10",
}
MODES = {
    "refused": None,  # the connection points at a port nothing listens on
    "http-500": Status(500),
    "http-429": RateLimited(retry_after=1),
    "slow": Slow(10),
}
T0 = datetime(2024, 5, 2, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def alert_env(tmp_path, monkeypatch):
    for name, value in POLICY.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SAFELOAD_ALERT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SAFELOAD_ALERT_FILE", str(tmp_path / "alerts.jsonl"))
    for name in ("SAFELOAD_ALERT_RETRIES", "SAFELOAD_ALERT_WINDOW", "SAFELOAD_ALERT_LISTENER_TAGS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slack_down(server: FakeSlack, mode: str, monkeypatch) -> None:
    """Point the alert connection at the server and make every request fail in ``mode``."""
    if mode == "refused":
        monkeypatch.setenv(CONN_ENV, server.webhook_conn().replace(f":{server.port}", f":{_closed_port()}"))
    else:
        monkeypatch.setenv(CONN_ENV, server.webhook_conn())
        server.always(MODES[mode], times=200)


def _contexts(run_id: str, error: Exception):
    from airflow.sdk import DAG

    dag = DAG("orders_daily", schedule=None, start_date=T0)
    dag_run = SimpleNamespace(dag_id="orders_daily", run_id=run_id, logical_date=T0 - timedelta(days=1),
                              start_date=T0, end_date=None, run_after=T0)

    def ti_context(task_id, state, exception):
        task = SimpleNamespace(task_id=task_id, owner="data-platform", retries=0, dag=dag)
        ti = SimpleNamespace(dag_id="orders_daily", task_id=task_id, run_id=run_id, try_number=1, max_tries=0,
                             state=state, start_date=T0, end_date=T0 + timedelta(seconds=30), map_index=-1,
                             log_url=f"http://airflow.local/dags/orders_daily/runs/{run_id}/tasks/{task_id}")
        ctx = {"dag": dag, "task": task, "ti": ti, "task_instance": ti, "dag_run": dag_run, "run_id": run_id,
               "logical_date": dag_run.logical_date}
        if exception is not None:
            ctx["exception"] = exception
        return ctx

    failed = ti_context("load", "failed", error)
    succeeded = ti_context("report", "success", None)
    dag_failed = ti_context("load", "failed", None)
    dag_failed.pop("exception", None)
    dag_failed["reason"] = "task_failure"
    return failed, succeeded, dag_failed


def test_slack_down_notifier_calls_change_nothing_and_retry_within_bounds(alert_env, monkeypatch):
    from safeload.alerts import notifiers as n

    totals = {"sends": 0, "attempts": 0, "requests": 0}
    for mode in MODES:
        with FakeSlack() as server:
            _slack_down(server, mode, monkeypatch)
            error = ValueError("bad row 1042")
            failed, succeeded, dag_failed = _contexts(f"scheduled__{mode}", error)
            task_alert, recovery, dag_alert = n.send_failure_alert(), n.send_recovery_alert(), n.send_failure_alert()
            task_alert(failed)  # none of these may raise
            recovery(succeeded)
            dag_alert(dag_failed)
            assert failed["exception"] is error and str(error) == "bad row 1042", mode
            assert (failed["ti"].state, succeeded["ti"].state) == ("failed", "success"), mode
            results = [x.last_result for x in (task_alert, recovery, dag_alert) if x.last_result is not None]
            assert results, f"{mode}: nothing was sent"
            for r in results:
                assert (r.ok, r.transport, r.attempts) == (False, "webhook", 1 + MAX_RETRIES), (mode, r)
            attempts = sum(r.attempts for r in results)
            received = len(server.requests)
            if mode == "refused":
                # nothing reaches a closed port: the attempts are the client's own count
                assert received == 0 and all("Connection refused" in r.error for r in results)
            else:
                assert received == attempts, f"{mode}: the server saw {received} requests for {attempts} attempts"
            print(f"{mode}: {len(results)} sends, {attempts} attempts, server received {received}, "
                  f"{max(r.elapsed for r in results):.2f} s longest send")
            totals["sends"] += len(results)
            totals["attempts"] += attempts
            totals["requests"] += received
    record("slack down (notifier calls)", trials=totals["sends"], faults=totals["attempts"],
           held=f"refused/500/429/slow: no callback raised, task state and exception unchanged; every send "
                f"{1 + MAX_RETRIES} attempts, no more ({totals['requests']} requests reached the server)")


# --------------------------------------------------------------------------- full: real DAG runs

@pytest.fixture(scope="module")
def slack_dag(tmp_path_factory):
    """The DAG of slack_dags.py in a DAG bundle of its own, and Airflow's metadata DB."""
    import importlib.util

    from airflow.utils import db

    db.initdb()
    bundle = tmp_path_factory.mktemp("slack-down-bundle")
    shutil.copyfile(HERE / "slack_dags.py", bundle / "slack_dags.py")
    spec = importlib.util.spec_from_file_location("safeload_reliability_slack_dags", bundle / "slack_dags.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return bundle, module


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}


@pytest.mark.skipif(not FULL, reason="a dag.test() run per failure mode: make reliability only")
@pytest.mark.timeout(600)
def test_slack_down_for_whole_dag_runs(slack_dag, alert_env, monkeypatch):
    bundle, module = slack_dag
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([{
        "name": "safeload-reliability-slack", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(bundle)}}]))
    outcomes, attempts = {}, {}
    for mode in ["slack-up", *MODES]:
        module.SEEN.clear()
        # a fresh storm-control state per run: each run's failure is a first failure
        monkeypatch.setenv("SAFELOAD_ALERT_STATE_DIR", str(alert_env / f"state-{mode}"))
        with FakeSlack() as server:
            if mode == "slack-up":
                monkeypatch.setenv(CONN_ENV, server.webhook_conn())
            else:
                _slack_down(server, mode, monkeypatch)
            dag_run = module.slack_down.test()
            seen = [(s["task_id"], s["state"], type(s["exception"]).__name__, str(s["exception"] or ""))
                    for s in sorted(module.SEEN, key=lambda s: s["task_id"])]
            outcomes[mode] = (str(getattr(dag_run.state, "value", dag_run.state)), _states(dag_run), seen)
            attempts[mode] = len(server.requests)
            if mode == "slack-up":
                assert len(server.posts()) == 1, "with Slack up the failure is posted once"
            elif mode == "refused":
                assert attempts[mode] == 0
            else:
                # one alert (the failed task's), tried 1 + max_retries times; the recovery
                # callback of the other task has no open failure to resolve
                assert attempts[mode] == 1 + MAX_RETRIES, (mode, attempts[mode])
    up = outcomes["slack-up"]
    assert up[0] == "failed" and up[1] == {"load": "failed", "report": "success"}
    assert ("load", "failed", "ValueError", module.ERROR) in up[2]
    for mode in MODES:
        assert outcomes[mode] == up, f"{mode}: the run's outcome changed: {outcomes[mode]} vs {up}"
    print(f"requests received per run: {attempts}")
    record("slack down (dag.test runs)", trials=len(MODES) + 1, faults=len(MODES),
           held="states and exception as with Slack up (run failed: load failed, report success); "
                f"requests reached the server: {'/'.join(str(attempts[m]) for m in attempts)} "
                f"({'/'.join(attempts)}), at most {1 + MAX_RETRIES} per alert")
