"""The FastAPI app the safeload plugin mounts at ``/safeload`` in Airflow's api-server.

Pages (server-rendered HTML, see docs/ui.md):

- ``/``: every loaded table, its latest load, row-count trend, checks and drift (paged);
- ``/table?target=schema.table``: one table's row counts, quality checks over time, drift
  events, quarantine and load history (paged);
- ``/task?dag_id=&run_id=&task_id=``: what one task instance (and its run) recorded:
  the target of the operators' "safeload report" extra link.

Every route needs an Airflow user allowed to read task instances (of every DAG; on the
task report, of its ``dag_id``), checked by Airflow's auth manager exactly as Airflow's own API
does: a JWT in ``Authorization: Bearer`` or the UI's ``_token`` cookie. A browser without
a session is sent to Airflow's login page; anything else gets 401.

The warehouse is the Airflow connection ``[safeload] ui_conn_id`` (environment:
``AIRFLOW__SAFELOAD__UI_CONN_ID``), default ``warehouse``, read in a read-only transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

DEFAULT_CONN_ID = "warehouse"


def ui_conn_id() -> str:
    """The Airflow connection of the warehouse the page reads: ``[safeload] ui_conn_id``."""
    from airflow.configuration import conf

    return conf.get("safeload", "ui_conn_id", fallback=DEFAULT_CONN_ID) or DEFAULT_CONN_ID


async def authorize(request: Request) -> Any:
    """Airflow's own check: a valid JWT (header or cookie) of a user who may read task
    instances: of every DAG, or on the task report, of the ``dag_id`` it reads."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    user = await get_user(request, _oauth_token=None, bearer_credentials=await bearer_scheme(request))
    # Only the task report reads by dag_id: elsewhere a dag_id in the query string would
    # let a user allowed one DAG open the pages that show every DAG's loads.
    route = request.scope.get("route")
    dag_id = (request.query_params.get("dag_id") or None) if getattr(route, "path", None) == "/task" else None
    if not get_auth_manager().is_authorized_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE,
                                                details=DagDetails(id=dag_id), user=user):
        raise HTTPException(status_code=403, detail="Forbidden: reading safeload's history needs read access "
                                                    "to task instances" + (f" of DAG {dag_id}" if dag_id else ""))
    return user


def _links(request: Request):
    from safeload.ui.render import Links

    root = request.scope.get("root_path", "").rstrip("/")  # ".../safeload", behind any [api] base_url
    airflow_root = root[: -len("/safeload")] if root.endswith("/safeload") else ""
    return Links(root, airflow_root)


def _conninfo() -> tuple[str, str]:
    from safeload.hooks import warehouse_conninfo

    conn_id = ui_conn_id()
    try:
        return conn_id, warehouse_conninfo(conn_id)
    except Exception as e:  # noqa: BLE001 - AirflowNotFoundException and friends; shown, not hidden
        raise HTTPException(status_code=503, detail=(
            f"safeload page: the warehouse connection {conn_id!r} cannot be read ({e}). Define it "
            f"(e.g. AIRFLOW_CONN_{conn_id.upper()}) or point [safeload] ui_conn_id at the right one.")) from None


#: Text parameters go to PostgreSQL as bind values; a NUL byte is refused by the driver
#: (a 500), so the request is refused first (422).
NO_NUL = r"^[^\x00]*$"
BIGINT_MAX = 2**63 - 1  # load_history.id; a larger paging key would fail the cast (a 500)


@contextmanager
def _warehouse(conn_id: str, conninfo: str) -> Iterator[Any]:
    """:func:`queries.read_only`, with the warehouse's refusals as a 503 that says what to fix."""
    import psycopg

    from safeload.ui import queries

    try:
        with queries.read_only(conninfo) as conn:
            yield conn
    except psycopg.errors.InsufficientPrivilege as e:
        raise HTTPException(status_code=503, detail=(
            f"safeload page: the user of connection {conn_id!r} may not read safeload's tables "
            f"({str(e).strip()}). Grant it: GRANT USAGE ON SCHEMA safeload TO <user>; "
            "GRANT SELECT ON ALL TABLES IN SCHEMA safeload TO <user>.")) from None
    except psycopg.Error as e:
        raise HTTPException(status_code=503, detail=(
            f"safeload page: reading the warehouse of connection {conn_id!r} failed ({str(e).strip()}). Is the "
            "database up, and does the connection name the right host, database and user?")) from None


def create_app() -> FastAPI:
    app = FastAPI(title="safeload", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(authorize)])

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        wants_html = "text/html" in request.headers.get("accept", "")
        if exc.status_code == 401 and wants_html and request.method == "GET":
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
        if wants_html:
            from safeload.ui.render import error_page

            return HTMLResponse(error_page(str(exc.detail), root=_links(request).root), status_code=exc.status_code,
                                headers=exc.headers)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    # Plain `def` routes: FastAPI runs them in its thread pool, so a slow query blocks no one.
    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request, after: str = Query("", max_length=500, pattern=NO_NUL)) -> HTMLResponse:
        from safeload.ui import queries, render

        conn_id, conninfo = _conninfo()
        with _warehouse(conn_id, conninfo) as conn:
            tables = queries.existing_tables(conn)
            rows, next_after = queries.overview(conn, after=after, tables=tables)
            total = queries.table_count(conn) if "load_history" in tables else 0
        return HTMLResponse(render.overview_page(rows, total=total, next_after=next_after, after=after,
                                                 links=_links(request), conn_id=conn_id))

    @app.get("/table", response_class=HTMLResponse)
    def table(request: Request, target: str = Query(..., min_length=1, max_length=200, pattern=NO_NUL),
              before: int | None = Query(None, ge=1, le=BIGINT_MAX)) -> HTMLResponse:
        from safeload.ui import queries, render

        conn_id, conninfo = _conninfo()
        with _warehouse(conn_id, conninfo) as conn:
            summary = queries.table_summary(conn, target)
            history, next_before = ([], None)
            if "load_history" in summary["tables"]:
                history, next_before = queries.load_history(conn, target, before=before)
        return HTMLResponse(render.table_page(target, summary, history, next_before, before, _links(request)))

    @app.get("/task", response_class=HTMLResponse)
    def task(request: Request, dag_id: str = Query(..., max_length=250, pattern=NO_NUL),
             run_id: str = Query(..., max_length=250, pattern=NO_NUL),
             task_id: str = Query(..., max_length=250, pattern=NO_NUL),
             try_number: int | None = Query(None)) -> HTMLResponse:
        from safeload.ui import queries, render

        conn_id, conninfo = _conninfo()
        with _warehouse(conn_id, conninfo) as conn:
            report = queries.run_report(conn, dag_id=dag_id, run_id=run_id)
        return HTMLResponse(render.task_page(dag_id, run_id, task_id, report, _links(request)))

    return app


app = create_app()
