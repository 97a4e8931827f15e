"""Alert state in PostgreSQL: one state that every worker, scheduler and DAG processor shares.

Pure: no Airflow (the notifiers hand over a connection factory). One row per record
(a task's storm-control record, a run, a thread, a notice) in ``safeload.alert_state``,
keyed by DAG. A DAG's state is read and written in one transaction that first takes a
transaction-level advisory lock on the DAG, so the callbacks of concurrent tasks on
different machines decide one after the other: the first failure of a run posts, the
others fold into its message and thread. The lock waits at most ``lock_timeout`` seconds
(then the alert goes out without storm control); it is released at commit, before any
HTTP call to Slack.

The table is created on first use. Teams that create objects through migrations run
:data:`DDL` as a DBA and grant the loader role ``SELECT, INSERT, UPDATE, DELETE`` on it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from safeload.alerts.store import StateUnavailable, iter_sections, normalised

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

SCHEMA = "safeload"
TABLE = f"{SCHEMA}.alert_state"
#: advisory lock namespace (first key of the two-key form); the second is hashtext(dag_id)
LOCK_NAMESPACE = 716_031_820
_DDL_LOCK = (LOCK_NAMESPACE, 0)
#: A DAG whose every record is older than this is deleted (a few such DAGs per write).
STALE_DAYS = 14

DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {TABLE} (
    dag_id      text        not null,
    kind        text        not null check (kind in ('keys', 'runs', 'threads', 'notices')),
    name        text        not null,
    data        jsonb       not null,
    updated_at  timestamptz not null default now(),
    primary key (dag_id, kind, name)
);
create index if not exists alert_state_updated_idx on {TABLE} (updated_at);
"""

_SWEEP = f"""
with stale as (
    select distinct dag_id from {TABLE}
     where updated_at < now() - make_interval(days => %(days)s) limit 20)
delete from {TABLE} s using stale
 where s.dag_id = stale.dag_id
   and not exists (select 1 from {TABLE} f
                    where f.dag_id = s.dag_id and f.updated_at >= now() - make_interval(days => %(days)s))
   and pg_try_advisory_xact_lock(%(ns)s, hashtext(s.dag_id))
"""


class PostgresStore:
    """The alert state in a PostgreSQL database.

    :param connect: returns a new psycopg connection. The store keeps it for its own
        life (one alert: a decision, the send, its outcome) and :meth:`close` closes it.
    :param where: how log lines name the database (e.g. ``"connection 'warehouse'"``).
    :param lock_timeout: seconds to wait for a DAG's lock (and for any row lock).
    """

    name = "postgres"

    def __init__(self, connect: Callable[[], psycopg.Connection], *, where: str = "PostgreSQL",
                 lock_timeout: float = 5.0) -> None:
        self.connect = connect
        self.where = where
        self.lock_timeout = lock_timeout
        self._conn: psycopg.Connection | None = None

    def _open(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        try:
            conn = self.connect()
        except Exception as e:
            raise StateUnavailable(f"cannot connect to {self.where}: {type(e).__name__}: {e}") from e
        conn.autocommit = False
        self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _settings(self, conn: psycopg.Connection) -> bool:
        """This transaction's timeouts, commits without a disk flush (the state is
        bookkeeping); returns whether the table exists."""
        wait = int(self.lock_timeout * 1000)
        return conn.execute(
            "select to_regclass(%s) is not null, set_config('lock_timeout', %s, true),"
            " set_config('statement_timeout', %s, true), set_config('synchronous_commit', 'off', true)",
            (TABLE, str(wait), str(wait + 10_000))).fetchone()[0]

    def _begin(self, conn: psycopg.Connection, dag_id: str) -> list[tuple[str, str, Any]]:
        """Lock the DAG's state and read it (creating the table on first use)."""
        if not self._settings(conn):
            # in a transaction of its own, committed before any DAG lock is asked for: its
            # locks on the table must not be held while waiting for another worker
            conn.execute("select pg_advisory_xact_lock(%s, %s)", _DDL_LOCK)
            if not conn.execute("select to_regclass(%s) is not null", (TABLE,)).fetchone()[0]:
                conn.execute(DDL)
            conn.commit()
            self._settings(conn)
        conn.execute("select pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_NAMESPACE, dag_id))
        return conn.execute(f"select kind, name, data from {TABLE} where dag_id = %s", (dag_id,)).fetchall()

    @contextmanager
    def dag(self, dag_id: str) -> Iterator[dict[str, Any]]:
        import psycopg
        from psycopg.types.json import Jsonb

        conn = self._open()
        try:
            try:
                rows = self._begin(conn, dag_id)
            except psycopg.Error as e:
                raise StateUnavailable(_explain(e, self.where)) from e
            state = normalised({})
            for kind, name, data in rows:
                state[kind][name] = data
            before = {(k, n): json.dumps(r, sort_keys=True) for k, n, r in iter_sections(state)}
            yield state
            after = {(k, n): r for k, n, r in iter_sections(state)}
            changed = [(dag_id, k, n, Jsonb(r)) for (k, n), r in after.items()
                       if before.get((k, n)) != json.dumps(r, sort_keys=True)]
            gone = [(dag_id, k, n) for (k, n) in before if (k, n) not in after]
            try:
                with conn.cursor() as cur:
                    if changed:
                        cur.executemany(
                            f"insert into {TABLE} (dag_id, kind, name, data) values (%s, %s, %s, %s)"
                            " on conflict (dag_id, kind, name)"
                            " do update set data = excluded.data, updated_at = now()", changed)
                    if gone:
                        cur.executemany(f"delete from {TABLE} where dag_id = %s and kind = %s and name = %s",
                                        gone)
                    if changed:
                        cur.execute(_SWEEP, {"days": STALE_DAYS, "ns": LOCK_NAMESPACE})
                conn.commit()
            except psycopg.Error as e:
                raise StateUnavailable(_explain(e, self.where)) from e
        finally:
            try:
                conn.rollback()  # a no-op after commit; releases the lock after an error
            except Exception:
                self.close()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        import psycopg

        conn = self._open()
        try:
            exists = conn.execute("select to_regclass(%s) is not null", (TABLE,)).fetchone()[0]
            rows = conn.execute(f"select dag_id, kind, name, data from {TABLE}").fetchall() if exists else []
        except psycopg.Error as e:
            raise StateUnavailable(_explain(e, self.where)) from e
        finally:
            conn.rollback()
        out: dict[str, dict[str, Any]] = {}
        for dag_id, kind, name, data in rows:
            normalised(out.setdefault(dag_id, {}))[kind][name] = data
        return out


def _explain(error: Exception, where: str) -> str:
    """The database error, with the fix where the cause is a missing grant."""
    text = f"{where}: {type(error).__name__}: {str(error).strip()}"
    if getattr(error, "sqlstate", None) == "42501":  # insufficient_privilege
        text += (f"; grant the role SELECT, INSERT, UPDATE, DELETE on {TABLE} (a DBA creates it with "
                 "`python -c 'from safeload.alerts.store_postgres import DDL; print(DDL)' | psql`)")
    elif getattr(error, "sqlstate", None) == "55P03":  # lock_not_available
        text += "; another worker held this DAG's alert state longer than the lock timeout"
    return text
