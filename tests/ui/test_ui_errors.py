"""The safeload page against a real ``airflow api-server`` when things are wrong: a warehouse
that refuses the page's role, bad paging keys, requests without a login, and hostile
text in every column safeload stores.

The page reads through its own login role (``safeload_ui_*``, SELECT only), as a
deployment would; the test takes that role's rights away and asks the page again. Nothing
is mocked; every wait is bounded.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from apiserver import AIRFLOW, SIMPLE, airflow_env, api_server, request

from safeload.metadata import ensure_metadata

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


# A user allowed to read one DAG only, as FAB or Keycloak deployments grant it. Airflow's
# SimpleAuthManager has roles but no per-DAG rights, and FAB is not installed here, so
# this subclass decides per DAG: the rest (login, tokens) is SimpleAuthManager's own.
PER_DAG_AUTH = """
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


class PerDagAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None):
        # None: every DAG, which this user may not read
        return bool(details and details.id == "allowed_dag") and super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details)
"""


@pytest.fixture(scope="module")
def server(pg_server, tmp_path_factory):
    """``airflow api-server`` whose safeload page reads a database through a SELECT-only role."""
    with _serve(pg_server, tmp_path_factory.mktemp("ui-errors"), SIMPLE) as s:
        yield s


@pytest.fixture(scope="module")
def per_dag_server(pg_server, tmp_path_factory):
    """The same, for a user who may read the DAG ``allowed_dag`` only."""
    tmp = tmp_path_factory.mktemp("ui-per-dag")
    (tmp / "per_dag_auth.py").write_text(PER_DAG_AUTH)
    with _serve(pg_server, tmp, "per_dag_auth.PerDagAuthManager", {"PYTHONPATH": str(tmp)}) as s:
        yield s


@contextmanager
def _serve(pg_server: str, tmp: Path, auth_manager: str, extra_env: dict[str, str] | None = None):
    role, role_pw = f"safeload_ui_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    db = f"ui_err_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(db)))
        admin.execute(sql.SQL("create role {} login password {}").format(sql.Identifier(role), sql.Literal(role_pw)))
    parts = urlsplit(pg_server)
    owner_uri = urlunsplit(parts._replace(path=f"/{db}"))
    netloc = f"{role}:{role_pw}@{parts.hostname}:{parts.port}"
    ui_uri = urlunsplit(parts._replace(netloc=netloc, path=f"/{db}", query=""))
    with psycopg.connect(owner_uri, autocommit=True) as conn:
        ensure_metadata(conn)
        conn.execute("insert into safeload.load_history (target, partition_value, status, rows_loaded, started_at)"
                     " values ('public.t', '2025-01-01', 'published', 3, now())")
        conn.execute(sql.SQL("grant usage on schema safeload to {0}; grant select on all tables in schema safeload"
                             " to {0}").format(sql.Identifier(role)))

    env, password = airflow_env(tmp / "airflow", ui_conn_uri=ui_uri, auth_manager=auth_manager)
    env.update(extra_env or {})
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=180)
    try:
        with api_server(env, tmp / "api-server.log") as base:
            status, _, body = request(base + "/auth/token", method="POST",
                                      headers={"Content-Type": "application/json"},
                                      data=json.dumps({"username": "viewer", "password": password}).encode())
            assert status == 201, body
            yield {"base": base, "token": json.loads(body)["access_token"], "owner_uri": owner_uri, "role": role}
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(db)))
            admin.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))


def _get(server, path: str, **headers: str) -> tuple[int, dict, str]:
    return request(server["base"] + path, headers={"Authorization": f"Bearer {server['token']}", **headers})


def test_no_answer_carries_data_without_a_login(server):
    base = server["base"]
    for method in ("GET", "HEAD", "OPTIONS", "POST"):
        for path in ("/safeload/", "/safeload/table?target=public.t", "/safeload/task?dag_id=d&run_id=r&task_id=t",
                     "/safeload/%2e%2e/safeload/", "/safeload/static/../table?target=public.t"):
            status, _, body = request(base + path, method=method, headers={"Accept": "application/json"})
            assert status in (401, 403, 404, 405), (method, path, status)
            assert "public.t" not in body and "2025-01-01" not in body, (method, path)
    assert _get(server, "/safeload/")[0] == 200  # and the same page is served with a login


def test_paging_keys_out_of_range_are_refused_not_a_server_error(server):
    status, _, body = _get(server, "/safeload/table?target=public.t&before=99999999999999999999999")
    assert status == 422, body
    status, _, body = _get(server, "/safeload/?after=a%00b")
    assert status == 422, body
    status, _, body = _get(server, "/safeload/table?target=public.t%00")
    assert status == 422, body


def test_a_warehouse_that_refuses_the_page_says_so(server):
    owner = psycopg.connect(server["owner_uri"], autocommit=True)
    role = sql.Identifier(server["role"])
    try:
        owner.execute(sql.SQL("revoke select on all tables in schema safeload from {}").format(role))
        status, _, body = _get(server, "/safeload/", Accept="text/html")
        assert status == 503, body
        assert "history_db" in body and "permission denied" in body and "GRANT SELECT" in body.upper()

        owner.execute(sql.SQL("alter role {} nologin").format(role))
        status, _, body = _get(server, "/safeload/table?target=public.t", Accept="application/json")
        assert status == 503, body
        assert "history_db" in json.loads(body)["detail"]
    finally:
        owner.execute(sql.SQL("alter role {} login").format(role))
        owner.execute(sql.SQL("grant select on all tables in schema safeload to {}").format(role))
        owner.close()
    assert _get(server, "/safeload/")[0] == 200


X = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


def test_database_text_is_escaped_on_every_page(server):
    """Every text safeload stores can come from a hostile producer (a file's column names,
    a bad row's raw text, a DAG's ids): none reaches the HTML unescaped, on any page."""
    from urllib.parse import urlencode

    target = f"public.{X}"
    with psycopg.connect(server["owner_uri"], autocommit=True) as conn:
        for stmt in """
            insert into safeload.load_history (target, partition_value, status, rows_loaded, rows_quarantined,
                rows_source, checksum, source, dag_id, run_id, task_id, try_number, started_at, message,
                schema_changes)
            values (%(t)s, %(x)s, 'published', 5, 1, 6, %(x)s, %(x)s, %(x)s, %(x)s, %(x)s, 1, now(), %(x)s,
                    jsonb_build_array(jsonb_build_object('added', %(x)s::text)));
            insert into safeload.quarantine (target, partition_value, run_key, source, line, raw, reason)
            values (%(t)s, %(x)s, %(x)s, %(x)s, 2, %(x)s, %(x)s);
            insert into safeload.quality_results (run_key, dag_id, run_id, task_id, target, partition_value, suite,
                expectation_type, column_name, kwargs, severity, success, observed_value, engine, checked_at)
            values (%(x)s, %(x)s, %(x)s, %(x)s, %(t)s, %(x)s, %(x)s, %(x)s, %(x)s,
                    jsonb_build_object('column', %(x)s::text), %(x)s, false, to_jsonb(%(x)s::text), 'sql', now());
            insert into safeload.contract_checks (target, contract, source, policy, decision, passed, changes,
                dag_id, run_id, task_id, try_number)
            values (%(t)s, %(x)s, %(x)s, %(x)s, %(x)s, false,
                    jsonb_build_array(jsonb_build_object('kind', %(x)s::text, 'column', %(x)s::text,
                                      'class', %(x)s::text, 'detail', %(x)s::text, 'action', %(x)s::text)),
                    %(x)s, %(x)s, %(x)s, 1)
        """.split(";"):
            conn.execute(stmt, {"t": target, "x": X})
    try:
        pages = ["/safeload/", "/safeload/table?" + urlencode({"target": target}),
                 "/safeload/task?" + urlencode({"dag_id": X, "run_id": X, "task_id": X})]
        for path in pages:
            status, _, body = _get(server, path, Accept="text/html")
            assert status == 200, (path, body[-500:])
            assert "alert(" in body, path  # the hostile rows are on the page ...
            raw = [body[max(0, i - 120):i + 40] for i in (body.find("<img"), body.find("<script")) if i >= 0]
            assert not raw and X not in body, (path, raw)  # ... as text
            assert "&quot;&gt;&lt;img" in body, path  # the quote too: no attribute is broken out of
    finally:
        with psycopg.connect(server["owner_uri"], autocommit=True) as conn:
            for t in ("load_history", "quarantine", "quality_results", "contract_checks"):
                conn.execute(sql.SQL("delete from safeload.{} where target = %s").format(sql.Identifier(t)), (target,))


def test_a_dag_id_in_the_query_grants_nothing_beyond_that_dag(per_dag_server):
    """The page checks the ``dag_id`` a request names: the task report of that DAG. The
    overview and table pages show every DAG's loads, so naming a DAG one may read must not
    open them."""
    with psycopg.connect(per_dag_server["owner_uri"], autocommit=True) as conn:
        conn.execute("insert into safeload.load_history (target, partition_value, status, rows_loaded, started_at,"
                     " dag_id, run_id, task_id) values"
                     " ('public.allowed_t', '2025-01-02', 'published', 4, now(), 'allowed_dag', 'r1', 'load'),"
                     " ('public.other_t', '2025-01-03', 'published', 5, now(), 'other_dag', 'r1', 'load')")
    s = per_dag_server
    assert _get(s, "/safeload/task?dag_id=allowed_dag&run_id=r1&task_id=load")[0] == 200
    for path in ("/safeload/task?dag_id=other_dag&run_id=r1&task_id=load",
                 "/safeload/task?dag_id=allowed_dag&dag_id=other_dag&run_id=r1&task_id=load",
                 "/safeload/", "/safeload/table?target=public.other_t",
                 "/safeload/?dag_id=allowed_dag", "/safeload/table?target=public.other_t&dag_id=allowed_dag"):
        status, _, body = _get(s, path, Accept="application/json")
        assert status == 403, (path, status)
        assert "public.other_t" not in body and "2025-01-03" not in body, path
