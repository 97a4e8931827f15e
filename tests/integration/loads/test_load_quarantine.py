"""Rows that do not fit the target: quarantined with their line, raw text and reason
(source = loaded + quarantined); the thresholds that refuse a load and keep the old
partition; the partition each row belongs to, as PostgreSQL compares the values."""

from __future__ import annotations

import psycopg
import pytest

from safeload.errors import LoadRefusedError
from safeload.loads.loader import PartitionLoader
from safeload.loads.sql import partition_checksum

from tests.integration.loads.orders import PLAIN, loader, write, write_csv, write_rows


def test_malformed_rows_are_quarantined_with_reasons(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    bad = [["x1", "2024-05-02", "1.00", "placed"],  # not a bigint
           ["9001", "2024-05-02", "12,5O", "placed"],  # not numeric
           ["9002", "2024-05-02"],  # ragged
           ["9003", "2024-05-01", "1.00", "placed"],  # another partition
           ["9004", "2024-05-02", "", "placed"]]  # NOT NULL
    src = write_csv(tmp_path / "bad.csv", "2024-05-02", 100, bad=bad)
    r = loader(pg_uri, "2024-05-02", run_key="q", max_bad_rows=10).run(src)
    assert (r.rows_source, r.rows, r.rows_quarantined) == (105, 100, 5)
    assert r.rows_source == r.rows + r.rows_quarantined
    rows = pg.execute("select line, raw, reason from safeload.quarantine where run_key = 'q' order by line").fetchall()
    assert [ln for ln, _, _ in rows] == [102, 103, 104, 105, 106]
    reasons = [reason for _, _, reason in rows]
    assert "'x1' is not a bigint" in reasons[0]
    assert "'12,5O' is not a numeric(12,2)" in reasons[1]
    assert "has 2 fields, the header has 4" in reasons[2]
    assert "belongs to another partition" in reasons[3]
    assert "NOT NULL" in reasons[4]
    assert rows[1][1] == "9001,2024-05-02,\"12,5O\",placed"


def test_bad_rows_over_threshold_refuse_and_keep_the_old_partition(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    loader(pg_uri, "2024-05-02").run(write_csv(tmp_path / "good.csv", "2024-05-02", 100))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    src = write_csv(tmp_path / "bad.csv", "2024-05-02", 100, bad=[["y", "2024-05-02", "1", "x"]] * 3)
    with pytest.raises(LoadRefusedError, match=r"3 of 103 row\(s\) are malformed .*line 102: column 'order_id'"):
        loader(pg_uri, "2024-05-02", run_key="bad", max_bad_fraction=0.01, max_bad_rows=None).run(src)
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before
    assert pg.execute("select count(*) from safeload.quarantine where run_key = 'bad'").fetchone()[0] == 3
    assert pg.execute("select status from safeload.load_history order by id desc limit 1").fetchone()[0] == "refused"


def test_every_row_bad_without_threshold_is_refused_not_published_empty(pg, pg_uri, tmp_path):
    """No threshold turns "every row is bad" into an empty partition: that takes allow_empty."""
    pg.execute(PLAIN)
    loader(pg_uri, "2024-05-02").run(write_csv(tmp_path / "good.csv", "2024-05-02", 10))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    src = write_csv(tmp_path / "bad.csv", "2024-05-02", 0, bad=[["x", "2024-05-02", "1", "a"]] * 2)
    with pytest.raises(LoadRefusedError, match=r"2 of 2 row\(s\) are malformed \(every row, leaving nothing"):
        loader(pg_uri, "2024-05-02", run_key="allbad", max_bad_rows=None).run(src)
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before


def test_iso_basic_date_belongs_to_its_partition(pg, pg_uri, tmp_path):
    """20240502 is the date 2024-05-02 to the check and to PostgreSQL: loaded, not quarantined
    as "another partition" (the bad row sends the file down the checked path)."""
    pg.execute(PLAIN)
    src = write_csv(tmp_path / "basic.csv", "20240502", 3, bad=[["x", "2024-05-02", "1", "a"]])
    r = loader(pg_uri, "2024-05-02", max_bad_rows=1).run(src)
    assert (r.rows, r.rows_quarantined) == (3, 1)


def test_a_row_without_a_partition_value_is_quarantined_not_published_again_and_again(pg, pg_uri, tmp_path):
    """A CHECK fails only on false, so staging's ``order_date = value`` alone would let a
    NULL partition value through: published outside the partition, the row would escape
    the next load's DELETE and gain a copy with every re-run. It is quarantined, on every
    run, and no row without a partition value reaches the target."""
    pg.execute("create table public.orders (order_id bigint not null, customer_id int, order_date date)")
    src = write_rows(tmp_path / "a.csv", [[1, 1, "2024-05-02"], [2, 1, "2024-05-02"], [3, 1, ""]])
    for attempt in range(2):
        r = loader(pg_uri, "2024-05-02", table="public.orders", run_key=f"r{attempt}", max_bad_rows=5).run(src)
        assert (r.rows, r.rows_quarantined, r.rows_source) == (2, 1, 3)
    assert pg.execute("select count(*) filter (where order_date is null), count(*) from public.orders").fetchone() \
        == (0, 2)
    reasons = [r[0] for r in pg.execute("select reason from safeload.quarantine order by id").fetchall()]
    assert len(reasons) == 2 and all("order_date" in x for x in reasons), reasons


@pytest.mark.parametrize("ddl", ["", " partition by list (region)"], ids=["plain", "native"])
def test_a_text_partition_value_with_a_trailing_space_is_not_blamed_on_the_target(pg, pg_uri, tmp_path, ddl):
    """A row whose text partition column is 'eu ' while loading 'eu': text compares
    exactly, so the row is not the partition's. It is quarantined as another partition's
    row (as 'us' is), or refused saying the value is not the partition value; never
    blamed on a CHECK constraint of the target with the advice to relax it (staging's
    ``safeload_partition_check`` is safeload's own)."""
    pg.execute(f"create table public.sales (id bigint not null, region text not null, amount numeric){ddl}")
    src = write(tmp_path / "r.csv", "id,region,amount\n1,eu,1\n2,eu ,2\n3,us,3\n")
    loader = PartitionLoader(lambda: psycopg.connect(pg_uri), table="public.sales", partition_column="region",
                             partition_value="eu", run_key="r", max_bad_rows=2)
    try:
        r = loader.run(src)
    except LoadRefusedError as e:
        assert "relax the constraint" not in str(e) and "of public.sales" not in str(e), e
        return
    assert (r.rows, r.rows_quarantined) == (1, 2)
    assert pg.execute("select id, region from public.sales").fetchall() == [(1, "eu")]
