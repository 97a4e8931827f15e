"""The drift matrix: one contract, many drifted sources, in CSV, Parquet and PostgreSQL.

Each case declares a source schema and rows; the same case is materialised as a CSV file,
a Parquet file and a PostgreSQL table, and the diff must classify every change the same
way (where the format can show it: CSV has no types, so a narrowed type shows up as
values that do not fit).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal

import pytest

from safeload.contracts.check import check_source
from safeload.contracts.introspect import normalise
from safeload.contracts.model import parse_contract

CONTRACT = parse_contract({
    "dataset": "items",
    "schema_policy": "warn",
    "target": {"table": "public.items", "partition_column": "created"},
    "columns": [
        {"name": "id", "type": "bigint", "primary_key": True},
        {"name": "name", "type": "varchar(20)", "nullable": False},
        {"name": "amount", "type": "numeric(10,2)"},
        {"name": "created", "type": "date", "nullable": False},
        {"name": "qty", "type": "integer"},
    ],
}, source="items.yaml")

BASE = [("id", "bigint"), ("name", "varchar(20)"), ("amount", "numeric(10,2)"), ("created", "date"), ("qty", "integer")]
ROW = {"id": 1, "name": "apple", "amount": decimal.Decimal("1.50"), "created": dt.date(2024, 5, 1), "qty": 3}


def rows(n=3, **over):
    return [{**ROW, "id": i + 1, **{k: (v(i) if callable(v) else v) for k, v in over.items()}} for i in range(n)]


def replace(cols, name, new):
    return [new if c[0] == name else c for c in cols]


# id, source columns, rows, {format: expected {(kind, column, class)}}, decision ("*" = all formats)
CASES = [
    ("identical", BASE, rows(), {"*": set()}, "ok"),
    ("added-column", BASE + [("coupon", "text")], rows(coupon="X"), {"*": {("added", "coupon", "additive")}}, "warn"),
    ("two-added", BASE + [("a", "text"), ("b", "integer")], rows(a="x", b=1),
     {"*": {("added", "a", "additive"), ("added", "b", "additive")}}, "warn"),
    ("removed-column", [c for c in BASE if c[0] != "qty"], rows(), {"*": {("removed", "qty", "breaking")}}, "fail"),
    ("removed-not-null", [c for c in BASE if c[0] != "name"], rows(), {"*": {("removed", "name", "breaking")}}, "fail"),
    ("renamed", replace(BASE, "qty", ("quantity", "integer")), [{**{k: v for k, v in r.items() if k != "qty"}, "quantity": 3} for r in rows()],
     {"*": {("renamed", "qty", "breaking")}}, "fail"),
    ("reordered", list(reversed(BASE)), rows(), {"*": {("reordered", None, "compatible")}}, "warn"),
    ("case-difference", replace(BASE, "name", ("Name", "varchar(20)")), [{**{k: v for k, v in r.items() if k != "name"}, "Name": "a"} for r in rows()],
     {"*": {("name_case", "name", "compatible")}}, "warn"),
    ("whitespace-difference", replace(BASE, "qty", (" qty ", "integer")), [{**{k: v for k, v in r.items() if k != "qty"}, " qty ": 1} for r in rows()],
     {"*": {("name_case", "qty", "compatible")}}, "warn"),
    ("int-widened-to-bigint", replace(BASE, "qty", ("qty", "bigint")), rows(qty=2**40),
     {"parquet": {("type_widened", "qty", "compatible")}, "postgres": {("type_widened", "qty", "compatible")},
      "csv": {("invalid_values", "qty", "breaking")}}, {"csv": "fail", "*": "warn"}),
    ("varchar-widened", replace(BASE, "name", ("name", "varchar(40)")), rows(),
     {"postgres": {("type_widened", "name", "compatible")}, "*": set()}, {"postgres": "warn", "*": "ok"}),
    ("numeric-precision-up", replace(BASE, "amount", ("amount", "numeric(14,2)")), rows(),
     {"postgres": {("type_widened", "amount", "compatible")}, "parquet": {("type_widened", "amount", "compatible")}, "csv": set()},
     {"csv": "ok", "*": "warn"}),
    ("numeric-scale-narrowed", replace(BASE, "amount", ("amount", "numeric(10,4)")), rows(amount=decimal.Decimal("123456.0000")),
     {"postgres": {("type_narrowed", "amount", "breaking")}, "parquet": {("type_narrowed", "amount", "breaking")}, "csv": set()},
     {"csv": "ok", "*": "fail"}),
    ("bigint-narrowed-to-int", replace(BASE, "id", ("id", "integer")), rows(),
     {"postgres": {("type_narrowed", "id", "breaking")}, "parquet": {("type_narrowed", "id", "breaking")}, "csv": set()},
     {"csv": "ok", "*": "fail"}),
    ("type-changed-to-text", replace(BASE, "qty", ("qty", "text")), rows(qty=lambda i: f"q{i}"),
     {"postgres": {("type_narrowed", "qty", "breaking")}, "parquet": {("type_narrowed", "qty", "breaking")},
      "csv": {("invalid_values", "qty", "breaking")}}, "fail"),
    ("date-became-timestamp", replace(BASE, "created", ("created", "timestamp")),
     rows(created=dt.datetime(2024, 5, 1, 10, 0)),
     {"postgres": {("type_widened", "created", "compatible")}, "parquet": {("type_widened", "created", "compatible")},
      "csv": {("invalid_values", "created", "breaking")}}, {"csv": "fail", "*": "warn"}),
    ("nulls-in-not-null", BASE, rows(name=lambda i: None if i == 1 else "x"),
     {"*": {("nullability_relaxed", "name", "breaking")}}, "fail"),
    ("nulls-in-nullable-ok", BASE, rows(qty=None), {"*": set()}, "ok"),
    ("values-too-long", replace(BASE, "name", ("name", "text")), rows(name="x" * 30),
     {"csv": {("invalid_values", "name", "breaking")}, "postgres": {("type_widened", "name", "compatible")},
      "parquet": set()}, {"csv": "fail", "postgres": "warn", "parquet": "ok"}),
    ("added-and-removed-different-types", replace(BASE, "qty", ("note", "text")),
     [{**{k: v for k, v in r.items() if k != "qty"}, "note": "n"} for r in rows()],
     {"postgres": {("removed", "qty", "breaking"), ("added", "note", "additive")},
      "parquet": {("removed", "qty", "breaking"), ("added", "note", "additive")},
      "csv": {("renamed", "qty", "breaking")}}, "fail"),
    ("everything-at-once", replace(replace(BASE, "qty", ("qty", "bigint")), "amount", ("AMOUNT", "numeric(10,2)")) + [("extra", "boolean")],
     [{**{k: v for k, v in r.items() if k != "amount"}, "AMOUNT": decimal.Decimal("1.00"), "extra": True} for r in rows()],
     {"postgres": {("type_widened", "qty", "compatible"), ("name_case", "amount", "compatible"), ("added", "extra", "additive")},
      "parquet": {("type_widened", "qty", "compatible"), ("name_case", "amount", "compatible"), ("added", "extra", "additive")},
      "csv": {("name_case", "amount", "compatible"), ("added", "extra", "additive")}}, "warn"),
]

FORMATS = ["csv", "parquet", "postgres"]


def _pa_type(pg: str):
    import pyarrow as pa

    if pg.startswith("numeric"):
        p, s = pg[8:-1].split(",")
        return pa.decimal128(int(p), int(s))
    if pg.startswith("varchar"):
        return pa.string()
    return {"bigint": pa.int64(), "integer": pa.int32(), "text": pa.string(), "date": pa.date32(),
            "timestamp": pa.timestamp("us"), "boolean": pa.bool_()}[pg]


def materialise(fmt, cols, data, tmp_path, pg):
    names = [c[0] for c in cols]
    if fmt == "csv":
        path = tmp_path / "src.csv"
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(names)
            for r in data:
                w.writerow(["" if r.get(n) is None else (str(r[n]).lower() if isinstance(r[n], bool) else r[n]) for n in names])
        return {"source": str(path)}
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = [pa.field(n, _pa_type(t), nullable=True) for n, t in cols]
        table = pa.Table.from_pylist([{n: r.get(n) for n in names} for r in data], schema=pa.schema(fields))
        path = tmp_path / "src.parquet"
        pq.write_table(table, path)
        return {"source": str(path)}
    from psycopg import sql

    # a faithful source declares NOT NULL where the contract does and the data has no nulls
    not_null = {c.name for c in CONTRACT.columns if not c.nullable}
    not_null |= {n for n, _ in cols if normalise(n) in not_null}
    ddl = sql.SQL("create table src ({})").format(sql.SQL(", ").join(
        sql.SQL("{} {}{}").format(sql.Identifier(n), sql.SQL(t), sql.SQL(
            " not null" if n in not_null and all(r.get(n) is not None for r in data) else ""))
        for n, t in cols))
    pg.execute("drop table if exists src")
    pg.execute(ddl)
    with pg.cursor().copy(sql.SQL("copy src ({}) from stdin").format(
            sql.SQL(", ").join(sql.Identifier(n) for n in names))) as copy:
        for r in data:
            copy.write_row([r.get(n) for n in names])
    return {"table": "public.src", "conn": pg}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("cols", "data", "expected", "decision"),
                         [pytest.param(c, d, e, dec, id=i) for i, c, d, e, dec in CASES])
def test_drift_matrix(fmt, cols, data, expected, decision, tmp_path, pg):
    src = materialise(fmt, cols, data, tmp_path, pg)
    report = check_source(CONTRACT, **src)
    want = expected.get(fmt, expected.get("*"))
    got = {(c.kind, c.column, c.klass) for c in report.changes}
    assert got == want, report.summary()
    want_decision = decision if isinstance(decision, str) else decision.get(fmt, decision.get("*"))
    assert report.decision == want_decision, report.summary()
    # every change says what to do about it
    assert all(c.action for c in report.changes)


def test_matrix_size():
    assert len(CASES) * len(FORMATS) >= 60
