"""When a swap may replace the value's partition: the partition must hold that value alone
(not a month, not a LIST of several values, not a timestamp day with other times) and
have no rules of its own that staging, built from the parent, would drop; a CHECK that
only restates the bound does not count. Deciding takes no lasting lock on the parent."""

from __future__ import annotations

import psycopg
import pytest

from safeload.errors import LoadRefusedError
from safeload.loads import partitions
from safeload.loads.loader import PartitionLoader

from tests.integration.loads.orders import (
    NATIVE,
    amounts,
    counts,
    loader,
    partition_with_own_check,
    write_amounts,
    write_csv,
    write_customers,
)


def test_auto_does_not_swap_away_a_partition_that_holds_other_values(pg, pg_uri, tmp_path):
    """A partition created by the user for a month (or a LIST partition of several values)
    holds other days' rows: swapping it for one day's staging table would detach and
    drop them all. The load replaces the day's rows only, and keeps the rest of the
    month."""
    pg.execute("create table public.orders (order_id bigint not null, customer_id int, order_date date not null)"
               " partition by range (order_date)")
    pg.execute("create table public.orders_2024_05 partition of public.orders "
               "for values from ('2024-05-01') to ('2024-06-01')")
    pg.execute("insert into public.orders select g, 1, date '2024-05-01' + (g % 31) from generate_series(1, 310) g")
    before = dict(pg.execute("select order_date::text, count(*) from public.orders group by 1").fetchall())
    r = loader(pg_uri, "2024-05-02", table="public.orders").run(
        write_customers(tmp_path / "a.csv", "2024-05-02", 25, start=1000))
    assert r.rows == 25
    after = dict(pg.execute("select order_date::text, count(*) from public.orders group by 1").fetchall())
    assert after == {**before, "2024-05-02": 25}


def test_list_partition_of_several_values_is_not_swapped_away(pg, pg_uri, tmp_path):
    """The same for LIST: the partition of ('a', 'b') keeps 'b' when 'a' is loaded; one of
    its own value is still swapped."""
    pg.execute("create table public.events (order_id bigint not null, customer_id int, order_date text not null)"
               " partition by list (order_date)")
    pg.execute("create table public.events_ab partition of public.events for values in ('a', 'b')")
    pg.execute("create table public.events_c partition of public.events for values in ('c')")
    pg.execute("insert into public.events select g, 1, case when g % 2 = 0 then 'a' else 'b' end "
               "from generate_series(1, 10) g")
    r = loader(pg_uri, "a", table="public.events").run(write_customers(tmp_path / "a.csv", "a", 3, start=100))
    assert (r.rows, r.rows_replaced, r.published_by) == (3, 5, "delete_insert")
    r = loader(pg_uri, "c", table="public.events").run(write_customers(tmp_path / "c.csv", "c", 4, start=200))
    assert (r.rows, r.published_by) == (4, "swap")
    assert dict(pg.execute("select order_date, count(*) from public.events group by 1").fetchall()) == \
        {"a": 3, "b": 5, "c": 4}


def test_swap_refuses_a_partition_that_holds_other_values_and_changes_nothing(pg, pg_uri, tmp_path):
    """``swap`` refuses a month's partition, and nothing changes."""
    pg.execute("create table public.orders (order_id bigint not null, customer_id int, order_date date not null)"
               " partition by range (order_date)")
    pg.execute("create table public.orders_2024_05 partition of public.orders "
               "for values from ('2024-05-01') to ('2024-06-01')")
    pg.execute("insert into public.orders select g, 1, date '2024-05-01' + (g % 31) from generate_series(1, 62) g")
    from safeload.errors import LoadRefusedError

    with pytest.raises(LoadRefusedError, match="also holds other values"):
        loader(pg_uri, "2024-05-02", table="public.orders", publish_strategy="swap").run(
            write_customers(tmp_path / "a.csv", "2024-05-02", 5, start=1000))
    assert pg.execute("select count(*) from public.orders").fetchone()[0] == 62
    assert pg.execute("select count(*) from pg_inherits where inhparent = 'public.orders'::regclass").fetchone()[0] == 1


def test_day_partitions_safeload_creates_are_still_swapped(pg, pg_uri, tmp_path):
    """The bounds check keeps the swap where the partition is the value's own: safeload's
    day partition of a timestamp column (and of an integer column) is replaced by swap."""
    pg.execute("create table public.snaps (order_id bigint not null, customer_id int, order_date timestamptz not null)"
               " partition by range (order_date)")
    pg.execute("create table public.nums (order_id bigint not null, customer_id int, order_date int not null)"
               " partition by range (order_date)")
    for table, value in (("public.snaps", "2024-05-02"), ("public.nums", "7")):
        for k in range(2):
            r = loader(pg_uri, value, table=table, run_key=f"r{k}").run(
                write_customers(tmp_path / f"{k}.csv", value, 5 + k))
            assert (r.rows, r.published_by) == (5 + k, "swap")
        assert pg.execute(f"select count(*) from {table}").fetchone()[0] == 6


def test_a_timestamp_days_partition_with_other_times_is_not_swapped_away(pg, pg_uri, tmp_path):
    """On a timestamp column the day's partition holds every time of the day, and DELETE +
    INSERT replaces the rows equal to the value only: a swap would replace the whole
    day, dropping a 13:00 row that delete_insert keeps. Where a swap published the day
    for this value (its CHECK pins every row to it), the swap goes on."""
    for strategy in ("auto", "delete_insert"):
        t = f"snaps_{strategy}"
        pg.execute(f"create table public.{t} (order_id bigint not null, customer_id int, "
                   "order_date timestamptz not null) partition by range (order_date)")
        pg.execute(f"create table public.{t}_d partition of public.{t} for values from ('2024-05-02') to ('2024-05-03')")
        pg.execute(f"insert into public.{t} values (98, 1, '2024-05-02 00:00'), (99, 1, '2024-05-02 13:00')")
        r = loader(pg_uri, "2024-05-02", table=f"public.{t}", run_key="b", publish_strategy=strategy).run(
            write_customers(tmp_path / "b.csv", "2024-05-02", 4))
        assert (r.rows, r.rows_replaced, r.published_by) == (4, 1, "delete_insert"), strategy
        assert pg.execute(f"select count(*) from public.{t} where order_id = 99").fetchone()[0] == 1, strategy


def test_the_swap_decision_keeps_no_lock_on_the_parent(pg, pg_uri, tmp_path):
    """Reading a partition's constraint (pg_get_partition_constraintdef) also locks its
    parent, ACCESS SHARE, to the end of the transaction: kept by the publish's swap
    decision, it would stand in the way of every other load's swap of the same table
    (each one's ACCESS EXCLUSIVE attempts wait for it), as ``partitions.partition_for``
    explains. Neither the bounds check nor the whole decision keeps it."""
    from safeload.loads import sql as q

    pg.execute("create table public.orders (order_id bigint not null, customer_id int, order_date date not null)"
               " partition by range (order_date)")
    loader(pg_uri, "2024-05-02", table="public.orders").run(write_customers(tmp_path / "a.csv", "2024-05-02", 5))
    ld = loader(pg_uri, "2024-05-02", table="public.orders", run_key="b")
    held = "select count(*) from pg_locks where pid = pg_backend_pid() and relation = 'public.orders'::regclass"
    # the bounds check alone, on a fresh connection (no partition constraint cached yet, as
    # after another connection's DDL): the path that opens the parent
    with psycopg.connect(pg_uri) as conn:
        info = q.target_info(conn, "public.orders")
        assert partitions.bounds_one_value(conn, info, "public.orders_p2024_05_02", "2024-05-02")
        assert conn.execute(held).fetchone()[0] == 0
    with psycopg.connect(pg_uri) as conn:
        info = q.target_info(conn, "public.orders")
        assert ld.swap_blocker(conn, info, partition=True) is None
        assert conn.execute(held).fetchone()[0] == 0


@pytest.mark.parametrize("strategy", ["auto", "swap"])
def test_a_partition_attached_by_the_manuals_recipe_still_swaps(pg, pg_uri, tmp_path, strategy):
    """PostgreSQL's manual (ALTER TABLE ... ATTACH PARTITION) recommends creating the table
    to attach with a CHECK constraint matching its bound, so that ATTACH skips its scan;
    the CHECK is then redundant and often left in place. It is not a rule of the
    partition's own that a swap would drop: it mentions only the partition key, and the
    swapped-in partition holds the value alone (its bound and the pin), for which the
    CHECK is true. Both ``auto`` and ``swap`` swap."""
    pg.execute("""
        create table public.t (id int not null, d date not null, a int, primary key (id, d)) partition by range (d);
        create table public.t_20240501 (like public.t including all);
        alter table public.t_20240501 add constraint t_20240501_bound check (d >= '2024-05-01' and d < '2024-05-02');
        alter table public.t attach partition public.t_20240501 for values from ('2024-05-01') to ('2024-05-02');
        insert into public.t values (1, '2024-05-01', 100), (9, '2024-05-01', 900);
    """)
    src = tmp_path / "day.csv"
    src.write_text("id,d,a\n" + "".join(f"{i},2024-05-01,{i}\n" for i in range(1, 4)))
    ld = PartitionLoader(lambda: psycopg.connect(pg_uri), table="public.t", partition_column="d",
                         partition_value="2024-05-01", run_key="r1", publish_strategy=strategy)
    result = ld.publish(ld.stage(str(src)))
    assert result.published_by == "swap"
    assert pg.execute("select id, a from public.t order by 1").fetchall() == [(1, 1), (2, 2), (3, 3)]


def test_a_swap_does_not_drop_the_partitions_own_check_constraint(pg, pg_uri, tmp_path):
    """The day's partition has a CHECK of its own (``small``: amount < 100), which staging,
    built from the parent, lacks: a swap would drop the partition with ``small`` and
    publish rows with amount 500. The partition keeps its rule: the rows are refused,
    naming it, or the swap is not used for it."""
    partition_with_own_check(pg)
    try:
        loader(pg_uri).run(write_amounts(tmp_path / "a.csv", [1, 2], amount=500))
    except LoadRefusedError as e:
        assert "small" in str(e)
    assert amounts(pg) == []
    assert pg.execute("select count(*) from pg_constraint where conname = 'small'").fetchone()[0] == 1


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
