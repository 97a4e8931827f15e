"""The OpenLineage events of contract checks and quality gates.

``contract_check``: the source is the input, with the contract's ``schema`` (and its
``ownership`` and ``documentation`` where the contract gives them) and, once the check
ran, ``safeload_contract``: the contract's version and owner, the policy, its decision
and every drift change. A check that stopped the load says so in ``decision: fail``.

``quality_gate``: the table the gate ran on is the input, with every check as a
``dataQualityAssertions`` assertion and the metrics the checks computed as
``dataQualityMetrics``; a staging table names the table it will become a partition of
(``symlinks``). ``safeload_qualityGate`` on the run says whether the publish may go on.
"""

from __future__ import annotations

from typing import Any

from safeload.lineage import builders, provider
from safeload.lineage.naming import source_dataset
from safeload.lineage.operators import facts


def contract_check(op: Any, moment: str, ti: Any) -> Any:
    """Lineage of a ``SchemaContractCheckOperator``."""
    from safeload.contracts.files import load_contract

    contract = load_contract(op.contract)
    report = facts(op).get("report")
    input_facets = {}
    if report is not None:
        input_facets["safeload_contract"] = builders.contract_facet(contract, report)
    static = builders.contract_dataset_facets(contract)
    if op.source_query:
        found = provider.query_lineage(op.source_conn_id, op.source_query)
        for d in found.inputs:  # the contract describes the query's result, not each table
            d.inputFacets = dict(input_facets)
        return provider.lineage(found.inputs, run_facets=found.run_facets, job_facets=found.job_facets)
    if op.source_table:
        dataset = provider.database(op.source_conn_id).input(op.source_table, static, input_facets)
    else:
        dataset = provider.file_input(*source_dataset(op.source), static, input_facets)
    return provider.lineage([dataset])


def quality_gate(op: Any, moment: str, ti: Any) -> Any:
    """Lineage of a ``QualityGateOperator`` (and of the gate inside a partition overwrite)."""
    db = provider.database(op.postgres_conn_id)
    staged = facts(op).get("staged")
    table = op.table or (staged or {}).get("staging_fqn")
    if table is None:
        return provider.lineage()  # on start, the staging table is not known yet
    report = facts(op).get("gate")
    target = (staged or {}).get("target")
    dataset = checked_dataset(db, table, report, target=target)
    run_facets = {}
    if report is not None:
        run_facets["safeload_qualityGate"] = builders.gate_facet(
            report, target=target or op.table, partition_value=(staged or {}).get("partition_value"))
    return provider.lineage([dataset], run_facets=run_facets)


def checked_dataset(db: Any, table: str, report: dict[str, Any] | None, *, target: str | None = None) -> Any:
    """The table a gate ran on, as an input: its schema, the gate's assertions and metrics,
    and, for a staging table, a symlink to the ``target`` it will become a partition of."""
    from safeload.lineage import catalog
    from safeload.lineage.naming import split_table

    facets: dict[str, Any] = {}
    with db.connect() as conn:
        columns = catalog.table_columns(conn, *split_table(table))
    if columns:
        facets["schema"] = builders.schema(columns)
    if target:
        facets["symlinks"] = builders.symlink(db.namespace, db.name(target))
    input_facets: dict[str, Any] = {}
    if report is not None:
        input_facets["dataQualityAssertions"] = builders.assertions(report)
        measured = builders.metrics(report)
        if measured is not None:
            input_facets["dataQualityMetrics"] = measured
    return db.input(table, facets, input_facets)
