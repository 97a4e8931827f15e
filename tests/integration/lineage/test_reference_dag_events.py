"""The reference DAGs' OpenLineage events: valid against the spec, and true to the warehouse.

One Airflow process runs the plan below with the real provider and its file transport
(conftest.run_dags); every event it emitted is validated against the OpenLineage JSON
schemas, and the values are held against what the warehouse and safeload's own history
tables say: rows published, partition sizes and checksums, each gate check's outcome,
each contract decision.
"""

from __future__ import annotations

import os

import psycopg
import pytest

from tests.integration.lineage.conftest import lineage_runs

LR = lineage_runs()
CLEAN, BAD, DRIFT, OVERWRITE_BAD = LR.CLEAN, LR.BAD, LR.DRIFT, LR.OVERWRITE_BAD


@pytest.fixture(scope="module")
def runs(_module_db, airflow_db, tmp_path_factory):
    done = LR.run_dags(_module_db, tmp_path_factory.mktemp("lineage"), LR.PLAN)
    return {(r["dag"], r["date"][:10]): r for r in done}


@pytest.fixture
def wh(_module_db):
    with psycopg.connect(_module_db, autocommit=True) as conn:
        yield conn


def event(run: dict, task: str, kind: str) -> dict:
    found = [e for e in run["events"] if e["job"]["name"] == f"{run['dag']}.{task}" and e["eventType"] == kind]
    assert len(found) == 1, [(e["job"]["name"], e["eventType"]) for e in run["events"]]
    return found[0]


def gate_results(conn, target: str, partition: str, task: str) -> list[tuple]:
    return sorted(conn.execute(
        "select expectation_type, kwargs->>'column', success, severity from safeload.quality_results "
        "where target = %s and partition_value = %s and task_id = %s", (target, partition, task)).fetchall())


def assertion_rows(dataset: dict) -> list[tuple]:
    return sorted((a["assertion"], a.get("column"), a["success"], a["severity"])
                  for a in dataset["inputFacets"]["dataQualityAssertions"]["assertions"])


def test_every_event_is_valid_openlineage(runs, ol_validator):
    problems, seen = [], 0
    for run in runs.values():
        for e in run["events"]:
            seen += 1
            problems += [f"{e['job']['name']} {e['eventType']}: {p}" for p in ol_validator.validate(e)]
    assert seen > 30
    assert problems == []


def test_every_task_reports_its_start_and_end(runs):
    for run in runs.values():
        for task, state in run["tasks"].items():
            kinds = sorted(e["eventType"] for e in run["events"] if e["job"]["name"] == f"{run['dag']}.{task}")
            if state in ("success", "failed"):
                assert kinds == sorted(["START", "COMPLETE" if state == "success" else "FAIL"]), (task, kinds)


def test_dataset_names_are_the_postgres_providers(runs, _module_db, monkeypatch):
    """The target's name is the one an SQLExecuteQueryOperator on the same connection gets
    from the provider's SQL parser, so the catalogue joins the two up."""
    from airflow.providers.openlineage.sqlparser import get_openlineage_facets_with_sql
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from openlineage.client.naming.dataset import Postgres

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", _module_db)
    theirs = get_openlineage_facets_with_sql(PostgresHook(postgres_conn_id="warehouse"), "select * from public.orders",
                                             "warehouse", None, use_connection=False).inputs[0]
    ours = event(runs["orders_daily", CLEAN], "publish", "COMPLETE")["outputs"][0]
    assert (ours["namespace"], ours["name"]) == (theirs.namespace, theirs.name)
    params = psycopg.conninfo.conninfo_to_dict(_module_db)
    spec = Postgres(host=params["host"], port=str(params["port"]), database=params["dbname"], schema="public",
                    table="orders")
    assert (ours["namespace"], ours["name"]) == (spec.get_namespace(), spec.get_name())


def test_a_clean_day_reports_source_staging_checks_and_published_partition(runs, wh):
    run = runs["orders_daily", CLEAN]
    assert run["state"] == "success", run["tasks"]
    history = wh.execute("select rows_source, rows_loaded, rows_quarantined, checksum, id from safeload.load_history "
                         "where partition_value = %s and status = 'published'", (CLEAN,)).fetchone()

    check = event(run, "check_contract", "COMPLETE")["inputs"][0]
    assert check["namespace"] == "file" and check["name"].endswith(f"/orders/{CLEAN}.csv")
    contract = check["inputFacets"]["safeload_contract"]
    assert (contract["decision"], contract["passed"], contract["version"], contract["owner"]) == \
        ("ok", True, "1.0.0", "commerce-data")
    assert contract["rowsScanned"] == 300
    assert [f["name"] for f in check["facets"]["schema"]["fields"]] == \
        ["order_id", "order_date", "customer_id", "amount", "currency", "status", "created_at"]
    assert check["facets"]["ownership"]["owners"] == [{"name": "commerce-data", "type": "team"}]

    stage = event(run, "stage", "COMPLETE")
    file_in = stage["inputs"][0]
    assert (file_in["namespace"], file_in["name"]) == (check["namespace"], check["name"])
    assert file_in["inputFacets"]["inputStatistics"]["rowCount"] == history[0] == 300
    assert file_in["inputFacets"]["inputStatistics"]["size"] == os.path.getsize(file_in["name"])
    staging = stage["outputs"][0]
    target = event(run, "publish", "COMPLETE")["outputs"][0]
    assert ".safeload_staging.stg_orders_" in staging["name"]
    assert staging["facets"]["symlinks"]["identifiers"] == [
        {"namespace": target["namespace"], "name": target["name"], "type": "TABLE"}]
    assert staging["outputFacets"]["outputStatistics"]["rowCount"] == 300
    [staged] = staging["outputFacets"]["safeload_partition"]["partitions"]
    assert (staged["state"], staged["value"], staged["rowsWritten"], staged["checksum"]) == \
        ("staged", CLEAN, 300, history[3])
    lineage = staging["facets"]["columnLineage"]["fields"]
    assert lineage["amount"]["inputFields"][0] == {
        "namespace": "file", "name": file_in["name"], "field": "amount",
        "transformations": [{"type": "DIRECT", "subtype": "IDENTITY"}]}

    audit = event(run, "audit_staging", "COMPLETE")["inputs"][0]
    assert audit["name"] == staging["name"]  # the gate ran on what the stage wrote
    assert assertion_rows(audit) == gate_results(wh, "public.orders", CLEAN, "audit_staging")
    metrics = audit["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 300
    order_id = metrics["columnMetrics"]["order_id"]
    assert (order_id["nullCount"], order_id["distinctCount"]) == (0, 300)

    publish = event(run, "publish", "COMPLETE")
    assert publish["inputs"][0]["name"] == staging["name"]
    [part] = target["outputFacets"]["safeload_partition"]["partitions"]
    rows = wh.execute("select count(*) from public.orders where order_date = %s", (CLEAN,)).fetchone()[0]
    leaf = wh.execute("select tableoid from public.orders where order_date = %s limit 1", (CLEAN,)).fetchone()[0]
    size = wh.execute("select pg_total_relation_size(%s)", (leaf,)).fetchone()[0]
    assert target["outputFacets"]["outputStatistics"] == {**target["outputFacets"]["outputStatistics"],
                                                         "rowCount": rows, "size": size}
    assert rows == 300
    assert (part["state"], part["value"], part["publishedBy"], part["checksum"], part["rowsQuarantined"],
            part["loadHistoryId"]) == ("published", CLEAN, "swap", history[3], history[2], history[4])
    assert target["outputFacets"]["safeload_partition"]["partitionColumn"] == "order_date"
    assert set(target["facets"]["columnLineage"]["fields"]) == {f["name"] for f in target["facets"]["schema"]["fields"]}


def test_a_gate_that_stops_the_publish_reports_its_failed_checks(runs, wh):
    run = runs["orders_daily", BAD]
    assert run["tasks"]["audit_staging"] == "failed" and run["tasks"]["publish"] == "upstream_failed"
    failed = event(run, "audit_staging", "FAIL")
    assert "FAILED" in failed["run"]["facets"]["errorMessage"]["message"]
    gate = failed["run"]["facets"]["safeload_qualityGate"]
    assert (gate["success"], gate["target"], gate["partitionValue"]) == (False, "public.orders", BAD)
    checked = failed["inputs"][0]
    assert assertion_rows(checked) == gate_results(wh, "public.orders", BAD, "audit_staging")
    failing = [a for a in checked["inputFacets"]["dataQualityAssertions"]["assertions"] if not a["success"]]
    assert {(a["assertion"], a["column"]) for a in failing} >= {
        ("expect_column_values_to_be_unique", "order_id"), ("expect_column_values_to_be_between", "amount")}
    assert gate["failedCritical"] == sum(a["severity"] == "critical" for a in failing) > 0
    assert not [e for e in run["events"] if e["job"]["name"] == "orders_daily.publish"]
    assert wh.execute("select count(*) from public.orders where order_date = %s", (BAD,)).fetchone()[0] == 0


def test_breaking_drift_reports_the_contracts_decision(runs, wh):
    from safeload.contracts.check import check_source

    run = runs["orders_daily", DRIFT]
    failed = event(run, "check_contract", "FAIL")
    source = failed["inputs"][0]
    facet = source["inputFacets"]["safeload_contract"]
    assert (facet["decision"], facet["passed"], facet["policy"]) == ("fail", False, "warn")
    kept = wh.execute("select changes from safeload.contract_checks where decision = 'fail'").fetchone()[0]
    assert facet["changes"] == [{k: v for k, v in c.items() if v is not None} for c in kept]
    recomputed = check_source("include/contracts/orders.yaml", source["name"]).to_dict()
    assert [(c["kind"], c["column"], c["class"]) for c in facet["changes"]] == \
        [(c["kind"], c["column"], c["class"]) for c in recomputed["changes"]]
    assert any(c["class"] == "breaking" for c in facet["changes"])


def test_a_refused_overwrite_reports_the_unchanged_partition_and_why(runs, wh):
    run = runs["orders_overwrite", OVERWRITE_BAD]
    assert run["tasks"]["load_orders"] == "failed"
    failed = event(run, "load_orders", "FAIL")
    [target] = failed["outputs"]
    [part] = target["outputFacets"]["safeload_partition"]["partitions"]
    assert (part["state"], part["value"], part["rowsSource"]) == ("refused", OVERWRITE_BAD, 300)
    assert "outputStatistics" not in target["outputFacets"]
    file_in, checked = failed["inputs"]
    assert file_in["namespace"] == "file"
    assert assertion_rows(checked) == gate_results(wh, "public.orders", OVERWRITE_BAD, "load_orders")
    assert failed["run"]["facets"]["safeload_qualityGate"]["success"] is False
    assert "errorMessage" in failed["run"]["facets"]
    assert wh.execute("select count(*) from public.orders where order_date = %s", (OVERWRITE_BAD,)).fetchone()[0] == 0


def test_the_scd2_rebuild_reports_the_dimension(runs, wh):
    run = runs["customers_scd2", "2024-05-01"]
    assert run["state"] == "success", run["tasks"]
    done = event(run, "rebuild_dim_customers", "COMPLETE")
    [snapshots], [dim] = done["inputs"], done["outputs"]
    assert snapshots["name"].endswith(".public.customers_snapshot") and dim["name"].endswith(".public.dim_customers")
    versions = wh.execute("select count(*) from public.dim_customers").fetchone()[0]
    assert dim["outputFacets"]["outputStatistics"]["rowCount"] == versions > 0
    assert set(dim["facets"]["columnLineage"]["fields"]) == {"customer_id", "name", "email", "country", "segment"}


def test_the_incremental_reload_reports_the_source_tables_and_each_day(runs, wh):
    run = runs["payments_incremental", "2024-05-02"]
    assert run["state"] == "success", run["tasks"]
    check = event(run, "check_contract", "COMPLETE")
    assert [d["name"].split(".", 1)[1] for d in check["inputs"]] == ["app.payments"]
    assert check["inputs"][0]["inputFacets"]["safeload_contract"]["decision"] in ("ok", "warn")
    plan = event(run, "plan", "COMPLETE")
    assert sorted(d["name"].split(".", 1)[1] for d in plan["inputs"]) == ["app.payments", "public.payments"]
    reload = event(run, "reload", "COMPLETE")
    [target] = reload["outputs"]
    [part] = target["outputFacets"]["safeload_partition"]["partitions"]
    rows = wh.execute("select count(*) from public.payments where payment_date = '2024-05-01'").fetchone()[0]
    assert (part["state"], part["value"], part["rowsWritten"]) == ("published", "2024-05-01", rows)
    assert target["outputFacets"]["outputStatistics"]["rowCount"] == rows == 150
    source, staging = reload["inputs"]
    assert source["name"].endswith(".app.payments")
    assert assertion_rows(staging) == gate_results(wh, "public.payments", "2024-05-01", "reload")
    assert "sql" in reload["job"]["facets"]


def test_the_example_events_of_the_docs_are_what_the_code_emits(runs, ol_validator):
    """docs/lineage.md's examples (include/demo/lineage_examples.py) have the datasets and
    facets these runs emit, and are valid events: regenerate them when this fails."""
    import json
    import re

    from tests.integration.lineage.conftest import ROOT

    def shape(e):
        datasets = [(side, d["namespace"].split(":")[0], sorted(d.get("facets") or {}),
                     sorted(d.get("inputFacets") or d.get("outputFacets") or {}))
                    for side in ("inputs", "outputs") for d in e.get(side) or []]
        run_facets = sorted(k for k in e["run"]["facets"] if k.startswith("safeload_") or k == "errorMessage")
        return datasets, run_facets

    text = (ROOT / "docs" / "lineage.md").read_text()
    examples = re.findall(r"`(\w+)\.(\w+)`, (\w+), run of ([\d-]+):\n\n```json\n(.*?)\n```", text, re.S)
    assert len(examples) == 9
    for dag, task, kind, date, body in examples:
        documented = json.loads(body)
        assert shape(documented) == shape(event(runs[dag, date], task, kind)), f"{dag}.{task} {kind}"
        assert ol_validator.validate(documented) == [], f"{dag}.{task} {kind}"
