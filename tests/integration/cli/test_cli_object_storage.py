"""`safeload contract check` and `safeload load` with an object storage URL as --source,
against real object store APIs on 127.0.0.1, each in turn (``store``): S3 (moto's server
mode) and GCS (gcp-storage-emulator), the endpoint and credentials given as fsspec
storage options (--storage-options)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = str(ROOT / "include" / "contracts" / "orders.yaml")


def safeload(*args, timeout=180):
    """The command, with the server's endpoint and credentials only in --storage-options: the
    environment's AWS settings point at a closed port on 127.0.0.1 and hold no key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1"
    return subprocess.run([sys.executable, "-m", "safeload.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_contract_check_of_an_object_reports_what_the_local_file_gives(store, day):
    options = json.dumps(store.server.storage_options())
    for faults, code in (((), 0), (("nulls", "out_of_range"), 1)):
        local = day(faults)
        url = store.put(f"orders/{len(faults)}.csv", local)
        here = safeload("contract", "check", CONTRACT, "--source", local, "--json")
        there = safeload("contract", "check", CONTRACT, "--source", url, "--storage-options", options, "--json")
        assert (here.returncode, there.returncode) == (code, code), there.stderr
        assert json.loads(there.stdout)["changes"] == json.loads(here.stdout)["changes"]  # lines included


def test_load_from_an_object_equals_the_local_load(pg, pg_uri, store, day, tmp_path):
    pg.execute((ROOT / "include" / "sql" / "orders.sql").read_text())
    options = tmp_path / "store.json"
    options.write_text(json.dumps(store.server.storage_options()))
    base = ["load", "--conn", pg_uri, "--table", "public.orders", "--partition", "2024-05-02", "--json"]
    local = day(("malformed",), rows=2000)
    url = store.put("orders/2024-05-02.csv", local)
    here = safeload(*base, "--source", local, "--partition-column", "order_date", "--max-bad-rows", "100")
    assert here.returncode == 0, here.stderr
    local_quarantine = pg.execute("select line, reason from safeload.quarantine order by line").fetchall()
    pg.execute("delete from safeload.quarantine")
    there = safeload(*base, "--source", url, "--storage-options", f"@{options}", "--partition-column", "order_date",
                     "--max-bad-rows", "100")
    assert there.returncode == 0, there.stderr
    assert json.loads(there.stdout)["checksum"] == json.loads(here.stdout)["checksum"]
    assert json.loads(there.stdout)["rows"] == json.loads(here.stdout)["rows"] > 0
    assert local_quarantine and pg.execute("select line, reason from safeload.quarantine order by line"
                                           ).fetchall() == local_quarantine
    # with the contract: checked on the object, then loaded from it
    clean = store.put("orders/clean.csv", day())
    proc = safeload(*base, "--source", clean, "--storage-options", f"@{options}", "--contract", CONTRACT)
    assert proc.returncode == 0, proc.stderr
    assert pg.execute("select source from safeload.load_history where status = 'published' order by id desc "
                      "limit 1").fetchone()[0] == clean


@pytest.mark.parametrize(("prepare", "extra", "code", "match"), [
    pytest.param(lambda store, day: store.url("nowhere.csv"), [], 1, r"nowhere.csv: the object does not exist",
                 id="missing"),
    pytest.param(lambda store, day: store.put("cut.csv.gz", open(_gz(day()), "rb").read()[:600]), [], 1,
                 r"cut.csv.gz: the compressed file is truncated or corrupt", id="truncated-gzip"),
    pytest.param(lambda store, day: store.url("x.csv"), ["--storage-options", "{endpoint"], 2,
                 r"--storage-options is not valid JSON", id="bad-options"),
    pytest.param(lambda store, day: day(), ["--storage-options", "{}"], 2,
                 r"--storage-options applies to an object storage URL", id="options-for-a-local-file"),
])
def test_an_object_that_cannot_be_loaded_leaves_the_partition(pg, pg_uri, store, day, prepare, extra, code, match):
    pg.execute((ROOT / "include" / "sql" / "orders.sql").read_text())
    base = ["load", "--conn", pg_uri, "--table", "public.orders", "--partition", "2024-05-02",
            "--partition-column", "order_date"]
    assert safeload(*base, "--source", day()).returncode == 0
    before = pg.execute("select count(*), sum(amount) from public.orders").fetchone()
    options = extra or ["--storage-options", json.dumps(store.server.storage_options())]
    proc = safeload(*base, "--source", prepare(store, day), *options)
    assert proc.returncode == code, proc.stderr
    assert re.search(match, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    assert pg.execute("select count(*), sum(amount) from public.orders").fetchone() == before


def _gz(path):
    import gzip
    import shutil

    out = path + ".gz"
    with open(path, "rb") as src, gzip.open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out
