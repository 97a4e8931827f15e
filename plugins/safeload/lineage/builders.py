"""Standard and custom OpenLineage facets from safeload's results. No Airflow, no database.

Every function takes safeload's public results as they travel through XCom (the drift
report's, ``StageResult``'s, ``PublishResult``'s and the gate's ``to_dict()``) or a
:class:`~safeload.contracts.model.Contract`, and returns openlineage-python facet objects.
Nothing is estimated: a metric goes into ``dataQualityMetrics`` only when a check
computed it exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    documentation_dataset,
    input_statistics_input_dataset,
    output_statistics_output_dataset,
    ownership_dataset,
    schema_dataset,
    symlinks_dataset,
)

from safeload.lineage.facets import (
    SafeloadContractInputDatasetFacet,
    SafeloadPartitionOutputDatasetFacet,
    SafeloadQualityGateRunFacet,
)

#: checks whose observed value is a column metric (a number), and the metric's name
_METRIC_CHECKS = {
    "expect_column_min_to_be_between": "min",
    "expect_column_max_to_be_between": "max",
    "expect_column_sum_to_be_between": "sum",
    "expect_column_unique_value_count_to_be_between": "distinctCount",
}
_INTEGER_METRICS = {"nullCount", "distinctCount"}


# --------------------------------------------------------------------------- datasets

def schema(columns: Iterable[tuple[Any, ...]]) -> schema_dataset.SchemaDatasetFacet:
    """The ``schema`` facet of ``(name, type, description, ...)`` columns."""
    return schema_dataset.SchemaDatasetFacet(fields=[
        schema_dataset.SchemaDatasetFacetFields(name=name, type=type_, description=description or None)
        for name, type_, description, *_ in columns])


def contract_schema(contract: Any) -> schema_dataset.SchemaDatasetFacet:
    """The contract's columns as a ``schema`` facet (the declared types and descriptions)."""
    return schema((c.name, str(c.type), c.description) for c in contract.columns)


def contract_dataset_facets(contract: Any) -> dict[str, Any]:
    """``schema``, and ``ownership`` and ``documentation`` where the contract gives them."""
    facets: dict[str, Any] = {"schema": contract_schema(contract)}
    if contract.owner:
        facets["ownership"] = ownership_dataset.OwnershipDatasetFacet(
            owners=[ownership_dataset.Owner(name=contract.owner, type="team")])
    if contract.description:
        facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(description=contract.description)
    return facets


def symlink(namespace: str, name: str) -> symlinks_dataset.SymlinksDatasetFacet:
    """A ``symlinks`` facet naming the table a staging table is the next partition of."""
    return symlinks_dataset.SymlinksDatasetFacet(identifiers=[
        symlinks_dataset.Identifier(namespace=namespace, name=name, type="TABLE")])


def identity_lineage(columns: Iterable[str], namespace: str, name: str,
                     source_columns: Iterable[str]) -> column_lineage_dataset.ColumnLineageDatasetFacet | None:
    """``columnLineage`` of columns copied unchanged from the dataset ``namespace``/``name``:
    each output column with a source column of the same name; None when there is none."""
    have = set(source_columns)
    fields = {
        c: column_lineage_dataset.Fields(inputFields=[column_lineage_dataset.InputField(
            namespace=namespace, name=name, field=c,
            transformations=[column_lineage_dataset.Transformation(type="DIRECT", subtype="IDENTITY")])])
        for c in columns if c in have}
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields) if fields else None


def output_statistics(rows: int | None, size: int | None = None
                      ) -> output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet:
    return output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=rows, size=size)


def input_statistics(rows: int | None, size: int | None = None, files: int | None = None
                     ) -> input_statistics_input_dataset.InputStatisticsInputDatasetFacet:
    return input_statistics_input_dataset.InputStatisticsInputDatasetFacet(rowCount=rows, size=size,
                                                                           fileCount=files)


# --------------------------------------------------------------------------- loads

def staged_partition(staged: Mapping[str, Any], *, staging_schema: str) -> dict[str, Any]:
    """One ``safeload_partition`` entry of a ``StageResult.to_dict()``, state ``staged``."""
    return _drop_none({
        "value": str(staged["partition_value"]), "state": "staged", "checksum": staged.get("checksum"),
        "rowsSource": staged.get("rows_source"), "rowsWritten": staged.get("rows_loaded"),
        "rowsQuarantined": staged.get("rows_quarantined"),
        "stagingTable": f"{staging_schema}.{staged['staging_table']}" if staged.get("staging_table") else None,
    })


def published_partition(published: Mapping[str, Any]) -> dict[str, Any]:
    """One ``safeload_partition`` entry of a ``PublishResult.to_dict()``, state ``published``."""
    return _drop_none({
        "value": str(published["partition_value"]), "state": "published",
        "publishedBy": published.get("published_by"), "checksum": published.get("checksum"),
        "rowsSource": published.get("rows_source"), "rowsWritten": published.get("rows"),
        "rowsQuarantined": published.get("rows_quarantined"), "rowsReplaced": published.get("rows_replaced"),
        "addedColumns": list(published.get("added_columns") or []) or None,
        "loadHistoryId": published.get("history_id"),
    })


def refused_partition(value: str, staged: Mapping[str, Any] | None = None, *,
                      staging_schema: str = "") -> dict[str, Any]:
    """A ``safeload_partition`` entry for a load that stopped: the partition is unchanged.
    What the stage did, if it ran, is kept (rows read, quarantined, the staging table)."""
    entry = staged_partition(staged, staging_schema=staging_schema) if staged else {"value": str(value)}
    entry["state"] = "refused"
    return entry


def partition_facet(column: str, partitions: list[dict[str, Any]]) -> SafeloadPartitionOutputDatasetFacet:
    return SafeloadPartitionOutputDatasetFacet(partitionColumn=column, partitions=partitions)


# --------------------------------------------------------------------------- contracts

def contract_facet(contract: Any, report: Mapping[str, Any]) -> SafeloadContractInputDatasetFacet:
    """``safeload_contract`` of a contract check's report (``DriftReport.to_dict()``)."""
    from pathlib import Path

    return SafeloadContractInputDatasetFacet(
        contract=Path(str(contract.path)).name, dataset=contract.dataset, version=str(contract.version),
        owner=contract.owner or None, policy=report["policy"], decision=report["decision"],
        passed=bool(report["passed"]), rowsScanned=report.get("rows_scanned"),
        changes=[_drop_none(dict(c)) for c in report.get("changes") or []])


# --------------------------------------------------------------------------- quality

def assertions(report: Mapping[str, Any]) -> data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet:
    """Every check of a gate report (``GateResult.to_dict()``) as an assertion: the
    expectation type, its column, whether it passed, severity, expected and observed."""
    out = []
    for r in report.get("results") or []:
        kwargs = dict(r.get("kwargs") or {})
        column = kwargs.pop("column", None)
        kwargs.pop("result_format", None)
        observed = r.get("observed_value")
        actual = r.get("exception") or (None if observed is None else
                                        observed if isinstance(observed, str) else json.dumps(observed))
        out.append(data_quality_assertions_dataset.Assertion(
            assertion=r["type"], success=bool(r["success"]), column=column, severity=r.get("severity"),
            name=f"{r['type']}({column})" if column else r["type"], expected=r.get("expected"),
            actual=actual, params=kwargs or None))
    return data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(assertions=out)


def metrics(report: Mapping[str, Any]) -> data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet | None:
    """The metrics a gate computed exactly, as ``dataQualityMetrics``: the row count, and per
    column the null count (not-null checks; other checks' missing count), the distinct count
    (a uniqueness check that found no duplicate, or a unique-value-count check), and the
    numeric min, max and sum of the checks that measure them. None when there are none."""
    rows: int | None = None
    columns: dict[str, dict[str, Any]] = {}
    for r in report.get("results") or []:
        if r.get("exception"):
            continue
        kind, observed = r["type"], r.get("observed_value")
        column = (r.get("kwargs") or {}).get("column")
        if kind == "expect_table_row_count_to_be_between" and _is_number(observed):
            rows = int(observed)
            continue
        if isinstance(observed, dict) and isinstance(observed.get("element_count"), int):
            rows = rows if rows is not None else observed["element_count"]
            if column is None:
                continue
            m = columns.setdefault(column, {})
            unexpected, missing = observed.get("unexpected_count"), observed.get("missing_count")
            if kind == "expect_column_values_to_not_be_null" and isinstance(unexpected, int):
                m["nullCount"] = unexpected
            elif isinstance(missing, int):
                m["nullCount"] = missing
            if kind == "expect_column_values_to_be_unique" and unexpected == 0 and isinstance(missing, int):
                m["distinctCount"] = observed["element_count"] - missing
        elif kind in _METRIC_CHECKS and column is not None and _is_number(observed):
            name = _METRIC_CHECKS[kind]
            columns.setdefault(column, {})[name] = int(observed) if name in _INTEGER_METRICS else float(observed)
    columns = {c: m for c, m in columns.items() if m}
    if not columns and rows is None:
        return None
    return data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
        rowCount=rows, columnMetrics={c: data_quality_metrics_input_dataset.ColumnMetrics(**m)
                                      for c, m in columns.items()})


def gate_facet(report: Mapping[str, Any], *, target: str | None = None,
               partition_value: str | None = None) -> SafeloadQualityGateRunFacet:
    """``safeload_qualityGate`` of a gate report."""
    stats = report.get("statistics") or {}
    results = report.get("results") or []
    failed = [r for r in results if not r.get("success")]
    return SafeloadQualityGateRunFacet(
        success=bool(report["success"]), engine=report.get("engine") or "sql",
        evaluated=stats.get("evaluated", len(results)),
        failedCritical=stats.get("failed_critical", sum(r.get("severity") == "critical" for r in failed)),
        failedWarning=stats.get("failed_warning", sum(r.get("severity") == "warning" for r in failed)),
        failedInfo=stats.get("failed_info", sum(r.get("severity") == "info" for r in failed)),
        suite=report.get("suite") or None, target=target, partitionValue=partition_value,
        resultLocation=report.get("location") or None)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}
