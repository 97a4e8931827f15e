"""An object source that is truncated, replaced or vanishes while a load streams it.

Each trial stages a 12 MB CSV object (12 blocks of the straight COPY) from a real S3 API,
a real GCS JSON API or a real Azure Blob API on 127.0.0.1 (moto's server mode,
gcp-storage-emulator, Azurite: ``store``),
or from a ``file://`` URL, and hits it after a seeded block: the object replaced by
another version of the same size, replaced by a prefix of itself, deleted, or
(``file://``) truncated in place, which an object store cannot do to an object.
Each must load nothing: the stage raises a clear, retryable error naming the object;
the published partition is the one before; no staging table or registry row is left.
"""

from __future__ import annotations

import os
import random

import pytest

from reliability.figures import SEED, record, trials
from safeload.errors import SourceChangedError
from safeload.loads.sql import partition_checksum
from safeload.storage import StoredFile

from tests.integration.loads.orders import DAY, PLAIN, ActsAfterBlock, loader, write_csv

ROWS = 400_000  # about 12 MB
FAULTS = ["replace", "prefix", "delete", "truncate-local"]


@pytest.mark.timeout(900)
def test_an_object_hit_while_it_is_read_loads_nothing(pg, pg_uri, store, tmp_path):
    n = trials(fast=4, full=24)
    scheme = store.url("").split(":")[0]
    rng = random.Random(f"{SEED}/object-source/{scheme}")
    pg.execute(PLAIN)
    loader(pg_uri, DAY, run_key="first").run(write_csv(tmp_path / "first.csv", DAY, 100))
    before = partition_checksum(pg, "public.orders", "order_date", DAY)
    body = open(write_csv(tmp_path / "day.csv", DAY, ROWS), "rb").read()
    same_size = body.replace(b",placed", b",PLACED")
    assert len(same_size) == len(body) > 12_000_000
    faults = FAULTS + rng.choices(FAULTS, k=max(0, n - len(FAULTS)))
    for i, fault in enumerate(faults[:n]):
        after = rng.randrange(0, 10)
        where = f"trial {i} (seed {SEED}): {fault} after block {after}"
        if fault == "truncate-local":
            local = tmp_path / f"local-{i}.csv"
            local.write_bytes(body)
            source = StoredFile(local.as_uri())
            act = lambda path=local: os.truncate(path, len(body) // 2)  # noqa: E731
            match = r"the read ended after \d+ of its \d+ bytes|changed while it was read"
        else:
            store.put("day.csv", body)
            source = StoredFile(store.url("day.csv"), storage_options=store.server.storage_options())
            act = {"replace": lambda: store.put("day.csv", same_size),
                   "prefix": lambda: store.put("day.csv", body[: len(body) // 3]),
                   "delete": lambda: store.delete("day.csv")}[fault]
            match = r"changed while it was read|disappeared while it was read"
        with pytest.raises(SourceChangedError, match=match) as caught:
            loader(pg_uri, DAY, run_key=f"hit-{i}").run(ActsAfterBlock(source, after, act))
        assert str(source) in str(caught.value), where
        assert caught.value.retryable, where
        assert partition_checksum(pg, "public.orders", "order_date", DAY) == before, where
        assert pg.execute("select count(*) from safeload.staging").fetchone()[0] == 0, where
        assert pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone()[0] == 0, \
            where
    record(f"object source ({scheme}://) hit while read (replaced, cut, deleted, truncated)", trials=n, faults=n,
           held="nothing loaded: partition as before, no staging left, a retryable error naming the object")
