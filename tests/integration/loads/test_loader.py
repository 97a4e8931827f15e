"""The loader against a real PostgreSQL: idempotence, concurrency, crashes, quarantine, guards."""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from safeload.errors import LoadRefusedError, LockTimeoutError, SourceError
from safeload.loads.loader import PartitionLoader
from safeload.loads.sql import partition_checksum

from reliability.harness import together

PLAIN = """create table public.orders (order_id bigint not null, order_date date not null,
           amount numeric(12,2) not null, status text)"""
NATIVE = PLAIN + " partition by range (order_date)"
HEADER = ["order_id", "order_date", "amount", "status"]


def write_csv(path, day, n, start=1, bad=()):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i in range(start, start + n):
            w.writerow([i, day, f"{i % 1000}.{i % 100:02d}", "placed"])
        for row in bad:
            w.writerow(row)
    return str(path)


def loader(uri, day, run_key="r", table="public.orders", **kw):
    return PartitionLoader(lambda: psycopg.connect(uri), table=table, partition_column="order_date",
                           partition_value=day, run_key=run_key, **kw)


def counts(pg):
    return dict(pg.execute("select order_date::text, count(*) from public.orders group by 1").fetchall())


@pytest.fixture(params=["plain", "native"])
def orders(request, pg):
    pg.execute(PLAIN if request.param == "plain" else NATIVE)
    return request.param


def test_same_partition_three_times_is_idempotent(orders, pg, pg_uri, tmp_path):
    loader(pg_uri, "2024-05-01").run(write_csv(tmp_path / "d1.csv", "2024-05-01", 500))
    loader(pg_uri, "2024-05-03").run(write_csv(tmp_path / "d3.csv", "2024-05-03", 300, start=9000))
    neighbours = {d: partition_checksum(pg, "public.orders", "order_date", d) for d in ("2024-05-01", "2024-05-03")}
    src = write_csv(tmp_path / "d2.csv", "2024-05-02", 1000, start=5000)
    sums = []
    for attempt in range(3):
        result = loader(pg_uri, "2024-05-02", run_key=f"run{attempt}").run(src)
        assert result.rows == 1000
        sums.append(partition_checksum(pg, "public.orders", "order_date", "2024-05-02"))
    assert sums[0] == sums[1] == sums[2]
    assert sums[0][0] == 1000
    for d, before in neighbours.items():
        assert partition_checksum(pg, "public.orders", "order_date", d) == before
    history = pg.execute("select status, rows_loaded from safeload.load_history where partition_value = '2024-05-02' "
                         "order by id").fetchall()
    assert history == [("published", 1000)] * 3
    # staging is gone after publish
    assert pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone()[0] == 0


def test_native_partition_is_created_and_attached(pg, pg_uri, tmp_path):
    pg.execute(NATIVE)
    loader(pg_uri, "2024-05-02").run(write_csv(tmp_path / "a.csv", "2024-05-02", 10))
    parts = pg.execute("select c.relname, pg_get_expr(c.relpartbound, c.oid) from pg_inherits i "
                       "join pg_class c on c.oid = i.inhrelid where i.inhparent = 'public.orders'::regclass").fetchall()
    assert parts == [("orders_p2024_05_02", "FOR VALUES FROM ('2024-05-02') TO ('2024-05-03')")]


def test_gzip_source(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    r = loader(pg_uri, "2024-05-02").run(write_csv(tmp_path / "a.csv.gz", "2024-05-02", 50))
    assert (r.rows, r.rows_quarantined) == (50, 0)


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


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        pytest.param(None, SourceError, "does not exist", id="missing"),
        pytest.param("", SourceError, "the file is empty", id="empty-file"),
        pytest.param(",".join(HEADER) + "\n", LoadRefusedError, "has a header but no rows", id="header-only"),
        pytest.param(b"order_id,order_date\n\xff\xfe,2024\n", None, None, id="bad-encoding"),
    ],
)
def test_missing_or_empty_source_deletes_nothing(pg, pg_uri, tmp_path, content, error, match):
    pg.execute(PLAIN)
    loader(pg_uri, "2024-05-02").run(write_csv(tmp_path / "good.csv", "2024-05-02", 100))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    src = tmp_path / "src.csv"
    if isinstance(content, bytes):
        src.write_bytes(content)
        error, match = (LoadRefusedError, SourceError), r"not valid UTF-8|malformed"
    elif content is not None:
        src.write_text(content)
    with pytest.raises(error, match=match):
        loader(pg_uri, "2024-05-02", run_key="x").run(str(src))
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before


def test_truncated_gzip_deletes_nothing(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    loader(pg_uri, "2024-05-02").run(write_csv(tmp_path / "good.csv", "2024-05-02", 100))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    full = write_csv(tmp_path / "full.csv.gz", "2024-05-02", 20000)
    data = open(full, "rb").read()
    trunc = tmp_path / "trunc.csv.gz"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises((SourceError, LoadRefusedError, EOFError)):
        loader(pg_uri, "2024-05-02", run_key="t").run(str(trunc))
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before


def test_allow_empty_publishes_an_empty_partition(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    loader(pg_uri, "2024-05-02").run(write_csv(tmp_path / "good.csv", "2024-05-02", 10))
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(HEADER) + "\n")
    r = loader(pg_uri, "2024-05-02", allow_empty=True).run(str(empty))
    assert (r.rows, r.rows_replaced) == (0, 10)


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
    barrier = threading.Barrier(4)
    errors = []

    def publish(ld, st):
        barrier.wait(timeout=30)
        try:
            ld.publish(st)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=publish, args=(ld, st)) for ld, st in zip(loaders, staged)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
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


def test_stale_staging_from_a_crashed_run_is_cleaned(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    src = write_csv(tmp_path / "a.csv", "2024-05-02", 10)
    loader(pg_uri, "2024-05-02", run_key="crashed").stage(src)  # staged, never published
    pg.execute("update safeload.staging set created_at = now() - interval '2 days'")
    loader(pg_uri, "2024-05-02", run_key="next").run(src)
    assert pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone()[0] == 0
    assert pg.execute("select count(*) from safeload.staging").fetchone()[0] == 0


def _cli_load(uri, table, day, src, run_key):
    return subprocess.Popen(
        [sys.executable, "-m", "safeload.cli", "load", "--conn", uri, "--table", table, "--partition", day,
         "--source", src, "--partition-column", "order_date", "--run-key", run_key, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_query(pg, pattern, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:  # bounded
        row = pg.execute("select 1 from pg_stat_activity where application_name like 'safeload%%' "
                         "and state = 'active' and query ilike %s", (pattern,)).fetchone()
        if row:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize(("phase", "pattern"), [
    pytest.param("copy", "copy %", id="mid-copy"),
    pytest.param("publish", "insert into %", id="mid-publish"),
])
def test_killed_loader_leaves_the_old_partition(pg, pg_uri, tmp_path, phase, pattern):
    pg.execute(PLAIN)
    loader(pg_uri, "2024-05-02").run(write_csv(tmp_path / "old.csv", "2024-05-02", 1000))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    big = write_csv(tmp_path / "new.csv", "2024-05-02", 400_000, start=10_000_000)
    proc = _cli_load(pg_uri, "public.orders", "2024-05-02", big, "killed")
    try:
        assert _wait_for_query(pg, pattern), f"the loader never reached {phase}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    # the server notices the dead client and rolls its transaction back
    deadline = time.time() + 30
    while time.time() < deadline and pg.execute(
            "select count(*) from pg_stat_activity where application_name like 'safeload%%'").fetchone()[0]:
        time.sleep(0.05)
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before
    assert pg.execute("select count(*) from pg_locks where locktype = 'advisory'").fetchone()[0] == 0
    # and the next run succeeds, exactly once
    proc = _cli_load(pg_uri, "public.orders", "2024-05-02", big, "killed")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads(out)["rows"] == 400_000
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02")[0] == 400_000


# ---------------------------------------------------------------- the swap strategy

NATIVE_PK = NATIVE.replace("status text)", "status text, primary key (order_date, order_id))")


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


def test_swap_concurrent_loads_leave_one_copy(pg, pg_uri, tmp_path):
    pg.execute(NATIVE)
    src = write_csv(tmp_path / "d.csv", "2024-05-02", 5000)
    loaders = [loader(pg_uri, "2024-05-02", run_key=f"w{i}", publish_strategy="swap") for i in range(4)]
    staged = [ld.stage(src) for ld in loaders]
    errors = []
    barrier = threading.Barrier(4)

    def publish(ld, st):
        barrier.wait(timeout=30)
        try:
            ld.publish(st)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=publish, args=pair) for pair in zip(loaders, staged)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert counts(pg) == {"2024-05-02": 5000}


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


@pytest.mark.parametrize("strategy", ["delete_insert", "swap"])
def test_evolve_adds_new_source_columns_in_the_publish_transaction(pg, pg_uri, tmp_path, strategy):
    """schema_policy: evolve -> the additive column reaches the target, nullable, with its values."""
    from safeload.contracts.check import check_source, columns_to_add
    from safeload.contracts.model import parse_contract

    pg.execute(NATIVE)
    loader(pg_uri, "2024-05-01", publish_strategy=strategy).run(write_csv(tmp_path / "old.csv", "2024-05-01", 5))
    src = tmp_path / "new.csv"
    src.write_text("order_id,order_date,amount,status,coupon\n1,2024-05-02,1.00,placed,WELCOME\n2,2024-05-02,2.00,paid,\n")
    contract = parse_contract({"dataset": "orders", "schema_policy": "evolve", "columns": [
        {"name": "order_id", "type": "bigint"}, {"name": "order_date", "type": "date"},
        {"name": "amount", "type": "numeric(12,2)"}, {"name": "status", "type": "text"}]})
    report = check_source(contract, str(src))
    assert report.decision == "evolve"
    add = columns_to_add(report)
    assert add == [("coupon", "text")]
    r = loader(pg_uri, "2024-05-02", add_columns=add, publish_strategy=strategy).run(str(src))
    assert r.added_columns == ["coupon"]
    rows = pg.execute("select order_id, coupon from public.orders where order_date = '2024-05-02' order by 1"
                      ).fetchall()
    assert rows == [(1, "WELCOME"), (2, None)]
    assert pg.execute("select count(*) from public.orders where order_date = '2024-05-01' and coupon is null"
                      ).fetchone()[0] == 5
    hist = pg.execute("select schema_changes from safeload.load_history order by id desc limit 1").fetchone()[0]
    assert hist == [{"added": "coupon"}]


# ---- regressions found by tests/reliability/test_fuzz_csv.py


def test_every_row_bad_without_threshold_is_refused_not_published_empty(pg, pg_uri, tmp_path):
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


def test_field_over_pythons_csv_limit_loads_on_the_checked_path(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    huge = "h" * 200_000  # Python's csv module refuses fields over 128 KiB by default
    src = write_csv(tmp_path / "huge.csv", "2024-05-02", 2,
                    bad=[["3", "2024-05-02", "1.00", huge], ["x", "2024-05-02", "1", huge]])
    r = loader(pg_uri, "2024-05-02", max_bad_rows=1).run(src)
    assert (r.rows, r.rows_quarantined) == (3, 1)
    assert pg.execute("select length(status) from public.orders where order_id = 3").fetchone()[0] == 200_000
    assert pg.execute("select length(raw) > 200000 from safeload.quarantine").fetchone()[0]


# ---- regressions found by tests/reliability/test_fuzz_names.py


def test_partition_value_the_column_cannot_hold_is_refused_clearly(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    with pytest.raises(LoadRefusedError, match=r"partition value '2024-13-45' is not a date .*order_date"):
        loader(pg_uri, "2024-13-45").run(write_csv(tmp_path / "a.csv", "2024-05-02", 1))
    assert pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone()[0] == 0


def test_header_naming_a_column_twice_is_refused_clearly(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    src = tmp_path / "dup.csv"
    src.write_text("order_id,order_date,amount,Amount\n1,2024-05-02,1.00,2.00\n")
    with pytest.raises(LoadRefusedError, match=r"dup.csv line 1: the header names column 'Amount' more than once"):
        loader(pg_uri, "2024-05-02").run(str(src))


@pytest.mark.parametrize("strategy", ["delete_insert", "swap"])
def test_upper_case_native_target(pg, pg_uri, tmp_path, strategy):
    """Names are quoted for ::regclass too: "Orders" is not orders."""
    pg.execute(NATIVE.replace("public.orders", 'public."Orders"'))
    r = loader(pg_uri, "2024-05-02", table="public.Orders", publish_strategy=strategy).run(
        write_csv(tmp_path / "a.csv", "2024-05-02", 5))
    assert r.rows == 5
    assert pg.execute('select count(*) from public."Orders"').fetchone()[0] == 5


# ---------------------------------------------------------------- publish_strategy="auto" (the default)

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
    snapshot keeps the old rows. (swap itself raises LockTimeoutError there: above.)"""
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


@pytest.mark.parametrize("table", ["native", "plain"])
def test_duplicate_keys_are_refused_at_publish_naming_the_key(pg, pg_uri, tmp_path, table):
    pg.execute(NATIVE_PK if table == "native" else PLAIN.replace("status text)", "status text, primary key "
                                                                 "(order_date, order_id))"))
    loader(pg_uri, "2024-05-02", run_key="a").run(write_csv(tmp_path / "a.csv", "2024-05-02", 10))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    ld = loader(pg_uri, "2024-05-02", run_key="b")
    src = write_csv(tmp_path / "b.csv", "2024-05-02", 10, bad=[["7", "2024-05-02", "1.00", "placed"]])
    staged = ld.stage(src)  # staged (the gate would report the duplicate), not published
    assert staged.rows_loaded == 11
    with pytest.raises(LoadRefusedError, match=r"unique key.*\(order_date, order_id\)=\(2024-05-02, 7\).*"
                                               r"partition is unchanged"):
        ld.publish(staged)
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before


@pytest.mark.parametrize("schema", ["safeload", "safeload_staging"])
def test_safeloads_own_schemas_are_never_a_target(pg, pg_uri, tmp_path, schema):
    """`safeload load --table safeload.load_history ...` would DELETE the history's rows."""
    pg.execute(PLAIN)
    loader(pg_uri, "2024-05-01", run_key="meta").run(write_csv(tmp_path / "m.csv", "2024-05-01", 3))
    pg.execute(f"create table {schema}.orders (like public.orders)")
    before = pg.execute("select count(*) from safeload.load_history").fetchone()
    with pytest.raises(LoadRefusedError, match=rf"{schema}.orders: schema {schema} holds safeload's own tables"):
        loader(pg_uri, "2024-05-01", table=f"{schema}.orders").run(write_csv(tmp_path / "a.csv", "2024-05-01", 3))
    assert pg.execute(f"select count(*) from {schema}.orders").fetchone() == (0,)
    assert pg.execute("select count(*) from safeload.load_history").fetchone() == before


def test_swaps_of_different_partitions_at_once_do_not_trip_over_each_others_partitions(pg, pg_uri, tmp_path):
    """A backfill publishing several days at once: each swap detaches and drops its own
    day's partition while the others look up theirs among the table's partitions (they
    hold different advisory locks). Found by the reliability suite's 8-writer rounds:
    'could not open relation with OID ...' when a partition vanished mid-lookup."""
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
    """A backfill stages several days at once. A stage that kept a lock on the target for the
    length of its COPY (``CREATE TABLE ... (LIKE target)`` in the COPY's transaction) made
    every other day's swap wait for it, then publish by DELETE + INSERT (auto) or fail
    (swap), and queued any DDL on the target (a contract's ``evolve``) behind it."""
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


@pytest.mark.parametrize("change", ["add column note text default 'n/a'", "drop column status",
                                    "alter column status type varchar(20)"])
def test_target_columns_changed_between_stage_and_publish(pg, pg_uri, tmp_path, change):
    """DDL on the target between a stage and its publish (another day's load evolving the
    table, a DBA). A column added: ``auto`` publishes the staged columns by DELETE + INSERT
    (the new column gets its default), ``swap`` refuses (ATTACH needs the parent's exact
    columns). A staged column gone or retyped: both refuse, since its audited values would
    be lost or cast. Refusals name what changed and leave the partition as it was. Before,
    both failed with PostgreSQL's raw error."""
    pg.execute(NATIVE + "; alter table public.orders add primary key (order_id, order_date)")
    loader(pg_uri, "2024-05-02", run_key="first").run(write_csv(tmp_path / "a.csv", "2024-05-02", 50))
    src = write_csv(tmp_path / "b.csv", "2024-05-02", 80, start=100)
    staged_swap = loader(pg_uri, "2024-05-02", run_key="s", publish_strategy="swap").stage(src)
    staged_auto = loader(pg_uri, "2024-05-02", run_key="a").stage(src)
    pg.execute(f"alter table public.orders {change}")
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    column, added = change.split()[2], change.startswith("add")
    what = "added: note" if added else "gone: status" if "drop" in change else "of another type: status"
    refused = rf"columns changed since the stage \({what}.*\).*nothing was published.*Stage the partition again"
    with pytest.raises(LoadRefusedError, match=refused):
        loader(pg_uri, "2024-05-02", run_key="s", publish_strategy="swap").publish(staged_swap)
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before
    if not added:
        with pytest.raises(LoadRefusedError, match=refused):
            loader(pg_uri, "2024-05-02", run_key="a").publish(staged_auto)
        assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before
        return
    r = loader(pg_uri, "2024-05-02", run_key="a").publish(staged_auto)
    assert (r.rows, r.rows_replaced, r.published_by) == (80, 50, "delete_insert")
    assert counts(pg) == {"2024-05-02": 80}
    assert pg.execute("select distinct note from public.orders").fetchall() == [("n/a",)]
    assert column == "note"


def test_sub_partitioned_target_loads_by_delete_insert(pg, pg_uri, tmp_path):
    """A day's partition that is itself partitioned (by status). The partition look-up read
    every leaf's constraint with only the day at hand, and a sub-partition's names its own
    key too: PostgreSQL's 'column "status" does not exist', raw, for any load of the table."""
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


@pytest.mark.parametrize("strategy", ["auto", "delete_insert"])
def test_a_row_breaking_a_check_constraint_is_refused_naming_its_line(pg, pg_uri, tmp_path, strategy):
    """Rows whose values do not fit the types are quarantined; a row that breaks one of the
    target's CHECK constraints cannot be (only PostgreSQL evaluates the expression), so the
    load is refused naming the file's line and the constraint. Here the checked path runs
    (line 3 does not parse), so COPY's line number is mapped back through the gap it left
    and through a record spread over two lines."""
    pg.execute(NATIVE + "; alter table public.orders add constraint amount_ok check (amount >= 0)")
    loader(pg_uri, "2024-05-02", run_key="first").run(write_csv(tmp_path / "a.csv", "2024-05-02", 10))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    path = tmp_path / "b.csv"
    path.write_text("order_id,order_date,amount,status\n"      # line 1
                    "1,2024-05-02,1.00,placed\n"               # 2
                    "2,2024-05-02,not-a-number,placed\n"       # 3: quarantined
                    '3,2024-05-02,3.00,"two\nlines"\n'         # 4-5
                    "4,2024-05-02,4.00,placed\n"               # 6
                    "5,2024-05-02,-5.00,placed\n")             # 7: breaks amount_ok
    with pytest.raises(LoadRefusedError, match=r"b\.csv, line 7 breaks CHECK constraint 'amount_ok' of public\.orders"
                                               r".*-5\.00.*nothing was staged"):
        loader(pg_uri, "2024-05-02", run_key="b", publish_strategy=strategy, max_bad_rows=5).run(str(path))
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before
    assert pg.execute("select status from safeload.load_history order by id desc limit 1").fetchone() == ("refused",)


def test_a_check_constraint_added_between_stage_and_publish_is_named(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    staged = loader(pg_uri, "2024-05-02").stage(write_csv(tmp_path / "a.csv", "2024-05-02", 10))
    pg.execute("alter table public.orders add constraint small check (order_id < 5) not valid")
    with pytest.raises(LoadRefusedError, match="breaks CHECK constraint 'small' of the target or of its partition"):
        loader(pg_uri, "2024-05-02").publish(staged)
    assert counts(pg) == {}


@pytest.mark.parametrize(("column", "message"), [
    ("id bigint generated by default as identity", r"has no column 'id', which public\.orders fills from an identity"),
    ("twice numeric generated always as (amount * 2) stored",
     r"has a column 'twice', which public\.orders computes \(GENERATED ALWAYS AS"),
])
def test_identity_and_generated_columns_the_source_cannot_fill_are_refused_clearly(pg, pg_uri, tmp_path, column,
                                                                                    message):
    """An identity column the source does not deliver (the loader publishes the staged rows
    as audited and draws no ids), or a source column the target computes: a clear refusal
    at the stage, before anything is written (was: 'requires (NOT NULL)', or PostgreSQL's
    raw 'cannot insert a non-DEFAULT value')."""
    pg.execute(PLAIN.replace("(order_id bigint not null,", f"({column}, order_id bigint not null,"))
    path = write_csv(tmp_path / "a.csv", "2024-05-02", 3)
    if "twice" in column:
        text = open(path).read().splitlines()
        path = tmp_path / "b.csv"
        path.write_text("\n".join([text[0] + ",twice"] + [t + ",1" for t in text[1:]]) + "\n")
    with pytest.raises(LoadRefusedError, match=message):
        loader(pg_uri, "2024-05-02").run(str(path))
    assert counts(pg) == {}


@pytest.mark.parametrize("rule", ["check (amount < 100)", "not null"])
def test_a_swap_keeps_the_day_partitions_own_rules(pg, pg_uri, tmp_path, rule):
    """A day's partition with a rule of its own (a CHECK, or a NOT NULL the parent does not
    have): staging is built from the parent, so a swap would drop it. ``auto`` publishes
    into the partition by DELETE + INSERT, where it applies; the redundant bound CHECK of
    PostgreSQL's ATTACH recipe (on the key alone, true for the value) does not count."""
    pg.execute(NATIVE.replace("status text", "status text, note text"))
    pg.execute("""create table public.orders_d (like public.orders including all);
                  alter table public.orders_d add constraint bound
                      check (order_date >= '2024-05-02' and order_date < '2024-05-03');
                  alter table public.orders attach partition public.orders_d
                      for values from ('2024-05-02') to ('2024-05-03')""")
    r = loader(pg_uri, "2024-05-02", run_key="a").run(write_csv(tmp_path / "a.csv", "2024-05-02", 5))
    assert r.published_by == "swap"  # the bound CHECK alone does not stop the swap
    part = pg.execute("select relid::regclass::text from pg_partition_tree('public.orders') where level = 1"
                      ).fetchone()[0]
    if rule == "not null":
        pg.execute(f"update {part} set note = 'n'")
    pg.execute(f"alter table {part} " + ("add constraint own check (amount < 100)" if rule.startswith("check")
                                        else "alter column note set not null"))
    if rule == "not null":
        with pytest.raises(LoadRefusedError, match="NOT NULL of column 'note'"):
            loader(pg_uri, "2024-05-02", run_key="b").run(write_csv(tmp_path / "b.csv", "2024-05-02", 7))
        assert counts(pg) == {"2024-05-02": 5}
        return
    r = loader(pg_uri, "2024-05-02", run_key="b").run(write_csv(tmp_path / "b.csv", "2024-05-02", 7))
    assert (r.rows, r.published_by) == (7, "delete_insert")
    assert pg.execute("select count(*) from pg_constraint where conname = 'own'").fetchone()[0] == 1
