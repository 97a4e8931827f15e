"""Facets built from safeload's results: gate reports, drift reports, stage and publish results."""

from __future__ import annotations

import datetime as dt

from openlineage.client.serde import Serde

from safeload.contracts.diff import Change, DriftReport
from safeload.contracts.model import parse_contract
from safeload.lineage import builders
from safeload.loads.loader import PublishResult, StageResult
from safeload.quality.gate import ExpectationResult, GateResult
from safeload.quality.sql_engine import map_result, metric_between
from safeload.quality.suite import ExpectationSpec


def check(etype, raw, severity="critical", **kwargs):
    return ExpectationResult.from_raw(ExpectationSpec(etype, kwargs, {}, severity), raw, "sql")


def mapped(etype, n, nonnull, unexpected, **kwargs):
    return check(etype, map_result(element_count=n, nonnull_count=nonnull, unexpected_count=unexpected,
                                   mostly=kwargs.pop("mostly", 1)), **kwargs)


REPORT = GateResult([
    mapped("expect_column_values_to_not_be_null", 300, None, 0, column="order_id"),
    mapped("expect_column_values_to_be_unique", 300, 300, 0, column="order_id"),
    mapped("expect_column_values_to_be_unique", 300, 298, 12, column="customer_id"),  # duplicates: no count
    mapped("expect_column_values_to_be_between", 300, 295, 3, column="amount", min_value=0),
    check("expect_column_min_to_be_between", metric_between(0.5, {"min_value": 0}), "warning", column="amount",
          min_value=0),
    check("expect_column_max_to_be_between", metric_between(dt.date(2024, 5, 2), {"max_value": "2030-01-01"}),
          column="order_date", max_value="2030-01-01"),  # a date: not a number the facet can hold
    check("expect_table_row_count_to_be_between", metric_between(300, {"min_value": 1}), min_value=1),
    check("expect_column_values_to_match_regex", {"success": False, "result": {}, "exception": "no such column"},
          column="ghost", regex="x"),
    mapped("expect_compound_columns_to_be_unique", 300, 300, 0, column_list=["order_id", "order_date"]),
], table="safeload_staging.stg_orders_1", suite="orders", engine="sql").to_dict()


def test_metrics_are_the_values_the_checks_computed_exactly():
    facet = Serde.to_dict(builders.metrics(REPORT))
    assert facet["rowCount"] == 300
    assert facet["columnMetrics"] == {
        "order_id": {"nullCount": 0, "distinctCount": 300, "quantiles": {}},
        "customer_id": {"nullCount": 2, "quantiles": {}},
        "amount": {"nullCount": 5, "min": 0.5, "quantiles": {}},
    }


def test_no_metric_at_all_gives_no_facet():
    only_types = GateResult([check("expect_column_values_to_be_of_type", {"success": True, "result": {
        "observed_value": "TEXT"}}, column="a", type_="TEXT")]).to_dict()
    assert builders.metrics(only_types) is None


def test_every_check_is_an_assertion_with_its_outcome():
    facet = builders.assertions(REPORT)
    got = [(a.assertion, a.column, a.success, a.severity) for a in facet.assertions]
    assert got == [(r["type"], r["kwargs"].get("column"), r["success"], r["severity"]) for r in REPORT["results"]]
    between = facet.assertions[3]
    assert (between.expected, between.params) == (">= 0", {"min_value": 0})
    assert between.actual == '{"element_count": 300, "unexpected_count": 3, "unexpected_percent": 1.0169491525423728, ' \
        '"missing_count": 5}'
    ghost = facet.assertions[7]
    assert (ghost.success, ghost.actual) == (False, "no such column")
    compound = facet.assertions[8]
    assert compound.column is None and compound.params == {"column_list": ["order_id", "order_date"]}


def test_gate_facet_counts_failures_by_severity():
    report = GateResult([
        mapped("expect_column_values_to_not_be_null", 10, None, 1, column="a"),
        mapped("expect_column_values_to_not_be_null", 10, None, 2, severity="warning", column="b"),
        mapped("expect_column_values_to_not_be_null", 10, None, 0, column="c"),
    ], suite="s", location="safeload.quality_results").to_dict()
    facet = builders.gate_facet(report, target="public.t", partition_value="2024-05-01")
    assert (facet.success, facet.evaluated, facet.failedCritical, facet.failedWarning, facet.failedInfo) == \
        (False, 3, 1, 1, 0)
    assert (facet.suite, facet.target, facet.partitionValue, facet.resultLocation) == \
        ("s", "public.t", "2024-05-01", "safeload.quality_results")


def test_contract_facet_carries_the_decision_and_every_change():
    contract = parse_contract({"dataset": "orders", "version": "2.1.0", "owner": "commerce-data",
                               "columns": [{"name": "amount", "type": "numeric(12,2)"}]}, "contracts/orders.yaml")
    report = DriftReport("contracts/orders.yaml", "orders.csv", "warn", [
        Change("renamed", "amount", "breaking", "amount is gone, amount_eur is new", "rename it back"),
        Change("added", "coupon", "additive", "a new column", "agree on it", source_type="text"),
    ], rows_scanned=100).to_dict()
    facet = builders.contract_facet(contract, report)
    assert (facet.contract, facet.dataset, facet.version, facet.owner, facet.policy, facet.decision, facet.passed,
            facet.rowsScanned) == ("orders.yaml", "orders", "2.1.0", "commerce-data", "warn", "fail", False, 100)
    assert facet.changes[0] == {"kind": "renamed", "column": "amount", "class": "breaking",
                                "detail": "amount is gone, amount_eur is new", "action": "rename it back"}
    assert facet.changes[1]["source_type"] == "text"
    statics = builders.contract_dataset_facets(contract)
    assert [f.name for f in statics["schema"].fields] == ["amount"]
    assert statics["ownership"].owners[0].name == "commerce-data" and "documentation" not in statics


def test_partition_entries_of_stage_publish_and_refusal():
    staged = StageResult("public.orders", "2024-05-02", "stg_orders_ab", "k", "o.csv", 300, 297, 3, "42").to_dict()
    assert builders.staged_partition(staged, staging_schema="safeload_staging") == {
        "value": "2024-05-02", "state": "staged", "checksum": "42", "rowsSource": 300, "rowsWritten": 297,
        "rowsQuarantined": 3, "stagingTable": "safeload_staging.stg_orders_ab"}
    published = PublishResult("public.orders", "2024-05-02", 297, 280, 3, 300, "42", 7, ["coupon"], 0.5,
                              published_by="swap").to_dict()
    assert builders.published_partition(published) == {
        "value": "2024-05-02", "state": "published", "publishedBy": "swap", "checksum": "42", "rowsSource": 300,
        "rowsWritten": 297, "rowsQuarantined": 3, "rowsReplaced": 280, "addedColumns": ["coupon"],
        "loadHistoryId": 7}
    refused = builders.refused_partition("2024-05-02", staged, staging_schema="safeload_staging")
    assert refused["state"] == "refused" and refused["rowsQuarantined"] == 3
    assert builders.refused_partition("2024-05-02") == {"value": "2024-05-02", "state": "refused"}


def test_column_lineage_only_where_a_column_has_a_namesake():
    facet = builders.identity_lineage(["a", "b", "c"], "file", "/d/o.csv", ["a", "c", "x"])
    assert sorted(facet.fields) == ["a", "c"]
    field = facet.fields["a"].inputFields[0]
    assert (field.namespace, field.name, field.field, field.transformations[0].subtype) == \
        ("file", "/d/o.csv", "a", "IDENTITY")
    assert builders.identity_lineage(["a"], "file", "/d/o.csv", ["b"]) is None
