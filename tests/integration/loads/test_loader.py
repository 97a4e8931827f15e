"""The loader end to end against a real PostgreSQL: a partition replaced idempotently, its
neighbours untouched; the partitions it creates; an empty delivery; new source columns
added to the target; the targets and partition values it refuses; staging left by a
crashed run; a loader killed mid-COPY or mid-publish."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from safeload.errors import LoadRefusedError
from safeload.loads.sql import partition_checksum

from tests.integration.loads.orders import HEADER, NATIVE, PLAIN, loader, write_csv, write_customers


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


def test_list_values_whose_partition_names_collide_each_get_a_partition(pg, pg_uri, tmp_path):
    """Partition names are the value's first 20 characters with '-' and the like as '_':
    'eu-west' and 'eu_west' (or two values sharing 20 characters) would name the same
    table. Each value still gets a partition of its own, on its first load and every
    retry, by swap and by DELETE + INSERT alike."""
    for k, strategy in enumerate(["auto", "delete_insert"]):
        t = f"regions{k}"
        pg.execute(f"create table public.{t} (order_id bigint not null, customer_id int, order_date text not null)"
                   " partition by list (order_date)")
        values = ["eu-west", "eu_west", "warehouse_europe_west_1", "warehouse_europe_west_2"]
        for j, value in enumerate(values):
            r = loader(pg_uri, value, table=f"public.{t}", publish_strategy=strategy).run(
                write_customers(tmp_path / f"{k}{j}.csv", value, 2 + j))
            assert r.rows == 2 + j
        assert dict(pg.execute(f"select order_date, count(*) from public.{t} group by 1").fetchall()) == \
            {v: 2 + j for j, v in enumerate(values)}


def test_allow_empty_publishes_an_empty_partition(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    loader(pg_uri, "2024-05-02").run(write_csv(tmp_path / "good.csv", "2024-05-02", 10))
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(HEADER) + "\n")
    r = loader(pg_uri, "2024-05-02", allow_empty=True).run(str(empty))
    assert (r.rows, r.rows_replaced) == (0, 10)


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


@pytest.mark.parametrize("strategy", ["delete_insert", "swap"])
def test_upper_case_native_target(pg, pg_uri, tmp_path, strategy):
    """Names are quoted for ::regclass too: "Orders" is not orders."""
    pg.execute(NATIVE.replace("public.orders", 'public."Orders"'))
    r = loader(pg_uri, "2024-05-02", table="public.Orders", publish_strategy=strategy).run(
        write_csv(tmp_path / "a.csv", "2024-05-02", 5))
    assert r.rows == 5
    assert pg.execute('select count(*) from public."Orders"').fetchone()[0] == 5


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


def test_partition_value_the_column_cannot_hold_is_refused_clearly(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    with pytest.raises(LoadRefusedError, match=r"partition value '2024-13-45' is not a date .*order_date"):
        loader(pg_uri, "2024-13-45").run(write_csv(tmp_path / "a.csv", "2024-05-02", 1))
    assert pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone()[0] == 0


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
