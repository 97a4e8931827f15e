"""Staging filled by several COPY streams at once (``parallel=``): the same rows and checksum
as one stream, quoted line feeds kept in their record, a bad row still quarantined with
its line (the stage goes back to one stream), an unfinished staging table never
published, and what a stopped stage leaves dropped by the next one; ``auto`` (the
default) splits a large CSV file in two."""

from __future__ import annotations

import csv

import pytest

from safeload.errors import LoadRefusedError
from safeload.loads import sql as q
from psycopg import sql

from safeload.loads.sources.base import StraightCopy
from safeload.loads.sql import partition_checksum
from safeload.loads.staging import registry
from safeload.loads.staging.stage import AUTO_COUNT, streams_for

from tests.integration.loads.orders import DAY, NATIVE, NATIVE_NOTE, PLAIN, PLAIN_NOTE, counts, loader, write_csv


@pytest.fixture(params=["plain", "native"])
def orders(request, pg):
    pg.execute(PLAIN if request.param == "plain" else NATIVE)
    return request.param


@pytest.mark.parametrize("streams", [2, 3])
def test_streams_stage_what_one_stream_stages(orders, pg, pg_uri, tmp_path, monkeypatch, streams):
    # small blocks, so that a few thousand rows make many blocks for the streams to share
    monkeypatch.setattr("safeload.loads.sources.files.COPY_BLOCK", 4096)
    src = write_csv(tmp_path / "a.csv", DAY, 5000)
    one = loader(pg_uri, run_key="one").run(src)
    expected = partition_checksum(pg, "public.orders", "order_date", DAY)
    ld = loader(pg_uri, run_key="many", parallel=streams)
    opened = []
    connect = ld.connect
    ld.connect = lambda: opened.append(1) or connect()
    staged = ld.stage(src)
    assert (staged.rows_source, staged.rows_loaded, staged.path) == (5000, 5000, "copy")
    assert staged.checksum == one.checksum
    # the stage's own session, one per stream, and (a would-be partition) one building its
    # indexes and statistics while the checksum is taken
    assert len(opened) == 1 + streams + (orders == "native")
    # every stream's transaction wrote rows (the blocks go to the streams in turn)
    assert pg.execute(f"select count(distinct xmin::text) from safeload_staging.{staged.staging_table}"
                      ).fetchone() == (streams,)
    r = ld.publish(staged)
    assert r.published_by == ("swap" if orders == "native" else "delete_insert")
    assert partition_checksum(pg, "public.orders", "order_date", DAY) == expected
    assert pg.execute("select rows_loaded from safeload.load_history order by id desc limit 1").fetchone() == (5000,)


def test_quoted_line_feeds_stay_in_their_record(pg, pg_uri, tmp_path, monkeypatch):
    monkeypatch.setattr("safeload.loads.sources.files.COPY_BLOCK", 64)
    pg.execute(NATIVE_NOTE)
    notes = [f'note {i}\nsecond "line", with a comma' if i % 3 else f"plain {i}" for i in range(400)]
    path = tmp_path / "notes.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "order_date", "amount", "note"])
        w.writerows([i, DAY, "1.00", n] for i, n in enumerate(notes))
    r = loader(pg_uri, parallel=4).run(str(path))
    assert r.rows == 400
    assert pg.execute("select array_agg(note order by order_id) from public.orders").fetchone()[0] == notes


@pytest.mark.parametrize("target", [PLAIN, NATIVE])
def test_a_bad_row_in_any_stream_is_quarantined_with_its_line(pg, pg_uri, tmp_path, monkeypatch, target):
    """A refused value stops every stream; the stage runs again in one stream, where the
    row is quarantined with the line the checked path (or PostgreSQL 17+) names."""
    monkeypatch.setattr("safeload.loads.sources.files.COPY_BLOCK", 1024)
    pg.execute(target)
    src = write_csv(tmp_path / "bad.csv", DAY, 3000, bad=[["x1", DAY, "1.00", "placed"]])
    staged = loader(pg_uri, run_key="bad", parallel=2, max_bad_rows=1).stage(src)
    assert (staged.rows_source, staged.rows_loaded, staged.rows_quarantined) == (3001, 3000, 1)
    assert pg.execute("select line, reason from safeload.quarantine where run_key = 'bad'").fetchall() == [
        (3002, "column 'order_id': 'x1' is not a bigint")]
    # nothing of the streams' attempt is left: only the one-stream staging table
    assert pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone() == (1,)


def test_an_unfinished_staging_table_is_never_published(pg, pg_uri, tmp_path):
    """What a stage stopped between its streams' commits leaves: a reserved registry row
    (no checksum) and a half-filled table. The publish refuses it; the next stage of the
    run drops it."""
    pg.execute(NATIVE)
    src = write_csv(tmp_path / "a.csv", DAY, 10)
    staged = loader(pg_uri, run_key="r").stage(src)
    pg.execute("update safeload.staging set checksum = %s", (registry.UNFINISHED,))
    with pytest.raises(LoadRefusedError, match="was never finished .* stage the partition again"):
        loader(pg_uri, run_key="r").publish(staged)
    assert counts(pg) == {}
    r = loader(pg_uri, run_key="r", parallel=2).run(src)
    assert r.rows == 10
    assert pg.execute("select count(*) from safeload.staging").fetchone() == (0,)
    assert pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone() == (0,)


def test_a_source_that_cannot_be_split_loads_in_one_stream(pg, pg_uri, tmp_path):
    pg.execute(PLAIN_NOTE)
    path = tmp_path / "a.jsonl"
    path.write_text("".join(f'{{"order_id": {i}, "order_date": "{DAY}", "amount": 1}}\n' for i in range(5)))
    staged = loader(pg_uri, parallel=2).stage(str(path))
    assert (staged.rows_loaded, staged.path) == (5, "checked")


def test_an_empty_source_is_refused_by_the_streams_too(pg, pg_uri, tmp_path):
    pg.execute(NATIVE)
    loader(pg_uri, run_key="a").run(write_csv(tmp_path / "a.csv", DAY, 5))
    with pytest.raises(LoadRefusedError, match="has a header but no rows"):
        loader(pg_uri, run_key="b", parallel=2).run(write_csv(tmp_path / "empty.csv", DAY, 0))
    assert counts(pg) == {DAY: 5}
    assert pg.execute("select count(*) from safeload.staging").fetchone() == (0,)
    assert pg.execute("select count(*) from pg_tables where schemaname = %s", (q.STAGING_SCHEMA,)).fetchone() == (0,)


@pytest.mark.parametrize("bad", [0, 1.5, -2, True, "two"])
def test_a_number_of_streams_that_is_not_one_or_more_is_refused(pg_uri, bad):
    with pytest.raises(ValueError, match="number of COPY streams, 1 or more, or 'auto'"):
        loader(pg_uri, parallel=bad)


def streams_in(pg, staging_table):
    """How many transactions wrote the staging table's rows (one per COPY stream)."""
    return pg.execute(f"select count(distinct xmin::text) from safeload_staging.{staging_table}").fetchone()[0]


@pytest.mark.parametrize("target", ["plain", "native"])
def test_auto_stages_a_csv_file_of_a_copy_block_per_stream_in_two_streams(pg, pg_uri, tmp_path, monkeypatch,
                                                                          target):
    """``parallel='auto'`` (the default): a staged CSV file of at least a COPY block per
    stream goes in two streams, a smaller one in one; asked for by number, as asked."""
    block = 4096
    monkeypatch.setattr("safeload.loads.staging.stage.COPY_BLOCK", block)
    pg.execute(PLAIN if target == "plain" else NATIVE)
    big = write_csv(tmp_path / "big.csv", DAY, 5000)  # pieces are 64 KiB at least: three of them
    small = write_csv(tmp_path / "small.csv", DAY, 100)
    assert (tmp_path / "small.csv").stat().st_size < AUTO_COUNT * block <= (tmp_path / "big.csv").stat().st_size
    staged = loader(pg_uri, run_key="big").stage(big)
    assert (staged.rows_loaded, streams_in(pg, staged.staging_table)) == (5000, 2)
    r = loader(pg_uri, run_key="big").publish(staged)
    assert (r.rows, r.published_by) == (5000, "swap" if target == "native" else "delete_insert")
    staged = loader(pg_uri, run_key="small").stage(small)
    assert (staged.rows_loaded, streams_in(pg, staged.staging_table)) == (100, 1)
    staged = loader(pg_uri, run_key="one", parallel=1).stage(big)
    assert streams_in(pg, staged.staging_table) == 1


def test_auto_loads_a_large_file_in_two_streams_into_either_kind_of_target(pg, pg_uri, tmp_path, monkeypatch):
    """Run as one unit, ``auto`` loads a plain table's rows straight in, with a helper
    stream beside the publishing transaction (decision 047), and stages a natively
    partitioned target's in two streams."""
    monkeypatch.setattr("safeload.loads.staging.stage.COPY_BLOCK", 4096)
    src = write_csv(tmp_path / "big.csv", DAY, 5000)
    # direct: the load's session and the helper's; swap: the stage's, one per stream, the
    # one building statistics beside the checksum, and the publish's
    for ddl, how, sessions in ((PLAIN, "direct", 1 + 1), (NATIVE, "swap", 1 + 2 + 1 + 1)):
        pg.execute("drop table if exists public.orders")
        pg.execute(ddl)
        ld = loader(pg_uri, run_key=how)
        opened, connect = [], ld.connect
        ld.connect = lambda connect=connect: opened.append(1) or connect()
        r = ld.run(src)
        assert (r.rows, r.published_by, len(opened)) == (5000, how, sessions)
        assert counts(pg) == {DAY: 5000}


@pytest.mark.parametrize("size, streams", [(None, 1), (0, 1), (AUTO_COUNT * (1 << 20) - 1, 1),
                                           (AUTO_COUNT * (1 << 20), AUTO_COUNT), (1 << 40, AUTO_COUNT)])
def test_auto_counts_streams_by_the_source_size(size, streams):
    straight = StraightCopy(iter(()), sql.SQL(""), "", "", "", format="csv", header=True, size=size)
    assert streams_for("auto", straight) == streams
    assert streams_for(3, straight) == 3
