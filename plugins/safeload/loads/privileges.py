"""What the loader's role may lack, in words a DBA can act on.

PostgreSQL says ``permission denied for table orders`` without naming the privilege
(DELETE? INSERT?) or the statement. When a load fails that way the loader asks the
catalogue (``has_table_privilege`` and friends) which of the grants in docs/security.md
the current role does not have, and says so with the ``GRANT`` that fixes it.
Pure psycopg; no Airflow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from safeload.errors import LoadRefusedError
from safeload.identifiers import validate_table_name
from safeload.loads.partitions import partition_for
from safeload.loads.sql import target_info

F = TypeVar("F", bound=Callable[..., Any])

#: safeload's own tables and what the loader does to each
METADATA_GRANTS = {
    "safeload.staging": ("SELECT", "INSERT", "UPDATE", "DELETE"),  # UPDATE: publish's SELECT ... FOR UPDATE
    "safeload.load_history": ("SELECT", "INSERT"),
    "safeload.quarantine": ("INSERT",),
}


class PrivilegeError(LoadRefusedError):
    """The loader's role lacks a privilege: a grant must change first, so not retryable."""


def missing_privileges(conn: Any, *, schema: str, table: str, strategy: str, partitioned: bool,
                       evolve: bool, new_partition: bool = False) -> list[tuple[str, str]]:
    """``[(privilege in words, the GRANT that gives it)]`` the current role lacks.

    :param new_partition: the partition of the value does not exist yet (the loader
        creates and ATTACHes it, which PostgreSQL allows the table's owner only)
    """
    q = f'"{schema}"."{table}"'
    role = conn.execute("select current_user").fetchone()[0]
    out: list[tuple[str, str]] = []

    def check(sql: str, params: tuple, what: str, grant: str) -> None:
        if not conn.execute(sql, params).fetchone()[0]:
            out.append((what, grant))

    meta = conn.execute("select to_regnamespace('safeload') is not null and "
                        "to_regnamespace('safeload_staging') is not null").fetchone()[0]
    if not meta:
        check("select has_database_privilege(current_database(), 'CREATE')", (),
              "CREATE on the database (to create the safeload and safeload_staging schemas once)",
              f"GRANT CREATE ON DATABASE <database> TO {role}; or have a DBA create them (docs/security.md)")
    else:
        check("select has_schema_privilege('safeload', 'USAGE')", (), "USAGE on schema safeload",
              f"GRANT USAGE ON SCHEMA safeload TO {role}")
        check("select has_schema_privilege('safeload_staging', 'USAGE')", (), "USAGE on schema safeload_staging",
              f"GRANT USAGE, CREATE ON SCHEMA safeload_staging TO {role}")
        check("select has_schema_privilege('safeload_staging', 'CREATE')", (), "CREATE on schema safeload_staging",
              f"GRANT USAGE, CREATE ON SCHEMA safeload_staging TO {role}")
        for rel, privs in METADATA_GRANTS.items():
            if conn.execute("select to_regclass(%s) is null", (rel,)).fetchone()[0]:
                continue
            for p in privs:
                check("select has_table_privilege(%s, %s)", (rel, p), f"{p} on {rel}", f"GRANT {p} ON {rel} TO {role}")
    check("select has_schema_privilege(%s, 'USAGE')", (schema,), f"USAGE on schema {schema}",
          f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
    for p in ("SELECT", "INSERT", "DELETE"):
        check("select has_table_privilege(%s, %s)", (q, p), f"{p} on {schema}.{table}",
              f"GRANT {p} ON {q} TO {role}")
    if (partitioned and strategy == "swap") or evolve or new_partition:
        owner = conn.execute("select pg_get_userbyid(relowner) from pg_class where oid = %s::regclass",
                             (q,)).fetchone()[0]
        why = ("swap publishes by DETACH/ATTACH" if strategy == "swap" and partitioned else
               "evolve adds columns" if evolve else "a new partition is ATTACHed")
        if not conn.execute("select pg_has_role(%s, 'USAGE')", (owner,)).fetchone()[0]:
            out.append((f"membership in {owner}, the owner of {schema}.{table} ({why}; PostgreSQL allows it to "
                        "the owner only)", f'GRANT "{owner}" TO {role}'))
        check("select has_schema_privilege(%s, 'CREATE')", (schema,),
              f"CREATE on schema {schema} (partitions are created there)", f'GRANT CREATE ON SCHEMA "{schema}" TO {role}')
    return out


def explain_privileges(method: F) -> F:
    """Decorate a :class:`PartitionLoader` step: turn ``permission denied`` into a
    :class:`PrivilegeError` naming the missing privileges and their GRANTs."""
    import psycopg

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except psycopg.errors.InsufficientPrivilege as e:
            primary = e.diag.message_primary or str(e)
            raise PrivilegeError(_explain(self, primary)) from None

    return wrapper  # type: ignore[return-value]


def _explain(loader: Any, primary: str) -> str:
    head = f"{loader.table} partition {loader.partition_value}: {primary}, so nothing was changed."
    try:
        schema, table = validate_table_name(loader.table)
        conn = loader.connection()
        try:
            with conn.transaction():
                info = target_info(conn, loader.table)
                try:
                    with conn.transaction():
                        new_partition = info.partitioned and \
                            partition_for(conn, info, loader.partition_value) is None
                except Exception:  # noqa: BLE001 - e.g. no USAGE on the schema: reported below anyway
                    new_partition = False
                missing = missing_privileges(conn, schema=schema, table=table, strategy=loader.publish_strategy,
                                             partitioned=info.partitioned, evolve=bool(loader.add_columns),
                                             new_partition=new_partition)
            role = conn.execute("select current_user").fetchone()[0]
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - the diagnosis must never hide the original error
        return f"{head} Check the loader role's grants against docs/security.md."
    if not missing:
        return f"{head} Check role {role}'s grants against docs/security.md."
    lacks = "; ".join(what for what, _ in missing)
    grants = " ".join(dict.fromkeys(g if g.endswith(";") or "docs/" in g else g + ";" for _, g in missing))
    return f"{head} Role {role} lacks: {lacks}. Grant it: {grants} (docs/security.md lists every grant)"
