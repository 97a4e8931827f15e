"""A direct load in several streams (a plain table, ``parallel=``): helper sessions COPY
part of the file into a side table while the publishing transaction DELETEs and COPYs the
rest, then copies the helpers' rows in. The same rows and checksum as one stream; readers
see the old rows until the COMMIT; a bad row or a row outside the partition sends the
load back to one stream, where it is quarantined with its line; an empty file is refused;
nothing of the side table is left behind, whatever happens."""

from __future__ import annotations

import logging
import re

import psycopg
import pytest

from safeload.errors import LoadRefusedError
from safeload.loads import sql as q
from safeload.loads.sql import partition_checksum
from safeload.loads.staging import registry
from safeload.metadata import ensure_metadata

from tests.integration.loads.orders import DAY, NATIVE, OTHER_DAY, PLAIN, counts, loader, write_csv

SPLIT = re.compile(r"(\d+) rows in (\d+) COPY streams \((\d+) straight into \S+, ([\d, ]+) beside it\)")


@pytest.fixture
def small_blocks(monkeypatch):
    """Source blocks small enough that a few thousand rows make many pieces to share."""
    monkeypatch.setattr("safeload.loads.sources.files.COPY_BLOCK", 4096)


def nothing_left(pg):
    """No side table and no staging registry row."""
    tables = pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone()[0]
    return tables == 0 and pg.execute("select count(*) from safeload.staging").fetchone() == (0,)


def counting(ld):
    """The sessions ``ld`` opens, counted as they are opened."""
    opened, connect = [], ld.connect
    ld.connect = lambda: opened.append(1) or connect()
    return opened


@pytest.mark.parametrize("streams", [2, 3])
def test_streams_publish_what_one_stream_does(pg, pg_uri, tmp_path, small_blocks, caplog, streams):
    pg.execute(PLAIN)
    loader(pg_uri, OTHER_DAY, run_key="n").run(write_csv(tmp_path / "n.csv", OTHER_DAY, 50))
    src = write_csv(tmp_path / "a.csv", DAY, 20_000)
    one = loader(pg_uri, run_key="one", parallel=1).run(src)
    ld = loader(pg_uri, run_key="many", parallel=streams)
    opened = counting(ld)
    with caplog.at_level(logging.INFO, logger="safeload.loads.publish.shared"):
        r = ld.run(src)
    assert (r.rows, r.rows_replaced, r.published_by, r.checksum) == (20_000, 20_000, "direct", one.checksum)
    assert (r.rows, r.checksum) == partition_checksum(pg, "public.orders", "order_date", DAY)
    assert counts(pg) == {DAY: 20_000, OTHER_DAY: 50}
    assert len(opened) == streams  # the load's own session and one per helper
    # the pieces went to whichever stream was ready (the helpers take them all while the
    # transaction DELETEs, and share the rest with it): how many each took depends on timing
    split = [SPLIT.search(m) for m in caplog.messages]
    (m,) = [x for x in split if x]
    here, beside = int(m.group(3)), [int(x) for x in m.group(4).split(", ")]
    assert (int(m.group(1)), int(m.group(2)), len(beside)) == (20_000, streams, streams - 1)
    assert here + sum(beside) == 20_000 and sum(beside) > 0
    assert pg.execute("select rows_loaded, message from safeload.load_history order by id desc limit 1"
                      ).fetchone() == (20_000, "replaced 20000 row(s) by direct COPY")
    assert nothing_left(pg)


def test_readers_see_the_old_rows_until_the_commit(pg, pg_uri, tmp_path, small_blocks):
    """The gate runs inside the publishing transaction, every row in: another session still
    sees the old partition, and the transaction sees the new one."""
    pg.execute(PLAIN)
    loader(pg_uri, run_key="old").run(write_csv(tmp_path / "old.csv", DAY, 3000))
    seen = []

    def gate(audit):
        with psycopg.connect(pg_uri) as other:
            seen.append(other.execute("select count(*) from public.orders").fetchone()[0])
        seen.append(audit.conn.execute(f"select count(*) from {audit.table} where {audit.where}").fetchone()[0])

    r = loader(pg_uri, run_key="new", parallel=2).run(write_csv(tmp_path / "new.csv", DAY, 8000, start=10_000),
                                                      audit_hook=gate)
    assert (r.rows, r.published_by, seen) == (8000, "direct", [3000, 8000])
    assert counts(pg) == {DAY: 8000} and nothing_left(pg)


def test_a_failed_gate_leaves_the_old_rows_and_no_side_table(pg, pg_uri, tmp_path, small_blocks):
    pg.execute(PLAIN)
    loader(pg_uri, run_key="old").run(write_csv(tmp_path / "old.csv", DAY, 3000))

    def gate(audit):
        raise LoadRefusedError("the gate failed")

    with pytest.raises(LoadRefusedError, match="the gate failed"):
        loader(pg_uri, run_key="new", parallel=2).run(write_csv(tmp_path / "new.csv", DAY, 8000, start=10_000),
                                                      audit_hook=gate)
    assert counts(pg) == {DAY: 3000} and nothing_left(pg)


@pytest.mark.parametrize("where", ["early", "late"])
def test_a_bad_row_in_any_stream_is_quarantined_with_its_line(pg, pg_uri, tmp_path, small_blocks, where):
    """A refused value stops every stream and rolls the transaction back; the file loads
    again in one stream, where the row is quarantined with its line (the checked path, or
    PostgreSQL 17+'s skipped rows)."""
    pg.execute(PLAIN)
    loader(pg_uri, run_key="old").run(write_csv(tmp_path / "old.csv", DAY, 100))
    rows = [[i, DAY, "1.00", "placed"] for i in range(1, 6001)]
    at = 10 if where == "early" else 5990
    rows[at][0] = "x1"
    path = tmp_path / "bad.csv"
    path.write_text("order_id,order_date,amount,status\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    r = loader(pg_uri, run_key="bad", parallel=2, max_bad_rows=1).run(str(path))
    assert (r.rows, r.rows_quarantined, r.published_by) == (5999, 1, "direct")
    assert pg.execute("select line, reason from safeload.quarantine where run_key = 'bad'").fetchall() == [
        (at + 2, "column 'order_id': 'x1' is not a bigint")]
    assert counts(pg) == {DAY: 5999} and nothing_left(pg)


def test_a_row_outside_the_partition_is_quarantined_by_one_stream(pg, pg_uri, tmp_path, small_blocks):
    pg.execute(PLAIN)
    src = write_csv(tmp_path / "a.csv", DAY, 6000, bad=[[99_999, OTHER_DAY, "1.00", "placed"]])
    r = loader(pg_uri, run_key="out", parallel=2, max_bad_rows=1).run(src)
    assert (r.rows, r.rows_quarantined) == (6000, 1)
    assert counts(pg) == {DAY: 6000} and nothing_left(pg)


def test_an_empty_file_is_refused_and_changes_nothing(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    loader(pg_uri, run_key="old").run(write_csv(tmp_path / "old.csv", DAY, 5))
    with pytest.raises(LoadRefusedError, match="has a header but no rows"):
        loader(pg_uri, run_key="empty", parallel=2).run(write_csv(tmp_path / "empty.csv", DAY, 0))
    assert counts(pg) == {DAY: 5} and nothing_left(pg)


def test_a_side_table_left_by_a_killed_try_is_dropped_by_the_retry(pg, pg_uri, tmp_path, small_blocks):
    """What a load killed after its side table committed leaves (the reliability suite kills
    it there): the table, and its registry row reserved, never finished. The retry (same
    run key) drops both and loads once."""
    pg.execute(PLAIN)
    ensure_metadata(pg)
    src = write_csv(tmp_path / "a.csv", DAY, 5000)
    side = q.staging_name("public.orders", DAY, "r")
    pg.execute(f"create unlogged table safeload_staging.{side} (like public.orders)")
    pg.execute(f"insert into safeload_staging.{side} select * from public.orders")
    pg.execute("insert into safeload.staging (staging_table, target, partition_value, run_key, rows_loaded, "
               "rows_quarantined, rows_source, checksum, source, add_columns) "
               "values (%s, 'public.orders', %s, 'r', 0, 0, 0, %s, 'a.csv', '[]')", (side, DAY, registry.UNFINISHED))
    r = loader(pg_uri, run_key="r", parallel=2).run(src)
    assert (r.rows, counts(pg)) == (5000, {DAY: 5000}) and nothing_left(pg)


@pytest.mark.parametrize("target", ["plain", "native"])
def test_a_server_out_of_sessions_for_the_streams_loads_in_one(pg, pg_uri, tmp_path, small_blocks, caplog, target):
    """``max_connections`` reached when the streams' sessions are opened: the load goes on
    in one stream (a warning says so) instead of failing."""
    pg.execute(PLAIN if target == "plain" else NATIVE)
    ld = loader(pg_uri, run_key="full", parallel=2)
    calls, connect = [], ld.connect

    def refusing():
        calls.append(1)
        if len(calls) == 2:  # the first stream's session: the server is full
            raise psycopg.OperationalError("FATAL:  sorry, too many clients already")
        return connect()

    ld.connect = refusing
    with caplog.at_level(logging.WARNING, logger="safeload.loads.staging.streams"):
        r = ld.run(write_csv(tmp_path / "a.csv", DAY, 5000))
    assert (r.rows, r.published_by) == (5000, "direct" if target == "plain" else "swap")
    assert counts(pg) == {DAY: 5000} and nothing_left(pg)
    assert any("could not open" in m and "too many clients" in m and "in one stream" in m for m in caplog.messages)
