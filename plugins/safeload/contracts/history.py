"""Keep what a contract check saw: one row per check in ``safeload.contract_checks``.

The drift events of the UI (docs/ui.md) come from here. Pure: no Airflow import.
"""

from __future__ import annotations

from typing import Any

from safeload.identifiers import validate_table_name


def target_name(table: str) -> str:
    """The table as the loader records it in ``load_history.target``: ``schema.table``."""
    schema, name = validate_table_name(table)
    return f"{schema}.{name}"


def record_contract_check(conninfo: str, report: dict[str, Any], *, table: str,
                          audit: dict[str, Any] | None = None) -> int:
    """Append a contract check's report to ``safeload.contract_checks``.

    :param conninfo: libpq URI or ``key=value`` string of the warehouse
    :param report: :meth:`DriftReport.to_dict` (``contract``, ``source``, ``policy``,
        ``decision``, ``passed``, ``changes``)
    :param table: the contract's target table (``public.orders`` or ``orders``)
    :param audit: ``dag_id``, ``run_id``, ``task_id``, ``try_number`` of the checking task
    :returns: the new row's id
    """
    import psycopg
    from psycopg.types.json import Jsonb

    from safeload.metadata import ensure_metadata

    a = audit or {}
    with psycopg.connect(conninfo, autocommit=True, application_name="safeload") as conn:
        ensure_metadata(conn)
        return conn.execute(
            "insert into safeload.contract_checks (target, contract, source, policy, decision, passed, changes,"
            " dag_id, run_id, task_id, try_number) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " returning id",
            (target_name(table), report.get("contract"), report.get("source"), report.get("policy"),
             report.get("decision") or "unknown", bool(report.get("passed")), Jsonb(report.get("changes") or []),
             a.get("dag_id"), a.get("run_id"), a.get("task_id"), a.get("try_number")),
        ).fetchone()[0]
