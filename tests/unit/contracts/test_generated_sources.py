"""Files a careful producer would deliver for our contracts pass ``safeload contract check``,
and files that break one rule each are refused, naming the rule's column
(tests/contract_sources.py writes them as CSV, JSON lines and Parquet from the contract
alone). tests/unit/contracts/test_real_odcs_contracts.py runs the same over real ODCS
contracts when they are on disk; the shapes they hit are in
tests/unit/contracts/data/producer_types.odcs.yaml.
"""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import pytest
import yaml

from contract_sources import check_plan, plan_for
from safeload.contracts.check import check_source
from safeload.contracts.files import load_contract
from safeload.contracts.odcs import parse_odcs
from safeload.contracts.types import check_value, make_checker, parse_type

ROOT = Path(__file__).resolve().parents[3]
DATA = Path(__file__).parent / "data"
CONTRACTS = sorted((ROOT / "include" / "contracts").glob("*.yaml")) + sorted(DATA.glob("*.yaml"))


@pytest.mark.parametrize("path", CONTRACTS, ids=[p.name for p in CONTRACTS])
def test_a_conforming_file_passes_and_each_broken_rule_fails_naming_its_column(path, tmp_path):
    contract = load_contract(path)
    doc = yaml.safe_load(path.read_text())
    plan = plan_for(contract, doc if "apiVersion" in doc else None)
    assert not plan.problems
    out = check_plan(plan, contract, tmp_path)
    assert out.refused == {}
    assert out.missed == []
    assert out.mutations >= len(contract.rules)  # every rule broken, in at least one format


@pytest.mark.parametrize(("value", "ok"), [
    ("2024-05-02T10:00:00.000Z", True),  # ODCS's default format yyyy-MM-ddTHH:mm:ss.SSSZ
    ("2024-05-02T10:00:00+00:00", True),
    ("2024-05-02T10:00:00", True),
    ("2024-05-02T10:00:00+02:00", False),  # another wall time than the UTC one the column holds
])
def test_a_timestamp_column_takes_utc_marked_values_and_refuses_other_offsets(value, ok):
    t = parse_type("timestamp")
    assert (check_value(value, t) is None) == ok
    assert (make_checker(t)(value) is None) == ok
    if not ok:
        assert "timestamptz" in check_value(value, t)


def _parquet(tmp_path, columns):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({n: pa.array(v, t) for n, (v, t) in columns.items()}), path)
    return str(path)


def _contract(*props):
    return parse_odcs({"apiVersion": "v3.0.2", "kind": "DataContract", "id": "x", "version": "1", "status": "active",
                       "schema": [{"name": "t", "properties": list(props)}]}, source="t.odcs.yaml")


def test_an_odcs_integer_or_number_without_format_takes_a_parquet_column_of_any_width(tmp_path):
    import pyarrow as pa

    contract = _contract({"name": "n", "logicalType": "integer"}, {"name": "x", "logicalType": "number"},
                         {"name": "d", "logicalType": "number", "physicalType": "DOUBLE"},
                         {"name": "u", "physicalType": "numeric"})
    src = _parquet(tmp_path, {"n": ([1, 2], pa.int32()), "x": ([decimal.Decimal("1.5"), None], pa.decimal128(38, 9)),
                              "d": ([1.5, 2.5], pa.float64()), "u": ([decimal.Decimal("3.25"), None],
                                                                     pa.decimal128(10, 2))})
    report = check_source(contract, src)
    assert report.passed and report.changes == [], report.summary()


def test_a_postgresql_physical_type_still_fixes_the_width(tmp_path):
    import pyarrow as pa

    contract = _contract({"name": "n", "logicalType": "integer", "physicalType": "bigint"})
    report = check_source(contract, _parquet(tmp_path, {"n": ([1, 2], pa.int32())}))
    assert [(c.kind, c.column) for c in report.breaking] == [("type_narrowed", "n")]


def test_a_parquet_string_column_carries_a_uuid_each_value_checked_with_its_row(tmp_path):
    """Most writers put a UUID in a Parquet string: a uuid contract column takes it, and a
    value that is not a UUID is refused naming its row, as a CSV file's would be."""
    import uuid

    import pyarrow as pa

    contract = _contract({"name": "id", "logicalType": "integer"}, {"name": "ref", "physicalType": "uuid"})
    refs = [str(uuid.uuid4()) for _ in range(5)] + [None, "{" + str(uuid.uuid4()) + "}", uuid.uuid4().hex]
    report = check_source(contract, _parquet(tmp_path, {"id": (list(range(8)), pa.int64()),
                                                         "ref": (refs, pa.string())}))
    assert report.passed and report.changes == [], report.summary()
    refs[2], refs[6] = "not-a-uuid", "1234"
    report = check_source(contract, _parquet(tmp_path, {"id": (list(range(8)), pa.int64()),
                                                         "ref": (refs, pa.string())}))
    (change,) = report.breaking
    assert (change.kind, change.column) == ("invalid_values", "ref"), report.summary()
    assert "2 value(s) do not fit uuid (row 3: 'not-a-uuid' is not a uuid; row 7: '1234' is not a uuid)" \
        in change.detail
    # a string column against another contract type is still a change of type
    report = check_source(contract, _parquet(tmp_path, {"id": ([str(i) for i in range(8)], pa.string()),
                                                         "ref": (refs, pa.string())}))
    assert ("type_narrowed", "id") in [(c.kind, c.column) for c in report.breaking]


def test_parquet_structs_lists_uuids_and_times_are_read_and_a_key_over_a_struct_is_checked(tmp_path):
    import uuid

    import pyarrow as pa

    contract = _contract(
        {"name": "id", "logicalType": "integer", "primaryKey": True, "primaryKeyPosition": 1},
        {"name": "obj", "logicalType": "object", "primaryKey": True, "primaryKeyPosition": 2},
        {"name": "tags", "logicalType": "array"},
        {"name": "ref", "physicalType": "uuid"},
        {"name": "at", "logicalType": "time"})
    same = {"id": 1, "label": "a"}
    columns = {"id": ([1, 1], pa.int64()), "obj": ([same, same], pa.struct([("id", pa.int64()), ("label", pa.string())])),
               "tags": ([["a"], []], pa.list_(pa.string())), "ref": ([uuid.uuid4().bytes] * 2, pa.uuid()),
               "at": ([dt.time(8, 0), dt.time(9, 30)], pa.time64("us"))}
    report = check_source(contract, _parquet(tmp_path, columns))
    assert [(c.rule, c.column, c.count) for c in report.breaking] == [("primary_key", "id, obj", 1)], report.summary()
    columns["obj"] = ([same, {"id": 2, "label": "a"}], columns["obj"][1])
    report = check_source(contract, _parquet(tmp_path, columns))
    assert report.passed and report.changes == [], report.summary()
