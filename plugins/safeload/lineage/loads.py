"""The OpenLineage events of partition loads, incremental reloads and SCD2 rebuilds.

Write-audit-publish as the catalogue sees it:

* stage: the source (file, or the source query's tables) → the staging table, which
  names the target it will become a partition of (``symlinks``) and carries
  ``safeload_partition`` in state ``staged``;
* the gate (:mod:`safeload.lineage.checks`): the staging table with its assertions;
* publish: the staging table → the target, with ``schema``, ``outputStatistics`` (rows
  published; bytes of the partition when it was swapped in), ``columnLineage`` and
  ``safeload_partition`` in state ``published`` (how, checksum, rows replaced and
  quarantined);
* a one-task overwrite: the source → the target, with the gate's staging table as an input.

A load that stopped reports the target with ``safeload_partition`` in state ``refused``:
the partition did not change, and the event's ``errorMessage`` (added by the provider)
and the gate's failed assertions say why.
"""

from __future__ import annotations

import os
from typing import Any

from safeload.lineage import builders, catalog, provider
from safeload.lineage.naming import source_dataset, split_table
from safeload.lineage.operators import facts
from safeload.metadata import STAGING_SCHEMA


def partition_load(op: Any, moment: str, ti: Any) -> Any:
    """Lineage of ``StagePartitionOperator``, ``PublishPartitionOperator`` and
    ``PartitionOverwriteOperator`` (``op._load_role``: stage, publish, overwrite)."""
    db = provider.database(op.postgres_conn_id)
    known = facts(op)
    role = op._load_role
    contract = _contract(op)
    target = known.get("target") or op.table or getattr(contract, "table", None)
    column = known.get("partition_column") or op.partition_column or getattr(contract, "partition_column", None)
    staged, published = known.get("staged"), known.get("published")
    inputs: list[Any] = []
    job_facets: dict[str, Any] = {}
    run_facets: dict[str, Any] = {}
    source_id = None
    if role in ("stage", "overwrite"):
        found, source_id = _source_inputs(op, contract, staged)
        inputs += found.inputs
        job_facets.update(found.job_facets)
    elif staged:  # publish: the staging table the stage task wrote
        inputs.append(db.input(staged["staging_fqn"], {"symlinks": builders.symlink(db.namespace, db.name(target))}))
    if role == "overwrite" and staged and known.get("gate") is not None:
        from safeload.lineage.checks import checked_dataset

        inputs.append(checked_dataset(db, staged["staging_fqn"], known["gate"], target=target))
        run_facets["safeload_qualityGate"] = builders.gate_facet(known["gate"], target=target,
                                                                 partition_value=staged["partition_value"])
    if not target or (moment == "start" and role == "stage"):  # a stage's staging table is not named yet
        return provider.lineage(inputs, job_facets=job_facets, run_facets=run_facets)
    if moment == "start":
        return provider.lineage(inputs, [db.output(target)], job_facets=job_facets, run_facets=run_facets)
    if moment == "failure" or (role == "stage" and not staged) or (role != "stage" and not published):
        entry = builders.refused_partition(op.partition_value, staged, staging_schema=STAGING_SCHEMA)
        out = db.output(target, output_facets={"safeload_partition": builders.partition_facet(column, [entry])})
        return provider.lineage(inputs, [out], job_facets=job_facets, run_facets=run_facets)
    if role == "stage":  # the source's columns into staging
        out = _written(db, staged["staging_fqn"], rows=staged["rows_loaded"], lineage_from=source_id,
                       source_columns=_source_columns(contract), size_of=None,
                       partition=builders.partition_facet(column, [builders.staged_partition(
                           staged, staging_schema=STAGING_SCHEMA)]))
        out.facets["symlinks"] = builders.symlink(db.namespace, db.name(target))
        return provider.lineage(inputs, [out], job_facets=job_facets, run_facets=run_facets)
    if role == "publish":  # every written column of the target comes from its namesake in staging
        lineage_from, source_columns = (db.namespace, db.name(staged["staging_fqn"])) if staged else None, None
    else:  # an overwrite: the source's columns into the target
        lineage_from, source_columns = source_id, _source_columns(contract)
    swapped = published.get("published_by") == "swap"
    out = _written(db, target, rows=published["rows"], lineage_from=lineage_from, source_columns=source_columns,
                   size_of=(column, published["partition_value"]) if swapped else None,
                   partition=builders.partition_facet(column, [builders.published_partition(published)]))
    return provider.lineage(inputs, [out], job_facets=job_facets, run_facets=run_facets)


def reload(op: Any, moment: str, ti: Any) -> Any:
    """Lineage of a ``ReloadPartitionsOperator``: the source query's tables, each staged day
    with its gate's assertions, and the target with every day republished (or refused)."""
    db = provider.database(op.postgres_conn_id)
    known = facts(op)
    found = provider.query_lineage(op.source_conn_id, op.source_query)
    inputs = list(found.inputs)
    gates = known.get("gates") or {}
    staged = [s.to_dict() for s in known.get("staged") or []]  # StageResults
    for s in staged:
        inputs.append(_staging_input(db, s, gates.get(s["partition_value"]), target=op.table))
    run_facets = dict(found.run_facets)
    if gates:
        run_facets["safeload_qualityGate"] = _all_gates(gates, target=op.table)
    if moment == "start":
        return provider.lineage(inputs, [db.output(op.table)], run_facets=run_facets, job_facets=found.job_facets)
    published = known.get("published") or []
    if moment == "failure" or len(published) < len(staged):
        entries = [builders.refused_partition(s["partition_value"], s, staging_schema=STAGING_SCHEMA)
                   for s in staged]
        out = db.output(op.table, output_facets={"safeload_partition": builders.partition_facet(
            op.partition_column, entries)} if entries else {})
    else:
        out = _written(db, op.table, rows=sum(p["rows"] for p in published), lineage_from=None, source_columns=(),
                       size_of=None, partition=builders.partition_facet(
                           op.partition_column, [builders.published_partition(p) for p in published])
                       if published else None)
    return provider.lineage(inputs, [out], run_facets=run_facets, job_facets=found.job_facets)


def plan(op: Any, moment: str, ti: Any) -> Any:
    """Lineage of an ``IncrementalPlanOperator``: it reads the source query's tables and the target."""
    found = provider.query_lineage(op.source_conn_id, op.source_query)
    target = provider.database(op.postgres_conn_id).input(op.table)
    return provider.lineage([*found.inputs, target], job_facets=found.job_facets)


def scd2(op: Any, moment: str, ti: Any) -> Any:
    """Lineage of an ``SCD2RebuildOperator``: the snapshots → the dimension, the key and
    tracked columns copied as they are."""
    db = provider.database(op.postgres_conn_id)
    snapshots = db.input(op.snapshots)
    result = facts(op).get("result")
    if moment != "complete" or result is None:
        return provider.lineage([snapshots], [db.output(op.dimension)])
    out = _written(db, op.dimension, rows=result.get("versions"), lineage_from=(db.namespace, snapshots.name),
                   source_columns=[op.key, *op.tracked], size_of=None, partition=None)
    return provider.lineage([snapshots], [out])


# --------------------------------------------------------------------------- parts

def _contract(op: Any) -> Any:
    if not getattr(op, "contract", None):
        return None
    from safeload.contracts.files import load_contract

    return load_contract(op.contract)


def _source_columns(contract: Any) -> list[str] | None:
    """The source's columns, where known without reading it: the contract's."""
    return contract.column_names if contract is not None else None


def _source_inputs(op: Any, contract: Any, staged: dict[str, Any] | None) -> tuple[Any, tuple[str, str] | None]:
    """The stage's source as inputs, and the ``(namespace, name)`` of a file source."""
    if op.source_sql:
        return provider.query_lineage(op.source_conn_id, op.source_sql), None
    if not op.source:
        return provider.lineage(), None
    namespace, name = source_dataset(op.source)
    facets = builders.contract_dataset_facets(contract) if contract is not None else {}
    input_facets = {}
    if staged:
        size = os.path.getsize(op.source) if namespace == "file" and os.path.exists(op.source) else None
        input_facets["inputStatistics"] = builders.input_statistics(staged.get("rows_source"), size, 1)
    return provider.lineage([provider.file_input(namespace, name, facets, input_facets)]), (namespace, name)


def _written(db: Any, table: str, *, rows: int | None, lineage_from: tuple[str, str] | None,
             source_columns: Any, size_of: tuple[str, str] | None, partition: Any) -> Any:
    """An output table as it is after the write: its schema from the catalogue, rows written,
    bytes (a swapped-in partition's size, or the whole table's for a staging table), the
    columns copied one to one from ``lineage_from``, and ``safeload_partition``."""
    schema, name = split_table(table)
    with db.connect() as conn:
        columns = catalog.table_columns(conn, schema, name)
        if size_of is not None:
            size = catalog.partition_size(conn, schema, name, *size_of)
        elif schema == STAGING_SCHEMA:
            size = catalog.relation_size(conn, schema, name)
        else:
            size = None
    facets: dict[str, Any] = {}
    if columns:
        facets["schema"] = builders.schema(columns)
    if lineage_from is not None:
        written = [c[0] for c in columns if not c[3]]
        col_lineage = builders.identity_lineage(
            written, *lineage_from, source_columns if source_columns is not None else written)
        if col_lineage is not None:
            facets["columnLineage"] = col_lineage
    output_facets: dict[str, Any] = {"outputStatistics": builders.output_statistics(rows, size)}
    if partition is not None:
        output_facets["safeload_partition"] = partition
    return db.output(table, facets, output_facets)


def _staging_input(db: Any, staged: dict[str, Any], gate: dict[str, Any] | None, *, target: str) -> Any:
    fqn = f"{STAGING_SCHEMA}.{staged['staging_table']}"
    input_facets = {}
    if gate is not None:
        input_facets["dataQualityAssertions"] = builders.assertions(gate)
        measured = builders.metrics(gate)
        if measured is not None:
            input_facets["dataQualityMetrics"] = measured
    return db.input(fqn, {"symlinks": builders.symlink(db.namespace, db.name(target))}, input_facets)


def _all_gates(gates: dict[str, dict[str, Any]], *, target: str) -> Any:
    """One ``safeload_qualityGate`` for the gates of several partitions: success when all passed."""
    merged = {"success": all(g["success"] for g in gates.values()),
              "engine": next(iter(gates.values())).get("engine"),
              "results": [r for g in gates.values() for r in g.get("results") or []]}
    return builders.gate_facet(merged, target=target, partition_value=", ".join(sorted(gates)))
