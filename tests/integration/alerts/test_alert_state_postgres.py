"""The shared alert state on a real PostgreSQL: table on first use, the same decisions as
the file, concurrent processes folding into one message, a DAG lock that waits at most
``lock_timeout``, bounded size, clear errors, and which store a deployment gets."""

from __future__ import annotations

import logging
import multiprocessing
import socket

import psycopg
import pytest
from safeload.alerts import settings
from safeload.alerts import throttle as t
from safeload.alerts.store_file import FileStore
from safeload.alerts.store_postgres import LOCK_NAMESPACE, TABLE, PostgresStore
from safeload.alerts.throttle import AlertState


def store_for(uri: str, lock_timeout: float = 5.0) -> PostgresStore:
    return PostgresStore(lambda: psycopg.connect(uri), where="the test database", lock_timeout=lock_timeout)


def fail(state, task="load", run="r1", dag="orders_daily", try_number=1, dag_alert=True):
    return state.record_failure(dag_id=dag, task_id=task, run_id=run, try_number=try_number, dag_alert=dag_alert)


def test_table_is_created_on_first_use_in_the_safeload_schema(pg, pg_uri):
    state = AlertState(store=store_for(pg_uri))
    assert fail(state).action == t.POST
    rows = pg.execute(f"select dag_id, kind, name from {TABLE} order by kind, name").fetchall()
    assert [(d, k) for d, k, _ in rows] == [("orders_daily", "keys"), ("orders_daily", "runs"),
                                           ("orders_daily", "threads")]
    assert [n for _, k, n in rows if k != "threads"] == ["load", "r1"]


def _scenario(state: AlertState) -> list[str]:
    actions = []
    first = fail(state, task="extract")
    actions.append(first.action)
    state.commit(first, ok=True, thread_ts="1.1", channel="C1")
    for task in ("load", "check"):
        d = fail(state, task=task, dag_alert=task == "check")
        actions.append(d.action)
        if d.send:
            state.commit(d, ok=True, thread_ts="1.2", channel="C1")
    dag_message = state.record_dag_failure(dag_id="orders_daily", run_id="r1", reason="task_failure")
    actions.append(dag_message.action)
    state.commit(dag_message, ok=True, thread_ts="2.2", channel="C1")
    actions.append(fail(state, task="extract", run="r2").action)
    actions += [f"{s.thread_ts}:{','.join(s.tasks)}" for s in state.resolve(dag_id="orders_daily")]
    return actions


def test_decisions_are_the_same_as_with_the_file(pg_uri, tmp_path):
    on_postgres = _scenario(AlertState(store=store_for(pg_uri)))
    on_file = _scenario(AlertState(store=FileStore(tmp_path / "s.json")))
    assert on_postgres == on_file == [t.POST, t.ALSO, t.FOLD, t.POST, t.REPEAT, "1.1:extract,load", "2.2:check"]


def _fire(uri: str, task: str, barrier, results) -> None:
    barrier.wait(timeout=30)
    state = AlertState(store=store_for(uri, lock_timeout=30))
    d = fail(state, task=task, dag_alert=False)
    if d.action == t.POST:
        queued = state.commit(d, ok=True, thread_ts="1.1", channel="C1")
        results.put((task, d.action, len(queued)))
    else:
        results.put((task, d.action, d.thread_ts))
        if d.send:
            state.commit(d, ok=True, thread_ts="1.5", channel="C1")


def test_concurrent_processes_fold_into_one_message_and_one_thread(pg_uri):
    ctx = multiprocessing.get_context("fork")
    tasks = [f"task_{i}" for i in range(6)]
    barrier, results = ctx.Barrier(len(tasks)), ctx.Queue()
    procs = [ctx.Process(target=_fire, args=(pg_uri, task, barrier, results)) for task in tasks]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    outcomes = [results.get(timeout=5) for _ in tasks]
    posts = [o for o in outcomes if o[1] == t.POST]
    assert len(posts) == 1, outcomes
    others = [o for o in outcomes if o[1] != t.POST]
    # each other failure either replied in the thread or waited for it and went with the post
    assert all(action in (t.ALSO, t.QUEUED) for _, action, _ in others)
    assert all(ts == "1.1" for _, action, ts in others if action == t.ALSO)
    assert posts[0][2] == sum(1 for o in others if o[1] == t.QUEUED)
    state = AlertState(store=store_for(pg_uri)).snapshot()["orders_daily"]
    assert sorted(state["runs"]["r1"]["failed"]) == tasks
    assert len({state["keys"][task]["thread"] for task in tasks}) == 1  # one thread for all


def test_a_dag_lock_held_too_long_means_alerts_without_storm_control(pg_uri, caplog):
    state = AlertState(store=store_for(pg_uri, lock_timeout=0.3))
    fail(state)  # the table exists now
    with psycopg.connect(pg_uri) as holder:
        holder.execute("select pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_NAMESPACE, "orders_daily"))
        d = fail(state, run="r2")
        other_dag = fail(state, dag="other")
    assert (d.action, d.stateless) == (t.POST, True)
    assert "held this DAG's alert state longer than the lock timeout" in caplog.text
    assert not other_dag.stateless  # only that DAG's state was locked


def test_an_unreachable_database_means_alerts_without_storm_control(caplog):
    d = fail(AlertState(store=store_for(unreachable())))
    assert (d.action, d.stateless) == (t.POST, True)
    assert "cannot connect to the test database" in caplog.text


def test_an_unreachable_database_hands_over_to_this_machines_file(tmp_path, caplog):
    def state():
        return AlertState(store=store_for(unreachable()), fallback=FileStore(tmp_path / "s.json"))

    first = fail(state())
    assert (first.action, first.stateless) == (t.POST, False)
    state().commit(first, ok=True, thread_ts="1.1", channel="C1")  # the same store within one alert
    again = fail(state(), run="r2")
    assert (again.action, again.thread_ts) == (t.REPEAT, "1.1")  # repeats still fold per machine
    assert "Shared alert state unavailable (the test database); " in caplog.text


def unreachable() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://nobody@127.0.0.1:{port}/nothing?connect_timeout=2"


def test_missing_grants_are_explained(pg, pg_uri, caplog):
    fail(AlertState(store=store_for(pg_uri)))  # the table exists, owned by the superuser
    pg.execute("drop role if exists alerts_nobody")
    pg.execute("create role alerts_nobody login")
    pg.execute("grant usage on schema safeload to alerts_nobody")
    try:
        uri = pg_uri.replace("postgres@", "alerts_nobody@")
        d = fail(AlertState(store=store_for(uri)))
        assert d.stateless
        assert "grant the role SELECT, INSERT, UPDATE, DELETE on safeload.alert_state" in caplog.text
    finally:
        pg.execute("drop owned by alerts_nobody")
        pg.execute("drop role alerts_nobody")


def test_dags_untouched_for_two_weeks_are_swept(pg, pg_uri):
    state = AlertState(store=store_for(pg_uri))
    fail(state, dag="old")
    pg.execute(f"update {TABLE} set updated_at = now() - interval '15 days' where dag_id = 'old'")
    fail(state, dag="new")
    assert [r[0] for r in pg.execute(f"select distinct dag_id from {TABLE}")] == ["new"]


def test_a_dags_state_is_bounded(pg, pg_uri):
    state = AlertState(store=store_for(pg_uri), max_keys=5, max_runs=3)
    for i in range(12):
        d = fail(state, task=f"t{i}", run=f"r{i}")
        state.commit(d, ok=True, thread_ts=f"1.{i}", channel="C1")
    counts = dict(pg.execute(f"select kind, count(*) from {TABLE} group by kind").fetchall())
    assert counts["keys"] <= 5 and counts["runs"] <= 3


# ---------------------------------------------------------------------------- which store


@pytest.fixture
def no_state_settings(monkeypatch):
    for name in ("AIRFLOW_CONN_WAREHOUSE", "AIRFLOW_CONN_ALERT_STATE", "AIRFLOW__SAFELOAD__ALERT_STATE_CONN_ID"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_warehouse_connection_holds_the_state_by_default(no_state_settings, pg_uri):
    no_state_settings.setenv("AIRFLOW_CONN_WAREHOUSE", pg_uri)
    store = settings.state_store()
    assert (store.name, store.where) == ("postgres", "connection 'warehouse'")
    AlertState(store=store).record_failure(dag_id="d", task_id="t", run_id="r")
    assert "d" in store.snapshot()


def test_a_named_connection_holds_the_state(no_state_settings, pg_uri):
    no_state_settings.setenv("AIRFLOW_CONN_ALERT_STATE", pg_uri)
    no_state_settings.setenv("AIRFLOW_CONN_WAREHOUSE", pg_uri)
    no_state_settings.setenv("AIRFLOW__SAFELOAD__ALERT_STATE_CONN_ID", "alert_state")
    assert settings.state_store().where == "connection 'alert_state'"
    assert settings.state_store(conn_id="warehouse").where == "connection 'warehouse'"  # the notifier's wins


def test_without_a_database_the_state_is_a_file(no_state_settings, tmp_path, pg_uri, caplog):
    assert settings.state_store().name == "file"
    no_state_settings.setenv("AIRFLOW_CONN_WAREHOUSE", pg_uri)
    no_state_settings.setenv("AIRFLOW__SAFELOAD__ALERT_STATE_CONN_ID", "file")
    assert settings.state_store().name == "file"
    assert settings.state_store(path=tmp_path / "x.json").where == str(tmp_path / "x.json")
    no_state_settings.setenv("AIRFLOW__SAFELOAD__ALERT_STATE_CONN_ID", "no_such_connection")
    with caplog.at_level(logging.WARNING):
        assert settings.state_store().name == "file"
    assert "connection 'no_such_connection' cannot be used" in caplog.text
