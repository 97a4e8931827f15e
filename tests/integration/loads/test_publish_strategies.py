"""``publish_strategy``: ``auto`` swaps natively partitioned targets and publishes plain
ones by DELETE + INSERT; where a swap would scan under the parent's lock, or a reader
holds the parent for the whole ``lock_timeout``, ``auto`` publishes by DELETE + INSERT
and ``swap`` refuses or waits; the swap asks for the parent's lock in short attempts, so
that other readers are not queued behind it."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from safeload.errors import LoadRefusedError, LockTimeoutError
from safeload.loads.sql import partition_checksum

from tests.integration.loads.orders import NATIVE, NATIVE_PK, PLAIN, counts, loader, write_csv


def _history_messages(pg, day):
    return [m for (m,) in pg.execute("select message from safeload.load_history where partition_value = %s "
                                     "and status = 'published' order by id", (day,)).fetchall()]


def _partition_of(pg, day):
    return pg.execute("select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                      "where i.inhparent = 'public.orders'::regclass and pg_get_expr(c.relpartbound, c.oid) "
                      "like %s", (f"%'{day}'%",)).fetchone()


def test_auto_swaps_native_targets_and_stages_their_indexes(pg, pg_uri, tmp_path):
    pg.execute(NATIVE_PK)
    loader(pg_uri, "2024-05-02", run_key="a").run(write_csv(tmp_path / "a.csv", "2024-05-02", 300))
    ld = loader(pg_uri, "2024-05-02", run_key="b")
    staged = ld.stage(write_csv(tmp_path / "b.csv", "2024-05-02", 500, start=1000))
    stg = f'safeload_staging."{staged.staging_table}"'
    # staged for a swap: permanent, with the parent's primary key and statistics already
    assert pg.execute("select relpersistence from pg_class where oid = %s::regclass", (stg,)).fetchone() == ("p",)
    assert pg.execute("select count(*) from pg_index where indrelid = %s::regclass and indisprimary",
                      (stg,)).fetchone() == (1,)
    assert pg.execute("select count(*) > 0 from pg_stats where schemaname = 'safeload_staging' and tablename = %s",
                      (staged.staging_table,)).fetchone() == (True,)
    old = _partition_of(pg, "2024-05-02")
    r = ld.publish(staged)
    assert (r.rows, r.rows_replaced, r.published_by) == (500, 300, "swap")
    assert _history_messages(pg, "2024-05-02") == ["replaced 0 row(s) by swap", "replaced 300 row(s) by swap"]
    assert _partition_of(pg, "2024-05-02") == old  # the new table took the old one's name
    assert counts(pg) == {"2024-05-02": 500}


def test_auto_uses_delete_insert_on_plain_tables(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    for key in ("a", "b"):
        loader(pg_uri, "2024-05-02", run_key=key).run(write_csv(tmp_path / "a.csv", "2024-05-02", 300))
    assert _history_messages(pg, "2024-05-02") == ["replaced 0 row(s) by DELETE + INSERT",
                                                   "replaced 300 row(s) by DELETE + INSERT"]


@pytest.mark.parametrize("setup", ["default partition", "foreign key"])
def test_auto_falls_back_to_delete_insert_where_a_swap_would_scan(pg, pg_uri, tmp_path, setup):
    pg.execute(NATIVE_PK)
    if setup == "default partition":
        pg.execute("create table public.orders_rest partition of public.orders default")
        pg.execute("insert into public.orders values (1, '2030-01-01', 1, 'placed')")
        loader(pg_uri, "2024-05-02", run_key="pre", publish_strategy="delete_insert").run(
            write_csv(tmp_path / "pre.csv", "2024-05-02", 5))  # a partition of its own exists
    else:
        pg.execute("create table public.refunds (order_date date, order_id bigint, "
                   "foreign key (order_date, order_id) references public.orders)")
    for key in ("a", "b"):
        loader(pg_uri, "2024-05-02", run_key=key).run(write_csv(tmp_path / "a.csv", "2024-05-02", 300))
    assert _history_messages(pg, "2024-05-02")[-1] == "replaced 300 row(s) by DELETE + INSERT"
    assert counts(pg).get("2024-05-02") == 300


def test_swap_refuses_a_target_with_a_default_partition_and_changes_nothing(pg, pg_uri, tmp_path):
    """The value's rows would be in the DEFAULT partition among other values' rows: a swap
    would DETACH and DROP all of them. Refused before anything is staged."""
    pg.execute(NATIVE)
    pg.execute("create table public.orders_rest partition of public.orders default")
    pg.execute("insert into public.orders values (1, '2030-01-01', 1, 'placed'), (2, '2024-05-02', 1, 'placed')")
    before = counts(pg)
    with pytest.raises(LoadRefusedError, match="DEFAULT partition.*publish_strategy='auto' or 'delete_insert'"):
        loader(pg_uri, "2024-05-02", publish_strategy="swap").run(write_csv(tmp_path / "a.csv", "2024-05-02", 30))
    assert counts(pg) == before
    r = loader(pg_uri, "2024-05-02", run_key="auto").run(write_csv(tmp_path / "a.csv", "2024-05-02", 30))
    assert r.rows_replaced == 1 and counts(pg) == {"2030-01-01": 1, "2024-05-02": 30}


def test_auto_publishes_by_delete_insert_when_a_reader_holds_the_table(pg, pg_uri, tmp_path):
    """A long reader keeps the parent's lock from the swap: auto gives up the swap at
    lock_timeout and publishes by DELETE + INSERT, which readers never block; the reader's
    snapshot keeps the old rows. (``swap`` itself raises LockTimeoutError there:
    test_swap_waits_for_readers_within_lock_timeout.)"""
    pg.execute(NATIVE_PK)
    loader(pg_uri, "2024-05-02", run_key="a").run(write_csv(tmp_path / "a.csv", "2024-05-02", 100))
    ld = loader(pg_uri, "2024-05-02", run_key="b", lock_timeout="1s")
    staged = ld.stage(write_csv(tmp_path / "b.csv", "2024-05-02", 250, start=1000))
    with psycopg.connect(pg_uri) as reader:
        reader.execute("set transaction isolation level repeatable read")
        assert reader.execute("select count(*) from public.orders").fetchone() == (100,)
        r = ld.publish(staged)
        assert reader.execute("select count(*) from public.orders").fetchone() == (100,)
        reader.rollback()
    assert (r.rows, r.rows_replaced, r.published_by) == (250, 100, "delete_insert")
    assert _history_messages(pg, "2024-05-02")[-1] == "replaced 100 row(s) by DELETE + INSERT"
    assert counts(pg) == {"2024-05-02": 250}
    assert pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone() == (0,)


def test_swap_lock_attempts_let_other_readers_through(pg, pg_uri, tmp_path):
    """While a long reader holds the parent, the swap's lock request gives way after each
    short attempt: another reader that arrives meanwhile is not queued behind it for the
    whole lock_timeout. Checked by the lock queue, not by a clock: the second reader
    runs with lock_timeout = 10 s, longer than any one attempt, and the publish's
    lock_timeout is 30 s; it must finish while the publish is still trying."""
    pg.execute(NATIVE_PK)
    loader(pg_uri, "2024-05-02", run_key="a").run(write_csv(tmp_path / "a.csv", "2024-05-02", 100))
    ld = loader(pg_uri, "2024-05-02", run_key="b", lock_timeout="30s", publish_strategy="swap")
    staged = ld.stage(write_csv(tmp_path / "b.csv", "2024-05-02", 250, start=1000))
    errors, done = [], threading.Event()
    with psycopg.connect(pg_uri) as holder, psycopg.connect(pg_uri, autocommit=True) as other:
        holder.execute("select count(*) from public.orders")  # holds ACCESS SHARE until rollback

        def publish():
            try:
                ld.publish(staged)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
            done.set()

        t = threading.Thread(target=publish)
        t.start()
        # wait (bounded) until the publish has asked for the parent's lock at least once
        for _ in range(300):
            if pg.execute("select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                          "and query ilike 'lock table%%'").fetchone()[0]:
                break
            time.sleep(0.02)
        other.execute("set lock_timeout = '10s'")
        for _ in range(5):  # each read queues behind at most one attempt
            assert other.execute("select count(*) from public.orders").fetchone() == (100,)
        assert not done.is_set()  # the publish is still trying: the reads did not wait for it
        holder.rollback()
        t.join(timeout=60)
    assert not errors and counts(pg) == {"2024-05-02": 250}
    assert _history_messages(pg, "2024-05-02")[-1] == "replaced 100 row(s) by swap"


def test_swap_is_idempotent_keeps_neighbours_and_adopts_indexes(pg, pg_uri, tmp_path):
    pg.execute(NATIVE_PK)
    loader(pg_uri, "2024-05-01", publish_strategy="swap").run(write_csv(tmp_path / "d1.csv", "2024-05-01", 200))
    neighbour = partition_checksum(pg, "public.orders", "order_date", "2024-05-01")
    src = write_csv(tmp_path / "d2.csv", "2024-05-02", 1000, start=5000)
    sums = []
    for attempt in range(3):
        r = loader(pg_uri, "2024-05-02", run_key=f"s{attempt}", publish_strategy="swap").run(src)
        assert (r.rows, r.rows_replaced) == (1000, 0 if attempt == 0 else 1000)
        sums.append(partition_checksum(pg, "public.orders", "order_date", "2024-05-02"))
    assert sums[0] == sums[1] == sums[2] and sums[0][0] == 1000
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-01") == neighbour
    parts = pg.execute("select n.nspname, c.relname, c.relpersistence from pg_inherits i join pg_class c on "
                       "c.oid = i.inhrelid join pg_namespace n on n.oid = c.relnamespace "
                       "where i.inhparent = 'public.orders'::regclass order by 2").fetchall()
    assert parts == [("public", "orders_p2024_05_01", "p"), ("public", "orders_p2024_05_02", "p")]
    # the staging table's primary key was adopted as the partition's: one index per partition
    n_idx = pg.execute("select count(*) from pg_index where indrelid = 'public.orders_p2024_05_02'::regclass"
                       ).fetchone()[0]
    assert n_idx == 1
    assert pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone()[0] == 0


def test_swap_waits_for_readers_within_lock_timeout(pg, pg_uri, tmp_path):
    pg.execute(NATIVE)
    loader(pg_uri, "2024-05-02", publish_strategy="swap").run(write_csv(tmp_path / "a.csv", "2024-05-02", 100))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    ld = loader(pg_uri, "2024-05-02", run_key="b", lock_timeout="300ms", publish_strategy="swap")
    staged = ld.stage(write_csv(tmp_path / "b.csv", "2024-05-02", 100, start=1000))
    with psycopg.connect(pg_uri) as reader:  # a reader in a long transaction
        reader.execute("select count(*) from public.orders")
        with pytest.raises(LockTimeoutError):
            ld.publish(staged)
        reader.rollback()
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before
    ld.publish(staged)
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") != before


def test_sub_partitioned_target_loads_by_delete_insert(pg, pg_uri, tmp_path):
    """A day's partition that is itself partitioned (by status): the look-up of the value's
    partition reads the target's own partitions' constraints (a sub-partition's names its
    own key too), so the table loads, the day by DELETE + INSERT through the
    sub-partitions, another day by swap; ``swap`` refuses the sub-partitioned day."""
    pg.execute(NATIVE)
    pg.execute("""create table public.orders_0502 partition of public.orders
                  for values from ('2024-05-02') to ('2024-05-03') partition by list (status);
                  create table public.orders_0502_placed partition of public.orders_0502 for values in ('placed');
                  create table public.orders_0502_other partition of public.orders_0502 default""")
    for day, n in (("2024-05-02", 40), ("2024-05-02", 30), ("2024-05-03", 20)):
        r = loader(pg_uri, day, run_key=f"{day}-{n}").run(write_csv(tmp_path / f"{day}-{n}.csv", day, n))
        assert r.rows == n
        assert r.published_by == ("delete_insert" if day == "2024-05-02" else "swap")
    assert counts(pg) == {"2024-05-02": 30, "2024-05-03": 20}
    assert pg.execute("select count(*) from public.orders_0502_placed").fetchone()[0] == 30
    with pytest.raises(LoadRefusedError, match="not a plain table attached to it directly"):
        loader(pg_uri, "2024-05-02", run_key="swap", publish_strategy="swap").run(
            write_csv(tmp_path / "s.csv", "2024-05-02", 5))
    assert counts(pg) == {"2024-05-02": 30, "2024-05-03": 20}
