"""Hold a live source against its contract: introspect, diff, apply the policy.

The one entry point shared by ``SchemaContractCheckOperator`` and
``safeload contract check``. Pure: no Airflow import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safeload.contracts.diff import DriftReport, diff
from safeload.contracts.introspect import SourceSchema, detect_format, introspect, introspect_postgres, introspect_query
from safeload.contracts.model import Contract
from safeload.contracts.files import load_contract
from safeload.errors import SourceError
from safeload.identifiers import validate_table_name
from safeload.storage import StoredFile, source_file


def as_contract(contract: Contract | str | Path) -> Contract:
    return contract if isinstance(contract, Contract) else load_contract(contract)


def check_source(
    contract: Contract | str | Path,
    source: str | StoredFile | None = None,
    *,
    fmt: str | None = None,
    policy: str | None = None,
    conn: Any = None,
    table: str | None = None,
    query: str | None = None,
    rule_policy: str = "fail",
) -> DriftReport:
    """Introspect ``source`` (a file path, a :class:`~safeload.storage.StoredFile` in object
    storage, or ``table``/``query`` through ``conn``) and diff it: its shape and, in the same
    pass, the contract's value rules.

    :param policy: overrides the contract's ``schema_policy`` (fail, warn, evolve)
    :param rule_policy: what a broken value rule does: ``fail`` (breaking, the default) or
        ``warn`` (reported, the check passes)
    """
    c = as_contract(contract)
    schema = read_source_schema(c, source, fmt=fmt, conn=conn, table=table, query=query)
    return diff(c, schema, policy=policy, rule_policy=rule_policy)


def read_source_schema(contract: Contract, source: str | StoredFile | None, *, fmt: str | None = None, conn: Any = None,
                       table: str | None = None, query: str | None = None) -> SourceSchema:
    if table or query:
        if conn is None:
            raise SourceError("a table or query source needs a database connection")
        if query:
            return introspect_query(conn, query, contract)
        schema, name = validate_table_name(table)
        return introspect_postgres(conn, name, schema, contract)
    if not source:
        raise SourceError("no source given: pass a file path, a table or a query")
    source = source_file(source)  # a URL: one StoredFile, so every read of the check is of one version
    schema = introspect(source, contract, fmt or detect_format(str(source)))
    if isinstance(source, StoredFile):  # the verdict is about one version of the object
        source.verify("while the contract check read it")
    return schema


def columns_to_add(report: DriftReport) -> list[tuple[str, str]]:
    """``(name, type)`` of the columns ``evolve`` adds: the source's type, else text."""
    return [(change.column, change.source_type or "text") for change in report.columns_to_add]
