"""The value rules of a contract, checked on the source itself in the same pass as its shape."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

from safeload.contracts import duplicates
from safeload.contracts.check import check_source
from safeload.contracts.files import load_contract
from safeload.contracts.introspect import introspect_csv
from safeload.contracts.model import parse_contract

ROOT = Path(__file__).resolve().parents[3]
ORDERS = ROOT / "include" / "contracts" / "orders.yaml"
DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(ROOT / "include"))

HEADER = "order_id,order_date,customer_id,amount,currency,status,created_at\n"
ROW = "{id},2024-05-02,7,{amount},{currency},{status},2024-05-02T10:00:00+00:00\n"


def orders_csv(tmp_path, rows=20, **over):
    """A clean orders file; ``over`` maps a 0-based row index to the fields it changes."""
    lines = [HEADER]
    for i in range(rows):
        fields = {"id": 1000 + i, "amount": "10.50", "currency": "EUR", "status": "paid", **over.get(str(i), {})}
        lines.append(ROW.format(**fields))
    p = tmp_path / "orders.csv"
    p.write_text("".join(lines))
    return p


@pytest.mark.parametrize(("over", "path", "column", "lines"), [
    pytest.param({"3": {"id": 1001}}, "columns[0].primary_key", "order_id", [5], id="duplicate-key"),
    pytest.param({"2": {"amount": "-12.50"}}, "columns[3].min", "amount", [4], id="below-min"),
    pytest.param({"2": {"amount": "999999.50"}, "5": {"amount": "100000.01"}}, "columns[3].max", "amount", [4, 7],
                 id="above-max"),
    pytest.param({"0": {"currency": "XXX"}}, "columns[4].allowed_values", "currency", [2], id="currency"),
    pytest.param({"9": {"status": "bogus"}}, "columns[5].allowed_values", "status", [11], id="status"),
    pytest.param({"4": {"status": ""}}, "columns[5].nullable", "status", [6], id="null"),
])
@pytest.mark.parametrize("engine", ["auto", "python"])
def test_each_rule_of_the_orders_contract_is_enforced_with_column_and_lines(tmp_path, over, path, column, lines,
                                                                            engine):
    contract = load_contract(ORDERS)
    from safeload.contracts.diff import diff

    report = diff(contract, introspect_csv(orders_csv(tmp_path, **over), contract, engine=engine))
    assert report.decision == "fail"
    [change] = [c for c in report.changes if c.klass == "breaking"]
    assert (change.path, change.column, change.count) == (path, column, len(lines))
    assert [e["line"] for e in change.examples] == lines
    broken = [r for r in report.rules() if r["status"] == "broken"]
    assert [r["path"] for r in broken] == [path]
    assert report.rules_count() == {"passed": 11, "broken": 1, "warning": 0, "not checked": 0}


def test_the_bound_itself_passes_and_exclusive_bounds_are_exact(tmp_path):
    p = orders_csv(tmp_path, **{"0": {"amount": "100000.00"}, "1": {"amount": "0"}})
    assert check_source(ORDERS, str(p)).decision == "ok"
    contract = parse_contract({"dataset": "x", "columns": [{"name": "a", "type": "numeric(12,2)"}]})
    odcs = load_contract(DATA / "hive_partitions.odcs.yaml")
    rule = next(r for r in odcs.rules if r.kind == "minimum")
    assert rule.exclusive and rule.path == "schema[0].properties[5].logicalTypeOptions.exclusiveMinimum"
    assert contract.rules == ()


def test_generated_value_faults_fail_the_check_and_a_clean_day_passes(tmp_path):
    import generate_orders

    clean = generate_orders.write(tmp_path / "clean", dt.date(2024, 5, 2), 2000, set())
    assert check_source(ORDERS, str(clean)).decision == "ok"
    for fault, kind in (("duplicates", "primary_key"), ("out_of_range", "minimum"), ("bad_status", "allowed_values"),
                        ("nulls", "not_null")):
        path = generate_orders.write(tmp_path / fault, dt.date(2024, 5, 2), 2000, {fault})
        report = check_source(ORDERS, str(path))
        assert report.decision == "fail", fault
        assert {c.rule for c in report.breaking} == {kind}, (fault, report.summary())


def test_rule_policy_warn_reports_and_passes(tmp_path):
    p = orders_csv(tmp_path, **{"3": {"id": 1001}})
    report = check_source(ORDERS, str(p), rule_policy="warn")
    assert report.passed and report.decision == "warn"
    assert [c.klass for c in report.changes] == ["warning"]


def test_real_world_shapes_parse_pass_a_conforming_file_and_report_what_is_not_checked(tmp_path):
    contract = load_contract(DATA / "hive_partitions.odcs.yaml")
    # load settings a load could not use are reported, not fatal
    assert contract.table is None and contract.partition_column is None
    assert any("inventory-events" in p for p in contract.extra["load_problems"])
    assert any("year, country are all partitioned" in p for p in contract.extra["load_problems"])
    assert "Bytes field" in contract.column_names
    report = check_source(contract, str(DATA / "hive_partitions.csv"))
    assert report.decision == "ok", report.summary()
    rules = {r["path"]: r for r in report.to_dict()["rules"]}
    statuses = {p: r["status"] for p, r in rules.items()}
    assert statuses["schema[0].quality[0]"] == "passed"  # rowCount > 0
    assert statuses["schema[0].quality[1]"] == "passed"  # duplicateValues on (event_id, year)
    assert statuses["schema[0].quality[2]"] == "not checked"  # sql
    assert statuses["schema[0].properties[3].quality[0]"] == "passed"  # nullValues < 50 %
    assert rules["schema[0].properties[3].quality[1]"]["offending"] == 2  # missingValues: '' and N/A, <= 2
    assert statuses["schema[0].properties[4].physicalType"] == "not checked"  # map<string,bigint>
    assert statuses["schema[0].properties[6].quality[2]"] == "not checked"  # text
    assert statuses["schema[0].properties[6].quality[3]"] == "not checked"  # custom
    assert statuses["schema[0].properties[2].logicalTypeOptions.pattern"] == "passed"
    assert statuses["schema[0].properties[2].logicalTypeOptions.minLength"] == "passed"
    # every quality rule of the file is in the report, checked or not
    assert len([p for p in rules if ".quality[" in p]) == 10


P = "schema[0].properties"


@pytest.mark.parametrize(("edit", "expected"), [
    pytest.param(lambda t: t.replace("4,2025,GB", "3,2025,GB"),
                 [(f"{P}[0].primaryKey", "breaking"), ("schema[0].quality[1]", "breaking")], id="composite-duplicate"),
    pytest.param(lambda t: t.replace(",DE,", ",D,", 1), [(f"{P}[2].logicalTypeOptions.minLength", "breaking")],
                 id="min-length"),
    pytest.param(lambda t: t.replace(",FR,", ",fr,"), [(f"{P}[2].logicalTypeOptions.pattern", "breaking")],
                 id="pattern"),
    pytest.param(lambda t: t.replace("{},2,out", "{},0,out"),
                 [(f"{P}[5].logicalTypeOptions.exclusiveMinimum", "breaking"), (f"{P}[5].quality[0]", "warning")],
                 id="exclusive-minimum"),
    pytest.param(lambda t: t.replace("{},5,in", "{},7,in"), [(f"{P}[5].quality[0]", "warning")],
                 id="warning-severity"),
    pytest.param(lambda t: t.replace(",in\n", ",lost\n", 1), [(f"{P}[6].quality[0]", "breaking")],
                 id="validValues-v30"),
    pytest.param(lambda t: t.replace(",x,", ",,"),
                 [(f"{P}[3].quality[0]", "breaking"), (f"{P}[3].quality[1]", "breaking")],
                 id="nullValues-and-missingValues-thresholds"),
])
def test_real_world_shapes_enforce_each_rule(tmp_path, edit, expected):
    src = tmp_path / "events.csv"
    src.write_text(edit((DATA / "hive_partitions.csv").read_text()))
    report = check_source(load_contract(DATA / "hive_partitions.odcs.yaml"), str(src))
    assert sorted((c.path, c.klass) for c in report.changes if c.rule) == expected, report.summary()
    assert report.passed is all(k == "warning" for _, k in expected)


def test_row_count_rule_on_a_query_of_rows(tmp_path):
    contract = load_contract(DATA / "hive_partitions.odcs.yaml")
    from dataclasses import replace

    from safeload.contracts.rules import Threshold

    rules = tuple(replace(r, threshold=Threshold("mustBeGreaterThan", 10)) if r.kind == "row_count" else r
                  for r in contract.rules)
    report = check_source(replace(contract, rules=rules), str(DATA / "hive_partitions.csv"))
    [change] = [c for c in report.changes if c.rule == "row_count"]
    assert change.klass == "breaking" and "4 rows" in change.detail and "> 10" in change.detail


@pytest.mark.parametrize("keys", ["int", "str"])
def test_unique_spills_to_partitions_and_finds_the_same_duplicates(tmp_path, monkeypatch, keys):
    ids = [f"{i}" if keys == "int" else f"k-{i}" for i in range(3000)] + ["17" if keys == "int" else "k-17"] * 2
    ids.insert(5, ids[2999])
    contract = parse_contract({"dataset": "d", "columns": [
        {"name": "id", "type": "bigint" if keys == "int" else "text", "unique": True}]})
    p = tmp_path / "d.csv"
    p.write_text("id\n" + "\n".join(ids) + "\n")
    in_memory = check_source(contract, str(p))
    monkeypatch.setattr(duplicates, "IN_MEMORY_ROWS", 10)  # force the partitioned path
    spilled = check_source(contract, str(p))
    for report in (in_memory, spilled):
        [change] = report.changes
        assert change.count == 3
        assert [e["line"] for e in change.examples] == [3002, 3003, 3004]
    assert json.dumps(in_memory.to_dict()["rules"]) == json.dumps(spilled.to_dict()["rules"])


def test_string_hash_is_stable_and_spreads():
    import pyarrow as pa

    h = duplicates.string_hash(pa.array(["a", "", "ab", "a", "ba", "x" * 300]))
    assert h[0] == h[3] and len({int(v) for v in h}) == 5


def test_jsonl_and_parquet_give_the_same_rule_findings(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    contract = parse_contract({"dataset": "d", "columns": [
        {"name": "id", "type": "bigint", "primary_key": True},
        {"name": "amount", "type": "numeric(12,2)", "min": 0, "max": 100},
        {"name": "cur", "type": "text", "allowed_values": ["EUR", "USD"], "nullable": False}]})
    rows = [(1, "5.00", "EUR"), (2, "-1.00", "USD"), (2, "500.00", "GBP"), (4, "7.50", None)]
    jl = tmp_path / "d.jsonl"
    jl.write_text("".join(json.dumps({"id": i, "amount": float(a), "cur": c}) + "\n" for i, a, c in rows))
    pqf = tmp_path / "d.parquet"
    from decimal import Decimal

    pq.write_table(pa.table({"id": pa.array([r[0] for r in rows], pa.int64()),
                             "amount": pa.array([Decimal(r[1]) for r in rows], pa.decimal128(12, 2)),
                             "cur": pa.array([r[2] for r in rows])}), pqf)
    found = {}
    for src in (jl, pqf):
        report = check_source(contract, str(src))
        found[src.suffix] = sorted((c.path, c.count, tuple(e.get("line", e.get("row")) for e in c.examples))
                                   for c in report.changes if c.rule)
    assert found[".jsonl"] == found[".parquet"] == [
        ("columns[0].primary_key", 1, (3,)), ("columns[1].max", 1, (3,)), ("columns[1].min", 1, (2,)),
        ("columns[2].allowed_values", 1, (3,)), ("columns[2].nullable", 1, (4,))]


def _finder_run(blocks, monkeypatch=None, max_runs=None):
    """Feed (keys, lines) blocks to a DuplicateFinder; the spill's size before finishing, and its result."""
    import pyarrow as pa

    if max_runs is not None:
        monkeypatch.setattr(duplicates, "MAX_RUNS", max_runs)
    finder = duplicates.DuplicateFinder(integer=True)
    for keys, lines in blocks:
        finder.add(pa.array(keys, pa.int64()), pa.array(lines, pa.int64()))
    finder._sink.flush()
    spilled = (finder._dir / "all.arrow").stat().st_size
    return spilled, finder.finish()


def test_keys_in_order_are_proven_unique_without_a_spill():
    blocks = [(range(k * 1000, (k + 1) * 1000), range(2 + k * 1000, 2 + (k + 1) * 1000)) for k in range(20)]
    spilled, result = _finder_run(blocks)
    assert result == (0, [])
    assert spilled < 1000  # the stream's header only: 20,000 keys held as one run


@pytest.mark.parametrize("max_runs", [pytest.param(None, id="runs-in-memory"),
                                      pytest.param(3, id="runs-spilled-when-too-many")])
def test_a_key_out_of_order_after_runs_is_found_with_its_first_line(monkeypatch, max_runs):
    # increasing keys with gaps (runs of 100) and a null or two (lines skip), then a key
    # seen thousands of rows before: the runs are written out as rows and grouped
    keys = [k + (k // 100) * 7 for k in range(5000)]
    lines = [2 + i + (i > 3000) for i in range(5000)]
    blocks = [(keys[s:s + 700], lines[s:s + 700]) for s in range(0, 5000, 700)]
    blocks.append(([keys[1234], 10**9, keys[4999]], [6000, 6001, 6002]))
    monkeypatch.setattr(duplicates, "_RUN_BATCH", 64)  # long runs are written out in several batches
    _, (count, found) = _finder_run(blocks, monkeypatch, max_runs)
    assert count == 2
    assert found == [(6000, keys[1234], lines[1234]), (6002, keys[4999], lines[4999])]


@pytest.mark.parametrize(("bound", "exclusive"), [
    pytest.param(("max", 1000), False, id="max-at-a-power-of-ten"),
    pytest.param(("max", 1000), True, id="exclusive-max-at-a-power-of-ten"),
    pytest.param(("min", 0), False, id="min-zero"),
    pytest.param(("min", 0), True, id="exclusive-min-zero"),
    pytest.param(("min", -1000), True, id="exclusive-min-below-zero"),
    pytest.param(("max", 99.99), False, id="max-inside-the-digits"),
])
@pytest.mark.parametrize("spread", [pytest.param(999, id="values-below-the-power"),
                                    pytest.param(1000, id="values-reaching-it")])
def test_bounds_decided_from_the_spelling_agree_with_every_value_read(tmp_path, bound, exclusive, spread):
    # a block of numbers whose digits show they all meet a bound skips reading them: the
    # count must still be the one every value read one by one gives, in both engines
    import random
    from decimal import Decimal

    rnd = random.Random(spread)
    values = [f"{rnd.choice(['', '-']) if bound[0] == 'min' else ''}{rnd.uniform(0, spread):.2f}" for _ in range(3000)]
    values += ["0", "0.00", "-0.00", f"{spread}", "999.99", ".5"]
    kind, b = bound
    key = ("exclusiveMaximum" if kind == "max" else "exclusiveMinimum") if exclusive else \
        ("maximum" if kind == "max" else "minimum")
    contract = parse_contract({"dataset": "d", "columns": [{"name": "a", "type": "numeric(12,2)"}]})
    from dataclasses import replace

    from safeload.contracts.rules import Rule

    rule = Rule("maximum" if kind == "max" else "minimum", ("a",), f"columns[0].{key}", arg=b, exclusive=exclusive)
    contract = replace(contract, rules=(rule,))
    p = tmp_path / "a.csv"
    p.write_text("a\n" + "\n".join(values) + "\n")
    d = Decimal(str(b))

    def breaks(v: Decimal) -> bool:
        if kind == "max":
            return v >= d if exclusive else v > d
        return v <= d if exclusive else v < d

    want = sum(breaks(Decimal(v)) for v in values)
    for engine in ("auto", "python"):
        [result] = introspect_csv(p, contract, engine=engine).rule_results
        assert result.offending == want, (engine, result.offending, want)
