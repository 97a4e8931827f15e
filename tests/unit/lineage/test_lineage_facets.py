"""safeload's custom facets follow the spec's rules for custom facets, and the JSON schemas
safeload ships for them hold the facets it emits; the event validator the lineage tests use
catches what is wrong."""

from __future__ import annotations

import copy
import json
import re
import uuid

import pytest
from jsonschema import Draft202012Validator
from olschema import safeload_schemas
from olschema import validator as make_validator
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.serde import Serde

from safeload.lineage import builders
from safeload.lineage.facets import CUSTOM_FACETS, PRODUCER, SCHEMA_BASE, SCHEMA_DIR, schema_url

KEYS = {"SafeloadPartitionOutputDatasetFacet": "safeload_partition",
        "SafeloadContractInputDatasetFacet": "safeload_contract", "SafeloadQualityGateRunFacet": "safeload_qualityGate"}


@pytest.fixture(scope="module")
def validator():
    return make_validator()  # the spec's own files where SAFELOAD_OPENLINEAGE_SPEC names them


@pytest.mark.parametrize("cls", CUSTOM_FACETS, ids=lambda c: c.__name__)
def test_custom_facets_are_named_and_described_as_the_spec_asks(cls):
    name = cls.__name__
    # {prefix}{Name}{Entity}Facet, key {prefix}_{name}
    assert re.fullmatch(r"Safeload[A-Z]\w*(Run|Job|InputDataset|OutputDataset|Dataset)Facet", name)
    doc = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    Draft202012Validator.check_schema(doc)
    assert doc["$id"] == f"{SCHEMA_BASE}/{name}.json"
    assert cls._get_schema() == schema_url(name) == f"{doc['$id']}#/$defs/{name}"
    assert list(doc["properties"]) == [KEYS[name]]
    assert re.search(r"/v\d+\.\d+\.\d+/", doc["$id"])  # a tag: immutable


def test_every_shipped_schema_has_its_facet():
    assert sorted(p.stem for p in SCHEMA_DIR.glob("*.json")) == sorted(c.__name__ for c in CUSTOM_FACETS)
    assert set(safeload_schemas()) == {f"{SCHEMA_BASE}/{c.__name__}.json" for c in CUSTOM_FACETS}


def event(**facets) -> dict:
    staging = InputDataset("postgres://db:5432", "dw.safeload_staging.stg_orders_1",
                           facets={"symlinks": builders.symlink("postgres://db:5432", "dw.public.orders")},
                           inputFacets={"dataQualityAssertions": builders.assertions({"results": [
                               {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"},
                                "success": False, "severity": "critical", "expected": "0 nulls",
                                "observed_value": {"element_count": 3, "unexpected_count": 1}}]})})
    target = OutputDataset("postgres://db:5432", "dw.public.orders", outputFacets={
        "outputStatistics": builders.output_statistics(3, 8192),
        "safeload_partition": builders.partition_facet("order_date", [
            {"value": "2024-05-02", "state": "published", "publishedBy": "swap", "rowsWritten": 3}])})
    run = Run(runId=str(uuid.uuid4()), facets={"safeload_qualityGate": builders.gate_facet(
        {"success": True, "engine": "sql", "results": []})})
    return Serde.to_dict(RunEvent(eventType=RunState.COMPLETE, eventTime="2024-05-02T01:00:00+00:00", run=run,
                                  job=Job("safeload", "orders_daily.publish"), inputs=[staging], outputs=[target],
                                  producer="https://github.com/apache/airflow/tree/providers-openlineage/2.20.3"))


def test_an_event_of_safeload_facets_is_valid(validator):
    e = event()
    assert e["outputs"][0]["outputFacets"]["safeload_partition"]["_producer"] == PRODUCER
    assert validator.validate(e) == []


@pytest.mark.parametrize(
    ("break_it", "found"),
    [
        pytest.param(lambda e: e["outputs"][0]["outputFacets"]["safeload_partition"]["partitions"][0].update(
            state="done"), "'done' is not one of", id="custom-facet-enum"),
        pytest.param(lambda e: e["outputs"][0]["outputFacets"]["safeload_partition"].pop("partitionColumn"),
                     "'partitionColumn' is a required property", id="custom-facet-required"),
        pytest.param(lambda e: e["outputs"][0]["outputFacets"]["outputStatistics"].update(rowCount="3"),
                     "is not of type 'integer'", id="standard-facet-type"),
        pytest.param(lambda e: e["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0].pop("success"),
                     "'success' is a required property", id="nested-required"),
        pytest.param(lambda e: e["inputs"][0]["facets"].update(
            dataQualityAssertions=e["inputs"][0]["inputFacets"].pop("dataQualityAssertions")),
            "InputDatasetFacet", id="facet-in-the-wrong-place"),
        pytest.param(lambda e: e["run"].update(runId="run-1"), "is not a 'uuid'", id="run-id"),
        pytest.param(lambda e: e.update(eventTime="2024-05-02"), "is not a 'date-time'", id="event-time"),
        pytest.param(lambda e: e["run"]["facets"]["safeload_qualityGate"].update(
            _schemaURL="https://example.com/Unknown.json#/$defs/Unknown"), "no schema", id="unknown-schema"),
        pytest.param(lambda e: e["run"]["facets"]["safeload_qualityGate"].pop("_producer"),
                     "'_producer' is a required property", id="base-facet"),
    ],
)
def test_the_validator_finds_what_is_wrong(validator, break_it, found):
    e = copy.deepcopy(event())
    break_it(e)
    problems = validator.validate(e)
    assert any(found in p for p in problems), problems
