"""The contract check of an object in storage, against a real S3 API on 127.0.0.1 (moto's
server mode): CSV, gzipped CSV, JSON lines and Parquet give the report the same file gives
locally (drift, broken value rules, their lines or rows), the object named as its URL."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import json

import pytest

from safeload.contracts.check import check_source
from safeload.contracts.model import parse_contract
from safeload.storage import StoredFile

CONTRACT = parse_contract({
    "dataset": "items", "schema_policy": "warn",
    "columns": [
        {"name": "id", "type": "bigint", "unique": True},
        {"name": "amount", "type": "numeric(10,2)", "min": 0},
        {"name": "created", "type": "date", "nullable": False},
        {"name": "status", "type": "text", "allowed_values": ["placed", "paid"]},
    ],
}, source="items.yaml")

ROWS = [{"id": i if i != 700 else 3, "amount": decimal.Decimal("-1.00") if i == 41 else decimal.Decimal(f"{i}.25"),
         "created": dt.date(2024, 5, 2), "status": "lost" if i % 250 == 0 else "paid", "extra": i}
        for i in range(1, 1001)]


def write(path, fmt):
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), path, row_group_size=300)
        return
    if fmt == "jsonl":
        text = "".join(json.dumps(r, default=str) + "\n" for r in ROWS)
    else:
        text = "id,amount,created,status,extra\n" + "".join(
            f"{r['id']},{r['amount']},{r['created']},{r['status']},{r['extra']}\n" for r in ROWS)
    path.write_bytes(gzip.compress(text.encode()) if fmt == "csv.gz" else text.encode())


@pytest.mark.parametrize("fmt", [pytest.param(f, id=f) for f in ("csv", "csv.gz", "jsonl", "parquet")])
def test_an_object_gives_the_report_of_the_same_file(s3, tmp_path, fmt):
    local = tmp_path / f"items.{fmt}"
    write(local, fmt)
    url = s3.put(f"in/items.{fmt}", local)
    here = check_source(CONTRACT, str(local)).to_dict()
    there = check_source(CONTRACT, StoredFile(url, storage_options=s3.server.storage_options())).to_dict()
    assert there["source"] == url and here["source"] == str(local)
    assert {k: v for k, v in there.items() if k != "source"} == {k: v for k, v in here.items() if k != "source"}
    broken = {c["column"] for c in there["changes"] if c.get("rule")}
    assert {"id", "amount", "status"} <= broken  # the duplicate, the negative amount, the status not allowed
    assert any(c["column"] == "extra" and c["class"] == "additive" for c in there["changes"])
