"""The warehouse connection: one place that turns an Airflow connection into psycopg.

Secrets come only from Airflow Connections; the URI built here holds the password, so
it is passed to libraries, never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg


def warehouse_conninfo(conn_id: str) -> str:
    """A ``postgresql://`` URI for the Airflow connection ``conn_id``."""
    from urllib.parse import quote, urlencode

    from airflow.sdk import BaseHook

    c = BaseHook.get_connection(conn_id)
    extra = c.extra_dejson or {}
    params = {k: v for k, v in extra.items() if k in ("sslmode", "sslrootcert", "sslcert", "sslkey",
                                                     "options", "application_name", "connect_timeout")}
    auth = quote(c.login or "", safe="")
    if c.password:
        auth += ":" + quote(c.password, safe="")
    query = ("?" + urlencode(params)) if params else ""
    return f"postgresql://{auth}{'@' if auth else ''}{c.host or 'localhost'}:{c.port or 5432}/{quote(c.schema or 'postgres')}{query}"


def warehouse_connect(conn_id: str) -> Callable[[], psycopg.Connection]:
    """A factory of new psycopg connections to ``conn_id`` (the loader opens its own)."""
    import psycopg

    conninfo = warehouse_conninfo(conn_id)
    return lambda: psycopg.connect(conninfo, application_name="safeload")
