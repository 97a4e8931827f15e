"""Objects in object storage as the source of a load, against real object store APIs on
127.0.0.1, each in turn (``store``): S3 (moto's server mode, tests/s3_server.py), GCS
(gcp-storage-emulator, tests/gcs_server.py) and Azure Blob (Azurite, tests/azure_server.py): CSV, gzipped CSV, JSON lines and Parquet load
the same rows and checksum as the same file loaded locally, with the same quarantine
lines; an object that is truncated, replaced or deleted while it is read, or replaced
between the contract check and the load, loads nothing and leaves the partition as it was.

The objects are changed on the server between two blocks of the stage's read
(:class:`~tests.integration.loads.orders.ActsAfterBlock`): a producer re-delivering the
file during a load."""

from __future__ import annotations

import gzip
import json

import pytest

from safeload.errors import SourceChangedError, SourceError
from safeload.loads.sources.files import FileSource
from safeload.loads.sql import partition_checksum
from safeload.storage import StoredFile

from tests.integration.loads.orders import DAY, PLAIN, ActsAfterBlock, loader, write_csv


def stored(store, key, **kw):
    return StoredFile(store.url(key), storage_options=store.server.storage_options(), **kw)


def write_jsonl(path, day, n):
    with open(path, "w") as fh:
        for i in range(1, n + 1):
            fh.write(json.dumps({"order_id": i, "order_date": day, "amount": f"{i % 1000}.{i % 100:02d}",
                                 "status": "placed"}) + "\n")
    return str(path)


def write_parquet(path, day, n):
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = list(range(1, n + 1))
    pq.write_table(pa.table({
        "order_id": pa.array(ids, pa.int64()),
        "order_date": pa.array([dt.date.fromisoformat(day)] * n, pa.date32()),
        "amount": pa.array([Decimal(f"{i % 1000}.{i % 100:02d}") for i in ids], pa.decimal128(12, 2)),
        "status": pa.array(["placed"] * n)}), path, row_group_size=1000)
    return str(path)


WRITERS = {"csv": write_csv, "csv.gz": write_csv, "jsonl": write_jsonl, "parquet": write_parquet}


@pytest.mark.parametrize("ext", [pytest.param(e, id=e) for e in WRITERS])
def test_an_object_loads_the_rows_and_checksum_of_the_same_file_loaded_locally(pg, pg_uri, store, tmp_path, ext):
    pg.execute(PLAIN)
    local = WRITERS[ext](tmp_path / f"orders.{ext}", DAY, 3000)
    here = loader(pg_uri, DAY, run_key="local").run(local)
    local_sum = partition_checksum(pg, "public.orders", "order_date", DAY)
    store.put(f"orders/{DAY}.{ext}", local)
    there = loader(pg_uri, DAY, run_key="stored").run(FileSource(stored(store, f"orders/{DAY}.{ext}")))
    assert (there.rows, there.rows_quarantined) == (here.rows, 0) == (3000, 0)
    assert partition_checksum(pg, "public.orders", "order_date", DAY) == local_sum
    assert there.checksum == here.checksum
    source = pg.execute("select source from safeload.load_history where status = 'published' "
                        "order by id desc limit 1").fetchone()[0]
    assert source == store.url(f"orders/{DAY}.{ext}")


@pytest.mark.parametrize("ext", [pytest.param("csv", id="csv"), pytest.param("csv.gz", id="csv.gz")])
def test_quarantined_rows_keep_the_local_files_line_numbers(pg, pg_uri, store, tmp_path, ext):
    """Bad rows (a quoted field over two lines before them) go to quarantine with the same
    line, raw text and reason whether the file is read locally or from the object."""
    pg.execute(PLAIN)
    bad = [["9001", DAY, "1.00", "two\nlines"], ["9002", DAY, "12,5O", "placed"], ["x", DAY, "1.00", "placed"]]
    local = write_csv(tmp_path / f"bad.{ext}", DAY, 500, bad=bad)
    store.put(f"bad.{ext}", local)

    def quarantined(run_key):
        return pg.execute("select line, raw, reason from safeload.quarantine where run_key = %s order by line",
                          (run_key,)).fetchall()

    loader(pg_uri, DAY, run_key="local", max_bad_rows=5).run(local)
    loader(pg_uri, DAY, run_key="stored", max_bad_rows=5).run(FileSource(stored(store, f"bad.{ext}")))
    assert [line for line, _, _ in quarantined("local")] == [504, 505]
    assert quarantined("stored") == quarantined("local")


def published(pg):
    return partition_checksum(pg, "public.orders", "order_date", DAY)


@pytest.fixture
def day_published(pg, pg_uri, tmp_path):
    """The partition already holds 100 rows: whatever goes wrong next must leave them."""
    pg.execute(PLAIN)
    loader(pg_uri, DAY, run_key="first").run(write_csv(tmp_path / "first.csv", DAY, 100))
    return published(pg)


def test_a_truncated_gzip_object_loads_nothing(pg, pg_uri, store, tmp_path, day_published):
    data = open(write_csv(tmp_path / "full.csv.gz", DAY, 20000), "rb").read()
    store.put("cut.csv.gz", data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"cut.csv.gz: the compressed file is truncated or corrupt"):
        loader(pg_uri, DAY, run_key="cut").run(FileSource(stored(store, "cut.csv.gz")))
    assert published(pg) == day_published
    assert pg.execute("select count(*) from safeload.staging").fetchone()[0] == 0


def test_a_missing_object_is_refused_clearly(pg, pg_uri, store, day_published):
    with pytest.raises(SourceError, match=r"\w+://lake-\w+/none.csv: the object does not exist; check the URL"):
        loader(pg_uri, DAY, run_key="none").run(FileSource(stored(store, "none.csv")))
    assert published(pg) == day_published


#: 20 MB: ranges still to fetch after the first block; 3 MB: all fetched with the first, read on
BIG, SMALL = 600_000, 100_000


@pytest.mark.parametrize(("rows", "change", "match"), [
    pytest.param(BIG, "replace", r"changed while it was read \(version .* then .*\)", id="replaced-mid-read"),
    pytest.param(BIG, "delete", r"disappeared while it was read \(after \d+ bytes\)", id="deleted-mid-read"),
    pytest.param(SMALL, "replace", r"changed while it was read \(version .* then .*\)", id="replaced-at-the-end"),
    pytest.param(SMALL, "delete", r"disappeared while it was read; nothing was loaded", id="deleted-at-the-end"),
])
def test_an_object_that_changes_while_it_is_read_loads_nothing(pg, pg_uri, store, tmp_path, day_published,
                                                               rows, change, match):
    store.put("day.csv", write_csv(tmp_path / "day.csv", DAY, rows))
    other = write_csv(tmp_path / "other.csv", DAY, rows, start=rows + 1)
    act = (lambda: store.put("day.csv", other)) if change == "replace" else (lambda: store.delete("day.csv"))
    with pytest.raises(SourceChangedError, match=match) as caught:
        loader(pg_uri, DAY, run_key="moving").run(ActsAfterBlock(stored(store, "day.csv"), 0, act))
    assert caught.value.retryable
    assert published(pg) == day_published
    assert pg.execute("select count(*) from safeload.staging").fetchone()[0] == 0


def test_an_object_replaced_between_the_check_and_the_load_loads_nothing(pg, pg_uri, store, tmp_path, day_published):
    """The CLI and the operators hand the load the StoredFile the contract check read: its
    version is pinned, so a re-delivery in between is refused, not loaded unchecked."""
    from safeload.contracts.check import check_source
    from safeload.contracts.model import parse_contract

    store.put("day.csv", write_csv(tmp_path / "day.csv", DAY, 50))
    contract = parse_contract({"dataset": "orders", "columns": [
        {"name": "order_id", "type": "bigint"}, {"name": "order_date", "type": "date"},
        {"name": "amount", "type": "numeric(12,2)"}, {"name": "status", "type": "text"}]})
    obj = stored(store, "day.csv")
    assert check_source(contract, obj).passed
    store.put("day.csv", b"order_id,order_date,amount,status\n1,2024-05-02,oops,placed\n")
    with pytest.raises(SourceChangedError, match=r"day.csv changed since it was first read \(version .* then"):
        loader(pg_uri, DAY, run_key="late").run(FileSource(obj))
    assert published(pg) == day_published


def test_a_version_other_than_the_checked_one_is_refused(pg, pg_uri, store, tmp_path, day_published):
    """``expect_version`` (the operators' ``source_version``): the load reads only the
    version the contract check task read."""
    store.put("day.csv", write_csv(tmp_path / "day.csv", DAY, 50))
    checked = store.version("day.csv")
    store.put("day.csv", write_csv(tmp_path / "day2.csv", DAY, 60))
    with pytest.raises(SourceChangedError, match=r"is not the version that was checked"):
        loader(pg_uri, DAY, run_key="v").run(FileSource(stored(store, "day.csv", expect_version=checked)))
    assert published(pg) == day_published
    r = loader(pg_uri, DAY, run_key="v2").run(FileSource(stored(store, "day.csv", expect_version=store.version("day.csv"))))
    assert r.rows == 60


def test_a_gzip_object_is_streamed_and_gunzipped(pg, pg_uri, store):
    """A .csv.gz object made by the producer (not by the local writer): gunzipped in the stream."""
    pg.execute(PLAIN)
    body = "order_id,order_date,amount,status\n" + "".join(f"{i},{DAY},{i}.50,placed\n" for i in range(1, 201))
    store.put("made.csv.gz", gzip.compress(body.encode()))
    r = loader(pg_uri, DAY).run(FileSource(stored(store, "made.csv.gz")))
    assert (r.rows, r.rows_quarantined) == (200, 0)
    assert pg.execute("select sum(amount) from public.orders").fetchone()[0] == sum(i + 0.5 for i in range(1, 201))


def test_an_azure_url_in_azures_own_form_reads_its_container(pg, pg_uri, azure, tmp_path, monkeypatch):
    """``abfss://container@account.dfs.core.windows.net/key``, as Azure's tools write it: the
    user part is the container (not an Airflow connection id) and adlfs finds the account
    by the environment's connection string, as a deployment's credentials are found."""
    from azure_server import ACCOUNT

    from safeload.hooks import stored_source

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure.server.connection_string())
    pg.execute(PLAIN)
    azure.put("orders/day.csv", write_csv(tmp_path / "day.csv", DAY, 50))
    url = f"abfss://{azure.name}@{ACCOUNT}.dfs.core.windows.net/orders/day.csv"
    source = stored_source(url)
    assert source.identity().version == azure.version("orders/day.csv")
    r = loader(pg_uri, DAY).run(FileSource(source))
    assert (r.rows, r.rows_quarantined) == (50, 0)
    assert pg.execute("select source from safeload.load_history where status = 'published'").fetchone()[0] == url
