"""Loads running at the same time: publishes of one partition take turns on its advisory
lock (one copy, never two), different partitions load in parallel, a stage holds no lock
on the target while it copies, and a lock wait ends at ``lock_timeout`` with a
retryable error and nothing changed."""

from __future__ import annotations

import threading

import psycopg
import pytest

from safeload.errors import LockTimeoutError
from safeload.loads.loader import PartitionLoader
from safeload.loads.sql import partition_checksum

from reliability.harness import together
from tests.integration.loads.orders import NATIVE, NATIVE_PK, PLAIN, counts, loader, write_csv


@pytest.mark.parametrize("serialise", [True, False], ids=["with-lock", "lock-disabled"])
def test_four_concurrent_loads_leave_exactly_one_copy(pg, pg_uri, tmp_path, serialise, monkeypatch):
    """With the advisory lock, 4 concurrent publishes of one partition leave one copy. The
    lock-disabled run shows the test can fail: without it, DELETE + INSERT races duplicate."""
    pg.execute(PLAIN)
    src = write_csv(tmp_path / "d.csv", "2024-05-02", 20000)
    monkeypatch.setattr(PartitionLoader, "_serialise_publish", serialise)
    # stage all four first, then release their publishes together to force the race
    loaders = [loader(pg_uri, "2024-05-02", run_key=f"c{i}") for i in range(4)]
    staged = [ld.stage(src) for ld in loaders]
    errors = together(lambda pair: pair[0].publish(pair[1]), list(zip(loaders, staged)), timeout=120)
    n = pg.execute("select count(*) from public.orders where order_date = '2024-05-02'").fetchone()[0]
    if serialise:
        assert not errors
        assert n == 20000
    else:
        assert n > 20000, "without the lock the race should have duplicated rows; the test would not catch a bug"


def test_different_partitions_load_in_parallel(pg, pg_uri, tmp_path):
    pg.execute(NATIVE)
    srcs = {d: write_csv(tmp_path / f"{d}.csv", d, 5000, start=i * 10000) for i, d in
            enumerate(["2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04"])}
    errors = []

    def run(d):
        try:
            loader(pg_uri, d, run_key=d, lock_timeout="5s").run(srcs[d])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(d,)) for d in srcs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert counts(pg) == {d: 5000 for d in srcs}


def test_lock_timeout_is_retryable_and_changes_nothing(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    loader(pg_uri, "2024-05-02").run(write_csv(tmp_path / "a.csv", "2024-05-02", 100))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    ld = loader(pg_uri, "2024-05-02", run_key="b", lock_timeout="500ms")
    staged = ld.stage(write_csv(tmp_path / "b.csv", "2024-05-02", 100, start=1000))
    with psycopg.connect(pg_uri) as holder:  # a reader holding a long transaction
        holder.execute("lock table public.orders in access share mode")
        holder.execute("select * from public.orders for update")  # row locks, as a long writer would hold
        with pytest.raises(LockTimeoutError, match="lock_timeout=500ms") as exc:
            ld.publish(staged)
        assert exc.value.retryable
        holder.rollback()
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before
    ld.publish(staged)  # the retry succeeds once the holder is gone
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02")[0] == 100


def test_swap_concurrent_loads_leave_one_copy(pg, pg_uri, tmp_path):
    pg.execute(NATIVE)
    src = write_csv(tmp_path / "d.csv", "2024-05-02", 5000)
    loaders = [loader(pg_uri, "2024-05-02", run_key=f"w{i}", publish_strategy="swap") for i in range(4)]
    staged = [ld.stage(src) for ld in loaders]
    errors = together(lambda pair: pair[0].publish(pair[1]), list(zip(loaders, staged)), timeout=120)
    assert not errors
    assert counts(pg) == {"2024-05-02": 5000}


def test_swaps_of_different_partitions_at_once_do_not_trip_over_each_others_partitions(pg, pg_uri, tmp_path):
    """A backfill publishing several days at once: each swap detaches and drops its own
    day's partition while the others look up theirs among the table's partitions (they
    hold different advisory locks). A partition that vanishes in the middle of another
    load's look-up is skipped, not reported as 'could not open relation with OID ...'."""
    pg.execute(NATIVE_PK)
    days = [f"2024-05-{d:02d}" for d in range(1, 7)]
    sources = {d: write_csv(tmp_path / f"{d}.csv", d, 2000) for d in days}
    for d in days:
        loader(pg_uri, d, run_key="first").run(sources[d])
    def backfill(day):
        for i in range(4):  # bounded
            r = loader(pg_uri, day, run_key=f"again-{i}").run(sources[day])
            assert r.published_by == "swap", r

    errors = together(backfill, days, timeout=300)
    assert not errors, errors
    assert counts(pg) == {d: 2000 for d in days}


@pytest.mark.parametrize("target", ["plain", "native"])
def test_a_running_stage_holds_no_lock_on_the_target(pg, pg_uri, tmp_path, target):
    """A backfill stages several days at once. A stage that kept a lock on the target for
    the length of its COPY (``CREATE TABLE ... (LIKE target)`` in the COPY's
    transaction) would make every other day's swap wait for it, then publish by DELETE +
    INSERT (auto) or fail (swap), and would queue any DDL on the target (a contract's
    ``evolve``) behind it. While this stage copies, another day publishes (by swap where
    the target is natively partitioned) and DDL runs."""
    import reliability.harness as h

    pg.execute(h.NATIVE if target == "native" else h.PLAIN)
    pg.execute("alter table public.orders add constraint amount_sane check (amount >= 0)")
    other = "2024-05-01"
    h.loader(pg_uri, strategy="auto", run_key="first", day=other).run(h.write_csv(tmp_path / "o.csv", other, 300))
    seen = {}

    def during_copy(phase):
        if phase != "copy:1" or seen:
            return
        seen["locks"] = pg.execute(
            """select l.mode from pg_locks l join pg_stat_activity a using (pid)
               where l.relation = 'public.orders'::regclass and a.application_name = %s""", (h.APP,)).fetchall()
        # another day published meanwhile, as the backfill's other tasks do
        r = h.loader(pg_uri, strategy="auto", run_key="again", day=other, app="other-day",
                     lock_timeout="2s").run(h.write_csv(tmp_path / "o2.csv", other, 200, start=5000))
        seen["published_by"] = r.published_by
        if target == "plain":  # DDL on the target (what evolve runs at publish) does not wait either
            with psycopg.connect(pg_uri, autocommit=True) as ddl:
                ddl.execute("set lock_timeout = '2s'")
                ddl.execute("alter table public.orders add column note text")

    # COPY blocks of 64 KiB: a source of a few blocks reaches "copy:1" with the COPY still open
    r = h.loader(pg_uri, strategy="auto", run_key="day", hook=during_copy).run(
        h.write_csv(tmp_path / "d.csv", h.DAY, 20000))
    assert seen["locks"] == [], "the stage holds a lock on the target while it copies"
    assert seen["published_by"] == ("swap" if target == "native" else "delete_insert")
    assert (r.rows, r.published_by) == (20000, "swap" if target == "native" else "delete_insert")
    assert counts(pg) == {other: 200, h.DAY: 20000}
    # the staged table still got the target's CHECK constraint (a swap keeps it on the partition)
    assert pg.execute("select count(*) from pg_constraint where conname = 'amount_sane'").fetchone()[0] == \
        (3 if target == "native" else 1)
