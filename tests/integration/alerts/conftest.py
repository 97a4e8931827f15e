"""Fixtures for the Slack alert tests: the local Slack server, connections, Airflow's DB.

* ``slack_server``: a :class:`FakeSlack` on 127.0.0.1 (see ``tests/slack_server.py``).
* ``alert_env``: fast, bounded retries; a private state dir and fallback file; no
  Slack connection (tests add the one they need with ``monkeypatch.setenv``).
* ``webhook_conn`` / ``web_api_conn``: ``AIRFLOW_CONN_SLACK_ALERTS`` pointing at the server.
* ``airflow_db`` (tests/conftest.py): Airflow's metadata DB, migrated once per session.
* ``alert_dags``: the DAGs of ``alert_dags.py``, served to ``dag.test()`` from a DAG
  bundle of their own, so the repository's ``dags/`` folder is not parsed by these tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import threading
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[2]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from slack_server import FAST_RETRIES, FakeSlack

HERE = Path(__file__).resolve().parent
CONN_ENV = "AIRFLOW_CONN_SLACK_ALERTS"
BUNDLE_ENV = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"


def pytest_collection_finish(session):
    """Build Airflow's in-process Execution API in the background, once, if dag.test() is ahead.

    The first ``dag.test()`` of a process builds that API and its versioned routes (cadwyn):
    about 30 s of CPU on a 2-core machine, before any task runs. Started here, the build
    overlaps the tests that only wait on HTTP. Nothing here touches the metadata DB.
    ``SAFELOAD_TEST_NO_WARMUP=1`` turns it off.
    """
    if os.environ.get("SAFELOAD_TEST_NO_WARMUP"):
        return
    if not any("alert_dags" in getattr(item, "fixturenames", ()) for item in session.items):
        return

    def warm_up() -> None:
        try:
            import httpx
            from airflow.sdk.execution_time.supervisor import in_process_api_server

            api = in_process_api_server()
            # not closed: closing the client would close the shared in-process transport
            httpx.Client(transport=api.transport, base_url="http://in-process.invalid").get(
                "/safeload-warm-up"
            )
        except Exception:  # the first dag.test() will build it instead
            pass

    threading.Thread(target=warm_up, name="safeload-execution-api-warm-up", daemon=True).start()


def pytest_unconfigure(config):
    """Skip the cycle collection of interpreter shutdown (about 20 s here).

    Airflow's in-process Execution API leaves millions of objects (cadwyn's versioned
    pydantic models) for the final garbage collection, which costs more than some test
    files. Freezing them moves them out of the collector's reach; the OS frees the
    memory at exit. It runs after every report and plugin has finished.
    """
    import gc

    gc.freeze()


@pytest.fixture
def slack_server():
    """A running fake Slack; stopped (and its slow handlers released) after the test."""
    with FakeSlack() as server:
        yield server


@pytest.fixture
def alert_env(tmp_path, monkeypatch):
    """Fast retries, private state and fallback file, no Slack connection."""
    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SAFELOAD_ALERT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SAFELOAD_ALERT_FILE", str(tmp_path / "alerts.jsonl"))
    for name in (
        CONN_ENV,
        "SAFELOAD_ALERT_RETRIES",
        "SAFELOAD_ALERT_WINDOW",
        "SAFELOAD_ALERT_LISTENER_TAGS",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def webhook_conn(slack_server, alert_env, monkeypatch):
    monkeypatch.setenv(CONN_ENV, slack_server.webhook_conn())
    return slack_server


@pytest.fixture
def web_api_conn(slack_server, alert_env, monkeypatch):
    monkeypatch.setenv(CONN_ENV, slack_server.web_api_conn(channel="#data-alerts"))
    return slack_server


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def _alert_dags_bundle(airflow_db, tmp_path_factory):
    bundle = tmp_path_factory.mktemp("alert-dags-bundle")
    shutil.copyfile(HERE / "alert_dags.py", bundle / "alert_dags.py")
    spec = importlib.util.spec_from_file_location(
        "safeload_alert_test_dags", bundle / "alert_dags.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return bundle, module


@pytest.fixture
def alert_dags(_alert_dags_bundle, alert_env, monkeypatch):
    """The test DAGs module; ``dag.test()`` finds them in a DAG bundle of their own."""
    bundle, module = _alert_dags_bundle
    monkeypatch.setenv(
        BUNDLE_ENV,
        json.dumps(
            [
                {
                    "name": "safeload-alert-tests",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(bundle)},
                }
            ]
        ),
    )
    module.SEEN.clear()
    return module


def assert_no_secrets(server: FakeSlack, *texts: str) -> None:
    """Neither the token nor any part of the webhook URL's secret path is in ``texts``."""
    secret_part = server.webhook_path.rsplit("/", 1)[1]
    for text in texts:
        assert server.token not in text
        assert server.token.split("-", 1)[1] not in text
        assert secret_part not in text
        assert server.webhook_path not in text


@pytest.fixture
def no_secrets(caplog, capfd):
    """Call with the server at the end of a test: nothing secret reached logs or output."""
    import logging

    caplog.set_level(logging.INFO)

    def check(server: FakeSlack, *extra: str) -> None:
        out, err = capfd.readouterr()
        assert_no_secrets(server, caplog.text, out, err, *extra)

    return check
