"""The thin bridge to ``apache-airflow-providers-openlineage``: its naming, its SQL parser,
its ``OperatorLineage``.

A warehouse table is named by the postgres provider's own function
(``PostgresHook.get_openlineage_database_info``: ``postgres://host:port`` and the
connection's database) and the provider's ``SQLParser.create_namespace``, exactly as an
``SQLExecuteQueryOperator`` on the same connection names it, so safeload's datasets join
up with other DAGs' events. A query source's tables come from the provider's SQL parser.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import Dataset, InputDataset, OutputDataset

from safeload.lineage.naming import split_table, table_name


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database as OpenLineage names it, and how to read its catalogue."""

    conn_id: str
    namespace: str
    database: str | None

    def name(self, table: str) -> str:
        """``database.schema.table`` of ``schema.table`` (``public`` when no schema)."""
        return table_name(self.database, *split_table(table))

    def input(self, table: str, facets: dict[str, Any] | None = None,
              input_facets: dict[str, Any] | None = None) -> InputDataset:
        return InputDataset(namespace=self.namespace, name=self.name(table), facets=facets or {},
                            inputFacets=input_facets or {})

    def output(self, table: str, facets: dict[str, Any] | None = None,
               output_facets: dict[str, Any] | None = None) -> OutputDataset:
        return OutputDataset(namespace=self.namespace, name=self.name(table), facets=facets or {},
                             outputFacets=output_facets or {})

    def connect(self) -> Any:
        """A new autocommit psycopg connection (for :mod:`safeload.lineage.catalog`)."""
        import psycopg

        from safeload.hooks import warehouse_conninfo

        return psycopg.connect(warehouse_conninfo(self.conn_id), autocommit=True,
                               application_name="safeload-lineage")


def database(conn_id: str) -> Database:
    """The OpenLineage identity of the PostgreSQL database of Airflow connection ``conn_id``."""
    from airflow.providers.openlineage.sqlparser import SQLParser
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=conn_id)
    info = hook.get_openlineage_database_info(hook.get_connection(conn_id))
    return Database(conn_id, SQLParser.create_namespace(info), info.database)


def query_lineage(conn_id: str, query: str) -> OperatorLineage:
    """The tables ``query`` reads (with their schemas, where the provider can read them) and
    its ``sql`` job facet, from the provider's SQL parser on connection ``conn_id``."""
    from airflow.providers.openlineage.sqlparser import get_openlineage_facets_with_sql
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    found = get_openlineage_facets_with_sql(hook=PostgresHook(postgres_conn_id=conn_id), sql=query,
                                            conn_id=conn_id, database=None)
    if found is None:
        return OperatorLineage()
    inputs = [InputDataset(namespace=d.namespace, name=d.name, facets=d.facets or {}) for d in found.inputs]
    return OperatorLineage(inputs=inputs, run_facets=found.run_facets, job_facets=found.job_facets)


def file_input(namespace: str, name: str, facets: dict[str, Any] | None = None,
               input_facets: dict[str, Any] | None = None) -> InputDataset:
    return InputDataset(namespace=namespace, name=name, facets=facets or {}, inputFacets=input_facets or {})


def lineage(inputs: Iterable[Dataset] = (), outputs: Iterable[Dataset] = (), *,
            run_facets: dict[str, Any] | None = None, job_facets: dict[str, Any] | None = None) -> OperatorLineage:
    return OperatorLineage(inputs=list(inputs), outputs=list(outputs), run_facets=run_facets or {},
                           job_facets=job_facets or {})
