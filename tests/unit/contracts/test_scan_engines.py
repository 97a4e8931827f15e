"""The Arrow CSV scan gives exactly the findings of the Python scan (decision 013).

Same rows, same null counts, same invalid counts, same examples (line, value, reason),
same ragged rows, same errors, on faulty files: the generator's fault switches, the
corners of CSV (quotes, newlines in values, CRLF, lone CR, BOM, blank lines, gzip) and
random values of every type.
"""

from __future__ import annotations

import datetime as dt
import gzip
import random
import sys
from pathlib import Path

import pytest

from safeload.contracts import csv_arrow
from safeload.contracts.introspect import introspect_csv
from safeload.contracts.model import parse_contract
from safeload.contracts.files import load_contract
from safeload.contracts.types import fast_filter, make_checker, parse_type
from safeload.contracts.vector_filters import arrow_clear
from safeload.errors import SourceError

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "include"))
ORDERS = load_contract(ROOT / "include" / "contracts" / "orders.yaml")

TYPES = ["bigint", "integer", "smallint", "numeric(12,2)", "numeric(2,2)", "numeric(5,0)", "numeric", "real",
         "double precision", "boolean", "date", "timestamp", "timestamptz", "time", "uuid", "char(3)",
         "varchar(5)", "text", "jsonb"]
TYPED = parse_contract({"dataset": "t", "columns": [{"name": f"c{i}", "type": t} for i, t in enumerate(TYPES)]})


def findings(schema):
    return {
        "columns": schema.column_names, "rows": schema.rows, "ragged": schema.ragged,
        "ragged_count": schema.ragged_count,
        "scans": {k: (v.nulls, v.invalid, v.examples) for k, v in schema.scans.items()},
        "rules": [r.to_dict() for r in schema.rule_results],
    }


def both(path, contract, expect_engine="arrow", arrow_blocks=True):
    """Scan with each engine; assert the same findings (or the same error).

    :param expect_engine: the engine the Arrow scan must end up using ("python" where it
        has to hand the whole file back)
    :param arrow_blocks: whether some blocks must have been cleared by Arrow itself
    """
    results = []
    for engine in ("python", "arrow"):
        try:
            schema = introspect_csv(path, contract, engine=engine)
            results.append(("ok", findings(schema), schema))
        except SourceError as e:
            results.append(("error", str(e), None))
    (kind_p, found_p, schema_p), (kind_a, found_a, schema_a) = results
    assert (kind_a, found_a) == (kind_p, found_p)
    if kind_a == "ok":
        assert schema_p.scan_engine == "python"
        # the Arrow engine really ran, or handed the file back where it must
        assert schema_a.scan_engine == expect_engine
        if expect_engine == "arrow" and arrow_blocks:
            assert schema_a.scan_blocks["arrow"] > 0, schema_a.scan_blocks
    return results[0][1]


@pytest.fixture
def small_blocks(monkeypatch):
    # many blocks, so block boundaries land everywhere (memory bound: 64 KiB)
    monkeypatch.setattr(csv_arrow, "ARROW_BLOCK_BYTES", 4096)
    monkeypatch.setattr(csv_arrow, "ARROW_MAX_BLOCK_BYTES", 65536)


@pytest.mark.parametrize("faults", [
    pytest.param((), id="clean"),
    pytest.param(("malformed",), id="malformed"),
    pytest.param(("nulls",), id="nulls"),
    pytest.param(("drift_type",), id="drift_type"),
    pytest.param(("drift_add",), id="drift_add"),
    pytest.param(("drift_remove",), id="drift_remove"),
    pytest.param(("drift_rename",), id="drift_rename"),
    pytest.param(("bad_status", "out_of_range", "duplicates", "late"), id="value-faults"),
    pytest.param(("malformed", "nulls", "drift_type", "drift_add"), id="everything-at-once"),
    pytest.param(("empty",), id="empty"),
])
def test_generated_faults_give_the_same_findings(tmp_path, small_blocks, faults):
    import generate_orders

    path = generate_orders.write(tmp_path, dt.date(2024, 5, 2), 4000, set(faults))
    result = both(path, ORDERS)
    if "malformed" in faults:  # the comparison is not vacuous: there is something to find
        assert result["ragged_count"] > 0 and result["scans"]["amount"][1] > 0
    if "nulls" in faults and "drift_type" not in faults:  # drift_type turns "" into "C-"
        assert result["scans"]["customer_id"][0] > 0
    if "drift_type" in faults:
        assert result["scans"]["customer_id"][1] == 4000 - result["ragged_count"] - result["scans"]["customer_id"][0]


def test_gzip_source(tmp_path, small_blocks):
    import generate_orders

    path = generate_orders.write(tmp_path, dt.date(2024, 5, 3), 3000, {"malformed", "nulls"})
    gz = tmp_path / "orders.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert both(gz, ORDERS)["ragged_count"] > 0


HEADER = ",".join(f"c{i}" for i in range(len(TYPES)))
GOOD = ("9000000000000000001,2147483647,32767,1234567890.12,0.99,12345,-1.5e3,1.5,2.5,YES,2024-02-29,"
        "2024-05-01 12:00:00.123,2024-05-01T12:00:00+02:00,12:30,123e4567-e89b-12d3-a456-426614174000,EUR,abcde,"
        'hello,"{""a"": 1}"')
VALUES = {  # per column: values to try, valid or not
    0: ["1", "+5", "-0", " 7", "7 ", "1234567890123456789", "9223372036854775808", "1.0", "٣", "", "x"],
    1: ["2147483648", "-2147483648", "123456789", "1e3"],
    2: ["32768", "-32768", "1234"],
    3: ["5.", ".5", "0000000000001.00", "99999999999.99", "9999999999.999", "12,5O", "NaN", "1e5", " 1", "."],
    4: ["0.994", "0.995", "1", "00.5", ".", "-.01"],
    5: ["123456", "12345.4", "12345.5", "0"],
    6: ["1e999", "inf", "-", "1_000"],
    9: ["t", "ON", "yes ", "maybe", "1", "0", "TRUE", "True", "tRuE"],
    10: ["2024-02-30", "2023-02-29", "2024-04-31", "0000-01-01", "2024-1-01", "20240501", "2024-05-01T00:00"],
    11: ["2024-05-01T12:00:00Z", "2024-05-01 24:00:00", "2024-05-01 12:00:00.1", "2024-05-31 23:59:59"],
    12: ["2024-05-01T12:00:00", "2024-05-01T12:00:00Z", "2024-05-31T23:59:60+00:00", "2024-05-01 12:00:00-23:59"],
    13: ["25:00", "12:00:00.5"],
    14: ["{123e4567-e89b-12d3-a456-426614174000}", "123e4567e89b12d3a456426614174000", "not-a-uuid"],
    15: ["EURO", "€€€", "E"],
    16: ["abcdef", "äöüßé", "äöüßéx"],
    17: ["tab\there", "ünïcode"],  # NUL: see test_csv_corners (a NUL sends its block to Python)
    18: ["[1,2", "null", "{}"],
}


def typed_rows(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    good = GOOD.split(",")
    # GOOD's last field is a quoted JSON value with a comma inside
    good = good[:18] + [",".join(good[18:])]
    lines = []
    for _ in range(n):
        row = list(good)
        for col, values in VALUES.items():
            if rnd.random() < 0.3:
                row[col] = rnd.choice(values)
        lines.append(",".join(_quote(v) for v in row[:18]) + "," + row[18])
    return lines


def _quote(v: str) -> str:
    return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n\r') else v


@pytest.mark.parametrize("seed", range(3))
def test_every_type_random_values(tmp_path, small_blocks, seed):
    # most lines carry no quote (their blocks go through Arrow); one in 40 keeps its quoted
    # JSON value, and values with a comma are quoted too (those blocks go through Python)
    lines = [line if i % 40 == 0 else line.rsplit(",", 1)[0] + ",{}" for i, line in enumerate(typed_rows(2000, seed))]
    path = tmp_path / "typed.csv"
    path.write_text(HEADER + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    schema = introspect_csv(path, TYPED, engine="arrow")
    assert schema.scan_blocks["arrow"] > 0 and schema.scan_blocks["python"] > 0, schema.scan_blocks
    result = both(path, TYPED)
    invalid = {k: v[1] for k, v in result["scans"].items()}
    assert invalid["c0"] > 0 and invalid["c10"] > 0 and invalid["c12"] > 0


@pytest.mark.parametrize(("name", "body", "engine"), [
    pytest.param("quoted-newlines", 'a,"x\ny",1\nb,"p,q",2\nc,z,3\n', "arrow", id="quoted-newlines"),
    pytest.param("crlf", "a,x,1\r\nb,y,2\r\nc,z,oops\r\n", "arrow", id="crlf"),
    pytest.param("lone-cr", "a,x,1\rb,y,2\rc,z,oops\r", "arrow", id="lone-cr"),
    pytest.param("blank-lines", "a,x,1\n\nb,y,2\n\n\nc,z,oops\n", "arrow", id="blank-lines"),
    pytest.param("no-final-newline", "a,x,1\nb,y,oops", "arrow", id="no-final-newline"),
    pytest.param("ragged", "a,x\nb,y,2,3\nc,z,oops\n", "arrow", id="ragged"),
    pytest.param("spaces-line", "a,x,1\n   \nc,z,oops\n", "arrow", id="whitespace-line"),
    pytest.param("nul", "a,x\x00y,1\nc,z,oops\n", "arrow", id="nul"),
    pytest.param("bad-quote", 'a,"x"y,1\nc,z,oops\n', "arrow", id="broken-quoting"),
    pytest.param("unclosed", 'a,"x,1\nc,z,oops\n', "arrow", id="unclosed-quote"),
])
def test_csv_corners(tmp_path, small_blocks, name, body, engine):
    contract = parse_contract({"dataset": "t", "columns": [
        {"name": "k", "type": "text"}, {"name": "v", "type": "varchar(3)"}, {"name": "n", "type": "integer"}]})
    path = tmp_path / f"{name}.csv"
    # enough clean rows around the corner case that it sits in a block of its own
    filler = "".join(f"r{i},abc,{i}\n" for i in range(600))
    path.write_bytes(("k,v,n\n" + filler + body + filler).encode("utf-8"))
    both(path, contract, expect_engine=engine)


@pytest.mark.parametrize(("raw", "engine"), [
    pytest.param(b"\xef\xbb\xbfk,v,n\na,b,1\n", "arrow", id="bom"),
    pytest.param(b'"k","v","n"\na,b,1\n', "arrow", id="quoted-header"),
    pytest.param(b"k,v,n\na,b\xff,1\n", "python", id="not-utf8"),
    pytest.param(b"k,v,n\n" + b"a,b,1\n" * 3000 + b"a,\xc3", "python", id="truncated-utf8-at-end"),
    pytest.param(b"k,v,n\na,\"" + b"x" * 70000 + b"\n", "python", id="quote-never-closed"),
    pytest.param(b"k,v,n\n", "arrow", id="header-only"),
])
def test_encodings_headers_and_errors(tmp_path, small_blocks, raw, engine):
    contract = parse_contract({"dataset": "t", "columns": [
        {"name": "k", "type": "text"}, {"name": "v", "type": "varchar(3)"}, {"name": "n", "type": "integer"}]})
    path = tmp_path / "x.csv"
    path.write_bytes(raw)
    both(path, contract, expect_engine=engine)


def test_arrow_filter_never_clears_a_value_the_checker_refuses():
    """The property the whole design rests on, tried on random strings near each type's shape."""
    import pyarrow as pa

    rnd = random.Random(13)
    alphabet = "0123456789+-.:eETtZ {}-abcdef \u0663"
    samples = [v for values in VALUES.values() for v in values] + GOOD.split(",")
    for _ in range(20000):
        base = rnd.choice(samples)
        chars = list(base)
        for _ in range(rnd.randrange(0, 3)):  # mutate a sample a little
            op = rnd.randrange(3)
            pos = rnd.randrange(len(chars) + 1)
            if op == 0:
                chars.insert(pos, rnd.choice(alphabet))
            elif chars and op == 1:
                chars.pop(min(pos, len(chars) - 1))
            elif chars:
                chars[min(pos, len(chars) - 1)] = rnd.choice(alphabet)
        samples.append("".join(chars))
    values = pa.array(samples, pa.string())
    for t in TYPES:
        pg_type = parse_type(t)
        flt = fast_filter(pg_type)
        if flt is None or flt[0] == "all":
            continue
        ok = arrow_clear(values, flt)
        check = make_checker(pg_type)
        cleared = [v for v, k in zip(samples, ok.to_pylist()) if k]
        assert cleared, t  # the filter clears something, or the test proves nothing
        wrong = [v for v in cleared if check(v) is not None]
        assert not wrong, (t, wrong[:5])


QUOTED = parse_contract({"dataset": "q", "columns": [
    {"name": "id", "type": "bigint", "unique": True},
    {"name": "note", "type": "text"},
    {"name": "n", "type": "integer", "max": 100}]})


@pytest.mark.parametrize("eol", [pytest.param("\n", id="lf"), pytest.param("\r\n", id="crlf")])
def test_quoted_line_breaks_at_every_block_edge_keep_lines_exact(tmp_path, small_blocks, monkeypatch, eol):
    # every 7th row holds a quoted note over two lines, so that with 4 KiB blocks the
    # cut falls before, inside and after such a field; offending rows are named by the
    # line their row ends on (as Python's csv module counts), whichever engine reads them
    out, line, expect = ["id,note,n" + eol], 1, {"n": [], "id": [], "max": []}
    for i in range(3000):
        note = f'"line one{eol}line two, ""quoted"""' if i % 7 == 3 else "plain"
        n = "x" if i % 97 == 0 else ("500" if i % 89 == 5 else str(i % 100))
        key = 42 if i == 2500 else i
        out.append(f"{key},{note},{n}{eol}")
        line += 1 + (i % 7 == 3)
        if n == "x":
            expect["n"].append(line)
        if n == "500":
            expect["max"].append(line)
        if i == 2500:
            expect["id"].append(line)
    path = tmp_path / "quoted.csv"
    path.write_bytes("".join(out).encode())
    cuts = []
    monkeypatch.setattr(csv_arrow, "cut_outside_quotes",
                        lambda buf, end, cut=csv_arrow.cut_outside_quotes: cuts.append((end, cut(buf, end))) or cuts[-1][1])
    schema = introspect_csv(path, QUOTED, engine="arrow")
    assert schema.scan_blocks["arrow"] > 10 and schema.scan_blocks["python"] == 0, schema.scan_blocks
    # the read stopped inside a quoted field, and the block was cut at the line before it
    assert any(cut < end for end, cut in cuts), cuts
    found = both(path, QUOTED)
    assert [e[0] for e in found["scans"]["n"][2]] == expect["n"][:5]
    rules = {r["path"]: r for r in found["rules"]}
    assert [e["line"] for e in rules["columns[2].max"]["examples"]] == expect["max"][:5]
    assert rules["columns[2].max"]["offending"] == len(expect["max"])
    assert [(e["line"], e["value"]) for e in rules["columns[0].unique"]["examples"]] == [(expect["id"][0], "42")]


@pytest.mark.parametrize(("body", "arrow_splits_it"), [
    pytest.param('a,"x""y",1\n', True, id="doubled-quote"),
    pytest.param('a,"",1\n', True, id="empty-quoted-is-null"),
    pytest.param('a,"x\r\ny",1\r\n', True, id="quoted-crlf"),
    pytest.param('"a","b,c","1"\n', True, id="every-field-quoted"),
    pytest.param('a,x"y,1\n', False, id="quote-inside-a-bare-field"),
    pytest.param('a,"x" ,1\n', False, id="space-after-closing-quote"),
    pytest.param('a,"x"y,1\n', False, id="text-after-closing-quote"),
    pytest.param('a,"x\ry",1\n', False, id="quoted-lone-cr"),
])
def test_quoted_fields_read_alike(tmp_path, small_blocks, body, arrow_splits_it):
    contract = parse_contract({"dataset": "t", "columns": [
        {"name": "k", "type": "text"}, {"name": "v", "type": "varchar(3)"}, {"name": "n", "type": "integer"}]})
    filler = "".join(f"r{i},abc,{i}\n" for i in range(600))
    path = tmp_path / "q.csv"
    path.write_bytes(("k,v,n\n" + filler + body + filler).encode("utf-8"))
    result = both(path, contract)
    schema = introspect_csv(path, contract, engine="arrow") if isinstance(result, dict) else None
    if schema is not None and schema.scan_engine == "arrow":
        assert (schema.scan_blocks["python"] == 0) is arrow_splits_it, schema.scan_blocks


def test_a_duplicate_key_across_blocks_names_both_lines(tmp_path, small_blocks):
    rows = [f"{i},2024-05-02,7,10.50,EUR,paid,2024-05-02T10:00:00+00:00" for i in range(1, 3001)]
    rows[2500] = rows[10]  # line 2502 repeats the id of line 12, thousands of bytes and blocks apart
    rows[2900] = rows[2899]  # and a neighbour: line 2902 repeats line 2901
    path = tmp_path / "orders.csv"
    path.write_text("order_id,order_date,customer_id,amount,currency,status,created_at\n" + "\n".join(rows) + "\n")
    found = both(path, ORDERS)
    [pk] = [r for r in found["rules"] if r["kind"] == "primary_key"]
    assert pk["offending"] == 2
    assert [(e["line"], e["value"], e["note"]) for e in pk["examples"]] == [
        (2502, "11", "repeats line 12"), (2902, "2900", "repeats line 2901")]


def test_an_error_while_checking_stops_the_reading_thread(tmp_path, small_blocks, monkeypatch):
    import threading

    from safeload.contracts.csv_scan import CsvScanState

    import generate_orders

    path = generate_orders.write(tmp_path, dt.date(2024, 5, 2), 3000, set())

    def broken(self, table, lines, nul_free=False):
        raise RuntimeError("checking failed")

    monkeypatch.setattr(CsvScanState, "check_table", broken)
    with pytest.raises(RuntimeError, match="checking failed"):
        introspect_csv(path, ORDERS, engine="arrow")
    assert not [t for t in threading.enumerate() if t.name == "safeload-csv-blocks"]
