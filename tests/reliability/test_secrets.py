"""Secrets never leave: connection passwords and Slack tokens are searched for in
everything a failing run produces.

A real ``dag.test()`` runs safeload's operators with distinctive secrets, and every task
fails in a way that surfaces a connection error, each with a Slack failure alert:

* a load whose warehouse connection points at a closed port (the alert goes through a
  Slack webhook whose secret path the local Slack server answers with HTTP 500);
* a load whose password is wrong: a real ``password authentication failed`` from
  PostgreSQL (a scram-sha-256 line is added to the test server's pg_hba.conf for one
  role and removed afterwards); the alert goes to the Web API with a token the
  server answers HTTP 401;
* a contract check reading a table through the same wrong password; the alert's token
  is refused as ``invalid_auth``.

Then the secrets (as given, and URL-quoted, as they sit in a connection URI) are
searched in: the captured log records and stdout/stderr, the task log files under
AIRFLOW_HOME, every text value of Airflow's metadata database (XCom, task instances,
rendered fields, ...), every request the Slack server received, the local alert file,
and the exceptions the tasks failed with. The CLI gets the same treatment.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from reliability.figures import record

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from slack_server import FakeSlack, Status  # noqa: E402

pytestmark = pytest.mark.timeout(300)

PASSWORD_PORT = "Pw!Leak/Canary%Port#7q"  # URL-special characters: the URI holds it quoted
PASSWORD_AUTH = "Pw!Leak:Canary@Auth 9z"
RIGHT_PASSWORD = "the-right-one-4"
TOKEN = "xoxb-111111111111-2222222222222-LeakCanaryTok3nZ"
ROLE = "safeload_secret_probe"

DAG_FILE = textwrap.dedent('''
    """Tasks that fail on connections, for tests/reliability/test_secrets.py."""
    import json
    import os
    import traceback
    from datetime import datetime

    from airflow.sdk import DAG

    from safeload.alerts.notifiers import send_failure_alert
    from safeload.operators.contract import SchemaContractCheckOperator
    from safeload.operators.load import PartitionOverwriteOperator


    def keep_exception(context):
        e = context.get("exception")
        with open(os.environ["SECRETS_TEST_EXCEPTIONS"], "a") as fh:
            fh.write(json.dumps({"task": context["ti"].task_id, "str": str(e), "repr": repr(e),
                                 "tb": "".join(traceback.format_exception(e)) if e else ""}) + "\\n")


    with DAG("safeload_secrets", schedule=None, start_date=datetime(2024, 5, 1),
             default_args={"retries": 0}) as dag:
        wrong_port = PartitionOverwriteOperator(
            task_id="load_wrong_port", postgres_conn_id="wh_wrong_port", table="public.orders",
            partition_column="order_date", partition_value="2024-05-02", source=os.environ["SECRETS_TEST_CSV"],
            on_failure_callback=[send_failure_alert(slack_conn_id="slack_hook"), keep_exception])
        bad_password = PartitionOverwriteOperator(
            task_id="load_bad_password", postgres_conn_id="wh_bad_password", table="public.orders",
            partition_column="order_date", partition_value="2024-05-02", source=os.environ["SECRETS_TEST_CSV"],
            trigger_rule="all_done",
            on_failure_callback=[send_failure_alert(slack_conn_id="slack_api"), keep_exception])
        check = SchemaContractCheckOperator(
            task_id="check_bad_password", contract=os.environ["SECRETS_TEST_CONTRACT"],
            source_conn_id="wh_bad_password", source_table="public.orders", trigger_rule="all_done",
            on_failure_callback=[send_failure_alert(slack_conn_id="slack_api"), keep_exception])
        wrong_port >> bad_password >> check
''')


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _forms(secret: str) -> list[str]:
    """The secret as given and as it appears in a URI; long enough pieces not to match by chance."""
    return sorted({secret, quote(secret, safe=""), quote(secret)})


SECRETS = [*_forms(PASSWORD_PORT), *_forms(PASSWORD_AUTH), TOKEN, TOKEN.split("-", 1)[1]]


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.fixture
def password_auth(pg_server):
    """One role that must give its password (scram-sha-256); every other login stays as it was."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        hba = Path(conn.execute("show hba_file").fetchone()[0])
        if not hba.exists() or not os.access(hba, os.W_OK):
            pytest.skip("pg_hba.conf of the test server is not writable here (SAFELOAD_TEST_PG_URI?)")
        original = hba.read_text()
        conn.execute(f"drop role if exists {ROLE}")
        conn.execute(f"create role {ROLE} login password '{RIGHT_PASSWORD}'")
        hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + original)
        conn.execute("select pg_reload_conf()")
        try:
            yield
        finally:
            hba.write_text(original)
            conn.execute("select pg_reload_conf()")
            conn.execute(f"drop role if exists {ROLE}")


def test_no_secret_in_logs_xcom_alerts_or_exceptions(airflow_db, pg_server, pg_uri, password_auth, tmp_path,
                                                     monkeypatch, caplog, capfd):
    import logging

    caplog.set_level(logging.DEBUG)
    host_port = pg_server.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    db = pg_uri.rsplit("/", 1)[1]
    # the role's wrong password really is refused by the server
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=host, port=port, user=ROLE, password=PASSWORD_AUTH, dbname=db).close()

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "secrets_dag.py").write_text(DAG_FILE)
    src = tmp_path / "orders.csv"
    src.write_text("order_id,order_date\n1,2024-05-02\n")
    exceptions = tmp_path / "exceptions.jsonl"
    alert_file = tmp_path / "alerts.jsonl"
    env = {
        "AIRFLOW_CONN_WH_WRONG_PORT": json.dumps({"conn_type": "postgres", "host": host, "port": _closed_port(),
                                                  "login": ROLE, "password": PASSWORD_PORT, "schema": db}),
        "AIRFLOW_CONN_WH_BAD_PASSWORD": json.dumps({"conn_type": "postgres", "host": host, "port": int(port),
                                                    "login": ROLE, "password": PASSWORD_AUTH, "schema": db}),
        "SECRETS_TEST_CSV": str(src),
        "SECRETS_TEST_CONTRACT": str(ROOT / "include" / "contracts" / "orders.yaml"),
        "SECRETS_TEST_EXCEPTIONS": str(exceptions),
        "SAFELOAD_ALERT_FILE": str(alert_file),
        "SAFELOAD_ALERT_STATE_DIR": str(tmp_path / "alert-state"),
        "SAFELOAD_ALERT_MAX_RETRIES": "2", "SAFELOAD_ALERT_BACKOFF": "0.05", "SAFELOAD_ALERT_MAX_BACKOFF": "0.2",
        "SAFELOAD_ALERT_TIMEOUT": "5", "SAFELOAD_ALERT_BUDGET": "10",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([{
            "name": "safeload-secrets-test", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(bundle)}}]),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    import importlib.util

    with FakeSlack() as slack:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_HOOK", slack.webhook_conn())
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_API", slack.web_api_conn(token=TOKEN))
        # the webhook answers 500 (three tries), then the Web API answers 401 once, then invalid_auth
        slack.script(Status(500), Status(500), Status(500), Status(401, body="invalid_auth"))
        spec = importlib.util.spec_from_file_location("safeload_secrets_dag", bundle / "secrets_dag.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag_run = module.dag.test()
        requests = list(slack.requests)
        webhook_secret = slack.webhook_path.rsplit("/", 1)[1]

    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    assert states == {"load_wrong_port": "failed", "load_bad_password": "failed", "check_bad_password": "failed"}
    failures = [json.loads(line) for line in exceptions.read_text().splitlines()]
    assert {f["task"] for f in failures} == set(states)
    by_task = {f["task"]: f for f in failures}
    # the runs failed for the reasons the test means (else it would search the wrong texts)
    assert "Connection refused" in by_task["load_wrong_port"]["str"] or "connection" in \
        by_task["load_wrong_port"]["str"].lower(), by_task["load_wrong_port"]
    assert "password authentication failed" in by_task["load_bad_password"]["str"], by_task["load_bad_password"]
    assert "password authentication failed" in by_task["check_bad_password"]["tb"], by_task["check_bad_password"]
    statuses = [r.response_status for r in requests]
    assert 500 in statuses and 401 in statuses, statuses

    out, err = capfd.readouterr()
    places: dict[str, str] = {"log records": caplog.text, "stdout": out, "stderr": err,
                              "exceptions": exceptions.read_text()}
    for path in (airflow_db / "logs").rglob("*") if (airflow_db / "logs").exists() else []:
        if path.is_file():
            places[f"task log {path.name}"] = path.read_text(errors="replace")
    # read through Airflow's own engine, the connection pool that wrote the run: a second
    # connection opened beside it on the WAL-mode file is a different reader from the one
    # the run used, and has met "disk I/O error" on a busy machine
    from airflow import settings

    assert Path(settings.engine.url.database) == airflow_db / "airflow.db", settings.engine.url
    with settings.engine.connect() as meta:
        raw = meta.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection), type(raw)
        places["Airflow metadata DB (XCom, task instances, rendered fields, ...)"] = "\n".join(raw.iterdump())
        xcoms = raw.execute("select count(*) from xcom").fetchone()[0]
    # what the alerts said: the Authorization header carries the token to Slack by design
    places["Slack requests"] = "\n".join(
        f"{r.path} {({k: v for k, v in r.headers.items() if k.lower() != 'authorization'})} "
        f"{r.raw.decode('utf-8', 'replace')}" for r in requests)
    assert all(r.headers.get("Authorization", r.headers.get("authorization")) == f"Bearer {TOKEN}"
               for r in requests if r.endpoint != "webhook"), "the token was not even used"
    if alert_file.exists():
        places["alert file"] = alert_file.read_text()
    found = {where: leaks(text) for where, text in places.items() if leaks(text)}
    assert not found, f"secrets leaked: {found}"
    # the webhook's secret path was used in requests (so it is in play) but nowhere else
    assert any(webhook_secret in r.path for r in requests)
    for where, text in places.items():
        if where != "Slack requests":
            assert webhook_secret not in text, where
    record("secrets: dag.test() with failing connections", trials=len(states), faults=len(states) + len(requests),
           held=f"password and token in none of {len(places)} places searched (logs, {xcoms} XCom rows and the "
                f"rest of Airflow's DB, {len(requests)} Slack requests, alert file, exceptions)")


@pytest.mark.parametrize("case", ["load-closed-port", "load-bad-password", "contract-check-bad-password"])
def test_cli_errors_carry_no_password(case, pg_server, pg_uri, password_auth, tmp_path):
    host_port = pg_server.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    db = pg_uri.rsplit("/", 1)[1]
    secret = PASSWORD_PORT if case == "load-closed-port" else PASSWORD_AUTH
    uri = f"postgresql://{ROLE}:{quote(secret, safe='')}@{host}:{_closed_port() if 'closed' in case else port}/{db}"
    src = tmp_path / "orders.csv"
    src.write_text("order_id,order_date\n1,2024-05-02\n")
    cli = [str(Path(sys.executable).parent / "safeload")]
    if case.startswith("load"):
        args = ["load", "--conn", uri, "--table", "public.orders", "--partition", "2024-05-02",
                "--partition-column", "order_date", "--source", str(src)]
    else:
        args = ["contract", "check", str(ROOT / "include/contracts/orders.yaml"), "--source",
                f"{uri}?table=public.orders"]
    p = subprocess.run(cli + args, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "password authentication failed" in p.stderr or "refused" in p.stderr.lower() or \
        "failed" in p.stderr, p.stderr
    assert not leaks(p.stdout + p.stderr), p.stderr
