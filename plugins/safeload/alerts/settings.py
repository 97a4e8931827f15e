"""The alert settings a deployment keeps in Airflow's configuration, read at each alert.

Glue: Airflow is imported inside the functions. Every option can be set in
``airflow.cfg`` or as ``AIRFLOW__SAFELOAD__<OPTION>`` in the environment of the
scheduler, the DAG processor and every worker:

============================  ===========================================================
``[safeload]`` option          meaning
============================  ===========================================================
``alert_state_conn_id``        the PostgreSQL connection that holds the alert state every
                               worker shares; default ``warehouse`` when that connection
                               exists; ``file`` keeps it in a JSON file on each machine
``deployment_name``            the deployment named in every alert (e.g. ``production``);
                               default ``[api] instance_name``
``alert_contacts``             who to ping and the runbooks (JSON, see
                               :mod:`safeload.alerts.contacts`); merged with the Slack
                               connection's extra ``contacts``
============================  ===========================================================
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

from safeload.alerts.contacts import Contacts, ContactsError, parse_contacts
from safeload.alerts.store import StateStore
from safeload.alerts.store_file import FileStore
from safeload.alerts.store_postgres import PostgresStore

log = logging.getLogger(__name__)

SECTION = "safeload"
DEFAULT_STATE_CONN_ID = "warehouse"
FILE = "file"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


def option(section: str, key: str) -> str | None:
    """An Airflow configuration option (environment variables included), or ``None``."""
    from airflow.sdk.configuration import conf

    try:
        value = conf.get(section, key, fallback=None)
    except Exception:
        return None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _connection_exists(conn_id: str) -> bool:
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except Exception as e:
        if type(e).__name__ == "AirflowNotFoundException":
            return False
        raise
    return True


def _postgres(conn_id: str, lock_timeout: float) -> PostgresStore:
    from safeload.hooks import warehouse_conninfo

    conninfo = warehouse_conninfo(conn_id)

    def connect() -> Any:
        import psycopg

        return psycopg.connect(conninfo, connect_timeout=5, application_name="safeload-alerts")

    return PostgresStore(connect, where=f"connection {conn_id!r}", lock_timeout=lock_timeout)


def state_store(*, conn_id: str | None = None, path: Any = None, lock_timeout: float = 5.0) -> StateStore:
    """Where the alert state lives, chosen at each alert.

    ``path`` (the notifier's ``state_path``) means the file; else ``conn_id`` (the
    notifier's ``state_conn_id``), else ``[safeload] alert_state_conn_id``, else the
    ``warehouse`` connection when it exists; else the file. A connection that cannot be
    read also gives the file, with a warning (the alert still goes out).
    """
    if path is not None:
        return FileStore(path, lock_timeout=lock_timeout)
    chosen = conn_id or option(SECTION, "alert_state_conn_id")
    if chosen and chosen.lower() == FILE:
        return FileStore(lock_timeout=lock_timeout)
    try:
        if chosen is None:
            if not _connection_exists(DEFAULT_STATE_CONN_ID):
                return FileStore(lock_timeout=lock_timeout)
            chosen = DEFAULT_STATE_CONN_ID
        return _postgres(chosen, lock_timeout)
    except Exception as e:
        from safeload.alerts.transport import scrub

        log.warning("Alert state: connection %r cannot be used (%s); this machine's file keeps the "
                    "state, so other workers do not see it. Define the connection or set "
                    "[safeload] alert_state_conn_id.", chosen, scrub(f"{type(e).__name__}: {e}"))
        return FileStore(lock_timeout=lock_timeout)


def deployment_name() -> str | None:
    """``[safeload] deployment_name``, else ``[api] instance_name``, else ``None``."""
    return option(SECTION, "deployment_name") or option("api", "instance_name")


def contacts(connection_extra: Any = None) -> tuple[Contacts, str | None]:
    """The contact mapping: ``[safeload] alert_contacts`` with the Slack connection's
    extra ``contacts`` on top. Returns the mapping and, when a source breaks a rule, the
    error (logged; the alert goes out without what it could not read)."""
    result = Contacts(source="[safeload] alert_contacts")
    problems = []
    for raw, source in ((option(SECTION, "alert_contacts"), "[safeload] alert_contacts"),
                        (connection_extra, "the Slack connection's extra 'contacts'")):
        try:
            result = result.merged(parse_contacts(raw, source))
        except ContactsError as e:
            log.error("Alert contacts not used: %s", e)
            problems.append(str(e))
    return result, "; ".join(problems) or None


def base_url() -> str | None:
    return option("api", "base_url")


def points_at_localhost(url: str | None) -> bool:
    """Whether a link in an alert would only open on the machine that sent it."""
    if not url:
        return False
    try:
        host = urlparse(url).hostname
    except ValueError:
        return False
    return (host or "").lower() in LOCAL_HOSTS


def dags_folder() -> str | None:
    return option("core", "dags_folder")
