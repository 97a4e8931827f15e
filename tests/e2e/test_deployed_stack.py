"""The stack a team deploys, run as docker-compose.yaml and README's "Deploy it" say.

api-server, scheduler, dag-processor and triggerer are separate processes, each with its
own AIRFLOW_HOME, configured from the file's own environment (tests/e2e/compose.py says
what is substituted: hosts, ports and paths only). ``.env`` is written by README's own
block. Metadata and warehouse are separate databases on the tests' PostgreSQL; under
CeleryExecutor two workers take tasks from a local Redis. Everything a user does goes
through the REST API with a token; Slack is tests/slack_server.py over real HTTP.

The tests of one executor tell one story, in order: login, the sample data behind the
unpaused DAGs, a day waiting for its file while clean days run, a storm of bad days
(Slack), the waiting sensor's log, a re-run, a refused day, the page, the alert file. ``make test`` runs part of it on each
executor (the skipped parts say so); ``make e2e`` runs all of it on both.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import generate_orders
import psycopg
import pytest
from airflow_api import AirflowAPI, request
from compose import full
from deployment import Deployment, wait_until
from slack_server import FakeSlack

from safeload.loads.sql import partition_checksum

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

DAG = "orders_daily"
CLEAN, REFUSED = "2024-05-01", "2024-05-04"
STORM_DAYS = [f"2024-06-{d:02d}" for d in range(1, 6)]
ROWS = 500
#: the clean day's rows: a 2.9 MB file, which the stage task COPYs in two streams (helper
#: threads and sessions inside the worker's task process; parallel="auto", decision 046)
BIG = 40_000
# What `make test` runs of the story on each executor; `make e2e` runs every test on both.
FAST = {
    "local": {"login", "sample_data", "waiting", "sensor_log", "rerun", "page", "alert_file"},
    "celery": {"login", "storm"},
}
EXECUTORS = [
    pytest.param(("local", "LocalExecutor", 0), id="local"),
    pytest.param(("celery", "CeleryExecutor", 2), id="celery-2-workers"),
]


@dataclass
class Stack:
    name: str
    deployment: Deployment
    api: AirflowAPI
    slack: FakeSlack | None
    runs: dict[str, str] = field(default_factory=dict)  # what the story triggered: label -> run id

    @property
    def landing(self) -> Path:
        return self.deployment.shared_path("/opt/airflow/landing")

    @property
    def warehouse(self) -> str:
        return self.deployment.env("airflow-scheduler")["AIRFLOW_CONN_WAREHOUSE"]

    def part(self, what: str) -> None:
        if not full() and what not in FAST[self.name]:
            pytest.skip(f"`make e2e` runs this part of the story on {self.name}")

    def trigger(self, label: str, day: str) -> str:
        run_id = f"e2e-{label}-{day}"
        self.api.trigger(DAG, run_id, f"{day}T00:00:00Z")
        self.runs[label] = run_id
        return run_id

    def unpause_with_no_file_for_its_day(self) -> dict:
        """Unpause orders_daily once airflow-init's sample files are gone: the run it
        schedules (the last finished day) waits for a file that never comes."""
        if "scheduled" not in self.runs:
            for f in (self.landing / "orders").glob("*"):
                f.unlink()
            self.api.unpause(DAG)
            scheduled = wait_until("the scheduled run", lambda: [r for r in self.api.runs(DAG)
                                                                 if r["run_type"] == "scheduled"],
                                   120, 2, self.deployment.diagnose)[0]
            self.runs["scheduled"] = scheduled["dag_run_id"]
        return self.api.run(DAG, self.runs["scheduled"])

    def callback_lines(self, run_ids: list[str], task_id: str = "audit_staging") -> list[str]:
        """The alert lines of the task's logs (the shared logs folder), for a failure message."""
        logs = self.deployment.shared_path("/opt/airflow/logs") / f"dag_id={DAG}"
        lines = []
        for run_id in run_ids:
            for log in sorted((logs / f"run_id={run_id}" / f"task_id={task_id}").glob("attempt=*.log")):
                lines += [f"{run_id}: {line[:300]}" for line in log.read_text(errors="replace").splitlines()
                          if "alert" in line.lower() or "slack" in line.lower()]
        return lines

    def rerun(self, label: str, earlier: str) -> str:
        """Run the day of the run labelled ``earlier`` again, as a user does: clear it."""
        run_id = self.runs[earlier]
        self.api.clear(DAG, run_id)
        self.runs[label] = run_id
        return run_id

    def wait(self, run_ids: list[str], timeout: float = 420) -> dict[str, str]:
        return self.api.wait_for_runs(DAG, run_ids, timeout, self.deployment.diagnose)

    def checksum(self, day: str) -> str | None:
        with psycopg.connect(self.warehouse) as conn:
            return partition_checksum(conn, "public.orders", "order_date", day)

    def history(self, day: str) -> list[tuple[str, int | None]]:
        with psycopg.connect(self.warehouse) as conn:
            return conn.execute("select status, rows_loaded from safeload.load_history where partition_value = %s "
                                "order by id", (day,)).fetchall()


@pytest.fixture(scope="module")
def slack():
    with FakeSlack() as server:
        yield server


@pytest.fixture(scope="module", params=EXECUTORS)
def stack(request, pg_server, e2e_root, slack) -> Stack:
    name, executor, workers = request.param
    # the local stack keeps README's admin / admin and no Slack (alerts go to the state
    # volume's file); the Celery stack sets its own password and posts to Slack
    env_extra, shell_env = {}, {}
    if name == "celery":
        env_extra["_AIRFLOW_WWW_USER_PASSWORD"] = "e2e-" + name
        shell_env["AIRFLOW_CONN_SLACK_ALERTS"] = slack.web_api_conn(channel="#data-alerts")
    d = Deployment(e2e_root / name, pg_server, executor, workers, env_extra=env_extra, shell_env=shell_env)
    try:
        api = d.up()
        for dag_id in ("orders_daily", "customers_scd2", "payments_incremental"):
            api.wait_for_dag(dag_id, 240, d.diagnose)
        yield Stack(name, d, api, slack if name == "celery" else None)
    finally:
        d.down()


def test_login_with_the_advertised_password_and_nothing_without_it(stack):
    stack.part("login")
    d = stack.deployment
    assert "login: admin" in d.init_output
    password = "admin" if stack.name == "local" else "e2e-" + stack.name  # README: admin / admin by default
    assert AirflowAPI(d.api.base, "admin", password).token
    wrong = request(f"{d.api.base}/auth/token", method="POST", body={"username": "admin", "password": "not-it"})
    assert wrong[0] == 401
    assert request(f"{d.api.base}/api/v2/dags")[0] == 401
    assert request(f"{d.api.base}/safeload/table?target=public.orders")[0] == 401
    # no component generated a password of its own in its home
    assert not list((d.root / "homes").glob("*/simple_auth_manager_passwords.json.generated"))


def test_unpaused_reference_dags_run_on_the_sample_data(stack):
    """airflow-init's sample data covers the day a DAG schedules once it is unpaused."""
    stack.part("sample_data")
    dags = ("customers_scd2", "payments_incremental")
    for dag_id in dags:
        stack.api.unpause(dag_id)
    scheduled = {dag_id: wait_until(f"{dag_id}'s scheduled run", lambda d=dag_id: stack.api.runs(d), 120, 2,
                                    stack.deployment.diagnose)[0]["dag_run_id"] for dag_id in dags}
    for dag_id, run_id in scheduled.items():
        assert stack.api.wait_for_runs(dag_id, [run_id], 420, stack.deployment.diagnose) == {run_id: "success"}, \
            stack.api.states(dag_id, run_id)
    with psycopg.connect(stack.warehouse) as conn:
        assert conn.execute("select count(*) from public.dim_customers").fetchone()[0] > 0
        assert conn.execute("select count(*) from public.payments").fetchone()[0] > 0


def test_a_day_waiting_for_its_file_holds_up_no_other_day(stack):
    """Unpausing creates the run of the last finished day; its file never comes. Days
    triggered by hand run and finish while that sensor waits (deferred); the clean day's
    file is staged in two COPY streams by the worker's task process."""
    stack.part("waiting")
    scheduled = stack.unpause_with_no_file_for_its_day()
    wait_until("the scheduled run's sensor deferred to the triggerer",
               lambda: stack.api.states(DAG, scheduled["dag_run_id"]).get("wait_for_source") == "deferred",
               180, 2, stack.deployment.diagnose)
    generate_orders.write(stack.landing, dt.date.fromisoformat(CLEAN), BIG, set())
    generate_orders.write(stack.landing, dt.date.fromisoformat(REFUSED), ROWS, set())
    runs = [stack.trigger("first", CLEAN), stack.trigger("good", REFUSED)]
    assert stack.wait(runs) == {r: "success" for r in runs}
    assert stack.api.run(DAG, scheduled["dag_run_id"])["state"] == "running"
    assert stack.api.states(DAG, scheduled["dag_run_id"])["wait_for_source"] == "deferred"
    assert stack.history(CLEAN) == [("published", BIG)]
    stage = stack.api.log(DAG, runs[0], "stage")
    assert f"{BIG} rows in 2 parallel COPY streams" in stage, stage[-3000:]


def test_a_storm_across_two_workers_is_one_message_and_one_thread(stack):
    """A producer's bad week, backfilled at once: every day's gate fails, on both workers.
    Storm control folds the failures into one Slack message and puts the repeats in its
    thread (docs/alerts.md): the workers must share the storm state. It comes before any
    other failure of the gate in the story, so it opens the incident."""
    stack.part("storm")
    if stack.slack is None:
        pytest.skip("this stack has no Slack connection")
    stack.unpause_with_no_file_for_its_day()
    for day in STORM_DAYS:
        generate_orders.write(stack.landing, dt.date.fromisoformat(day), ROWS, {"duplicates"})
    before = len(stack.slack.posts())
    runs = [stack.trigger("storm", day) for day in STORM_DAYS]
    assert set(stack.wait(runs, timeout=600).values()) == {"failed"}
    workers = {p.name: p.log.read_text(errors="replace").count("execute_workload") for p in
               stack.deployment.processes if p.name.startswith("airflow-worker")}
    assert len(workers) == 2 and all(workers.values()), f"tasks per worker: {workers}"

    def storm() -> list:
        return stack.slack.posts()[before:]

    counts: list[int] = []

    def settled() -> bool:  # the message and a reply, then 5 s (polls) without a new post
        counts.append(len(storm()))
        return counts[-1] >= 2 and len(counts) > 5 and counts[-6] == counts[-1]

    wait_until("the storm's Slack message, a reply in its thread, then quiet", settled, 120, 1,
               lambda: f"posts: {[(p.text[:150], p.thread_ts) for p in storm()]}; "
                       f"what the gates' callbacks logged: {stack.callback_lines(runs)}")
    posts = storm()
    top = [p for p in posts if not p.thread_ts]
    assert len(top) == 1 and "orders_daily.audit_staging" in top[0].text, [(p.text[:200], p.thread_ts) for p in posts]
    thread = "1700000000.%06d" % _ts_of(stack.slack, top[0])
    assert {p.thread_ts for p in posts if p.thread_ts} == {thread}, [(p.text[:200], p.thread_ts) for p in posts]
    # the workers shared the storm through PostgreSQL (the warehouse), not through a disk
    with psycopg.connect(stack.warehouse) as conn:
        keys = conn.execute("select name from safeload.alert_state where dag_id = %s and kind = 'keys'",
                            (DAG,)).fetchall()
    assert any("audit_staging" in name for (name,) in keys), keys
    assert not (stack.deployment.shared_path("/opt/airflow/state") / "alerts-state.json").exists()


def test_the_waiting_sensor_log_is_served_to_the_ui(stack):
    """The UI reads a deferred task's log from the triggerer's log server, which checks the
    request against the shared [api] secret_key."""
    stack.part("sensor_log")
    log = stack.api.log(DAG, stack.runs["scheduled"], "wait_for_source")
    triggerer = stack.deployment.env("airflow-triggerer")["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]
    sources = log.split("::endgroup::", 1)[0]
    assert f":{triggerer}/log/" in sources, log[:3000]  # read from the triggerer's log server
    assert "does not exist yet" in log.split("::endgroup::", 1)[1], log[-3000:]


def test_a_rerun_publishes_the_same_partition_and_a_refused_day_leaves_its_own_alone(stack):
    stack.part("rerun")
    before = {day: stack.checksum(day) for day in (CLEAN, REFUSED)}
    assert all(before.values()), before
    generate_orders.write(stack.landing, dt.date.fromisoformat(REFUSED), ROWS, {"duplicates", "out_of_range"})
    runs = [stack.rerun("rerun", "first"), stack.rerun("refused", "good")]
    states = stack.wait(runs)
    assert states == {runs[0]: "success", runs[1]: "failed"}
    tasks = stack.api.states(DAG, runs[1])
    assert tasks["audit_staging"] == "failed" and tasks["publish"] == "upstream_failed", tasks
    assert {day: stack.checksum(day) for day in (CLEAN, REFUSED)} == before
    assert stack.history(CLEAN) == [("published", BIG), ("published", BIG)]
    assert stack.history(REFUSED)[0] == ("published", ROWS)


def test_the_page_shows_the_refused_day(stack):
    stack.part("page")
    if "refused" not in stack.runs:
        pytest.skip("the refused day is triggered by the test before")
    status, page = stack.api.get("/safeload/table?target=public.orders")
    assert status == 200, page[:500]
    assert REFUSED in page and "refused" in page, page[:3000]
    # the gate's task: its report says what it refused
    status, task = stack.api.get(f"/safeload/task?dag_id={DAG}&run_id={stack.runs['refused']}&task_id=audit_staging")
    assert status == 200, task[:500]
    assert REFUSED in task and "refused" in task, task[-3000:]
    status, overview = stack.api.get("/safeload/")
    assert status == 200 and "public.orders" in overview


def test_alerts_without_slack_land_on_the_shared_volume(stack):
    stack.part("alert_file")
    if stack.slack is not None:
        pytest.skip("this stack posts to Slack")
    if "refused" not in stack.runs:
        pytest.skip("the refused day is triggered by the test before")
    alerts = stack.deployment.shared_path("/opt/airflow/state") / "alerts.jsonl"
    lines = [json.loads(line) for line in alerts.read_text().splitlines()] if alerts.exists() else []
    assert any(stack.runs["refused"] in json.dumps(a) for a in lines), lines[-3:]
    homes = stack.deployment.root / "homes"
    assert not [p for p in homes.glob("*/safeload/alerts*")], "an alert landed in a component's home"


def _ts_of(slack: FakeSlack, post) -> int:
    """The ts the fake Slack gave ``post``: it numbers the delivered chat.postMessage posts from 1."""
    return [r for r in slack.requests if r.endpoint == "chat.postMessage" and r.delivered].index(post) + 1
