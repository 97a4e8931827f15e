"""DDL on the target between a stage and its publish (another day's load evolving the
table, a DBA). The publish re-reads the target under its lock: audited values are never
published altered or lost, a swap never attaches a partition that keeps what the
target has since changed (a column, a generation expression, a CHECK or NOT NULL), and
a refusal names what changed and leaves the partition, and the target's partitions, as
they were. Where more than one outcome is sound, a test accepts each: the staged values
published as audited, or a clear ``LoadRefusedError``."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from safeload.errors import LoadRefusedError
from safeload.loads.loader import PartitionLoader
from safeload.loads.sql import partition_checksum

from tests.integration.loads.orders import (
    DAY,
    NATIVE,
    NATIVE_NOTE,
    OTHER_DAY,
    PLAIN,
    amounts,
    counts,
    loader,
    write_amounts,
    write_csv,
)


@pytest.mark.parametrize("change", ["add column note text default 'n/a'", "drop column status",
                                    "alter column status type varchar(20)"])
def test_target_columns_changed_between_stage_and_publish(pg, pg_uri, tmp_path, change):
    """DDL on the target between a stage and its publish (another day's load evolving the
    table, a DBA). A column added: ``auto`` publishes the staged columns by DELETE + INSERT
    (the new column gets its default), ``swap`` refuses (ATTACH needs the parent's exact
    columns). A staged column gone or retyped: both refuse, since its audited values would
    be lost or cast. Refusals name what changed and leave the partition as it was."""
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


def test_a_check_constraint_added_between_stage_and_publish_is_named(pg, pg_uri, tmp_path):
    """A CHECK added after the stage, which staged rows break: the publish is refused naming
    the constraint, and nothing is published."""
    pg.execute(PLAIN)
    staged = loader(pg_uri, "2024-05-02").stage(write_csv(tmp_path / "a.csv", "2024-05-02", 10))
    pg.execute("alter table public.orders add constraint small check (order_id < 5) not valid")
    with pytest.raises(LoadRefusedError, match="breaks CHECK constraint 'small' of the target or of its partition"):
        loader(pg_uri, "2024-05-02").publish(staged)
    assert counts(pg) == {}


def _staged_then(pg, pg_uri, tmp_path, change, strategy="auto"):
    """Publish 5 rows of the day, stage 8 others, then run ``change`` on the target."""
    pg.execute(NATIVE)
    loader(pg_uri, run_key="first").run(write_csv(tmp_path / "a.csv", DAY, 5))
    staged = loader(pg_uri, run_key="second", publish_strategy=strategy).stage(
        write_csv(tmp_path / "b.csv", DAY, 8, start=100))
    pg.execute(f"alter table public.orders {change}")
    return staged


def _rows(pg):
    return pg.execute("select * from public.orders order by 1").fetchall()


@pytest.mark.parametrize(("old", "new"), [
    pytest.param("status", "state", id="nullable"),
    pytest.param("amount", "amt", id="not-null"),
    pytest.param("order_date", "day", id="partition-column"),
])
def test_a_column_renamed_since_the_stage_is_not_published_empty(pg, pg_uri, tmp_path, old, new):
    """A rename between the stage and the publish looks, by names alone, like a column
    dropped and another added: the renamed column's audited values ('placed') must not
    be published as NULL, nor the load fail with PostgreSQL's raw NotNullViolation or
    UndefinedColumn."""
    staged = _staged_then(pg, pg_uri, tmp_path, f"rename column {old} to {new}")
    before = _rows(pg)
    try:
        loader(pg_uri, run_key="second").publish(staged)
    except LoadRefusedError:
        assert _rows(pg) == before  # refused: the partition is as it was
        return
    import datetime as dt

    staged_values = {i: {"status": "placed", "amount": Decimal(f"{i}.{i % 100:02d}"),
                         "order_date": dt.date.fromisoformat(DAY)}[old] for i in range(100, 108)}
    published = dict(pg.execute(f"select order_id, {new} from public.orders").fetchall())
    assert published == staged_values, "the renamed column's staged values were not published (NULL)"


@pytest.mark.parametrize("change", [
    pytest.param("alter column amount type integer", id="numeric-to-integer"),
    pytest.param("alter column status type integer using null", id="text-to-integer"),
    pytest.param("alter column status type varchar(3) using left(status, 3)", id="varchar-shorter"),
])
def test_a_column_retyped_since_the_stage_is_not_published_altered(pg, pg_uri, tmp_path, change):
    """A column retyped between the stage and the publish: an INSERT of the staged values
    would cast them (101.01 to 101, without a word, though the gate audited 101.01) or
    fail with PostgreSQL's raw DatatypeMismatch / StringDataRightTruncation. A stage
    against the new type would have quarantined or refused those values."""
    staged = _staged_then(pg, pg_uri, tmp_path, change)
    before = _rows(pg)
    try:
        loader(pg_uri, run_key="second").publish(staged)
    except LoadRefusedError:
        assert _rows(pg) == before
        return
    published = pg.execute("select order_id, amount::numeric, status from public.orders order by 1").fetchall()
    assert published == [(i, Decimal(f"{i}.{i % 100:02d}"), "placed") for i in range(100, 108)], \
        "the published values are not the staged (audited) ones"


@pytest.mark.parametrize("strategy", ["auto", "swap"])
@pytest.mark.parametrize("change", [
    pytest.param('alter column status type text collate "C"', id="collation"),
    pytest.param("alter column status set not null", id="set-not-null"),
    pytest.param("add constraint status_set check (status <> '')", id="check-added"),
])
def test_ddl_that_attach_rejects_since_the_stage_is_not_a_raw_error(pg, pg_uri, tmp_path, change, strategy):
    """ATTACH wants the parent's collations, NOT NULLs and CHECK constraints, which a
    comparison of names and types does not see. DDL on those between the stage and the
    publish: ``auto`` publishes by DELETE + INSERT, ``swap`` refuses naming what changed;
    neither fails with PostgreSQL's raw CollationMismatch or DatatypeMismatch ('child
    table is missing constraint')."""
    staged = _staged_then(pg, pg_uri, tmp_path, change, strategy)
    before = partition_checksum(pg, "public.orders", "order_date", DAY)
    if strategy == "swap":
        with pytest.raises(LoadRefusedError, match="since the stage"):
            loader(pg_uri, run_key="second", publish_strategy="swap").publish(staged)
        assert partition_checksum(pg, "public.orders", "order_date", DAY) == before
    else:
        r = loader(pg_uri, run_key="second").publish(staged)
        assert (r.rows, r.published_by) == (8, "delete_insert")
        assert partition_checksum(pg, "public.orders", "order_date", DAY)[0] == 8


@pytest.mark.parametrize("strategy", ["auto", "swap"])
def test_a_column_added_while_the_publish_waits_for_the_target(pg, pg_uri, tmp_path, strategy):
    """An ALTER TABLE ... ADD COLUMN that another connection holds while the publish starts:
    the publish's look-ups wait for it, and once it commits the target has a column
    staging lacks. ATTACH would refuse ('child table is missing column "coupon"'):
    ``auto`` publishes by DELETE + INSERT, ``swap`` refuses."""
    import threading
    import time

    staged = _staged_then(pg, pg_uri, tmp_path, "alter column status set default null", strategy)
    ddl = psycopg.connect(pg_uri)
    try:
        ddl.execute("alter table public.orders add column coupon text")  # uncommitted: ACCESS EXCLUSIVE held
        out: dict = {}

        def publish():
            try:
                out["result"] = loader(pg_uri, run_key="second", publish_strategy=strategy).publish(staged)
            except Exception as e:  # noqa: BLE001 - reported by the assertions below
                out["error"] = e

        t = threading.Thread(target=publish)
        t.start()
        for _ in range(600):  # until the publish waits for the ALTER's lock (bounded: 30 s)
            if pg.execute("select count(*) from pg_stat_activity where datname = current_database() "
                          "and wait_event_type = 'Lock'").fetchone()[0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the publish never waited for the ALTER TABLE's lock")
        ddl.commit()
        t.join(120)
        assert not t.is_alive()
    finally:
        ddl.close()
    if strategy == "swap":
        assert isinstance(out.get("error"), LoadRefusedError), out
        assert partition_checksum(pg, "public.orders", "order_date", DAY)[0] == 5
    else:
        assert "error" not in out, out["error"]
        assert (out["result"].rows, out["result"].published_by) == (8, "delete_insert")
        assert pg.execute("select count(*), count(coupon) from public.orders").fetchone() == (8, 0)


@pytest.mark.parametrize("strategy", ["auto", "swap"])
def test_a_target_repartitioned_by_another_column_since_the_stage_loses_no_rows(pg, pg_uri, tmp_path, strategy):
    """The owner re-creates the target partitioned by ship_date between the stage (by
    order_date) and the publish. The publish checks that the target is still partitioned
    by the loader's column: looking the value up on ship_date would find ship_date's
    2024-05-02 partition, and a swap would drop the rows ordered on other days that
    shipped that day."""
    pg.execute("create table public.o (id int, order_date date not null, ship_date date not null) "
               "partition by range (order_date)")
    path = tmp_path / "b.csv"
    path.write_text("id,order_date,ship_date\n" + "".join(f"{i},{DAY},{DAY}\n" for i in range(100, 104)))

    def ld():
        return PartitionLoader(lambda: psycopg.connect(pg_uri), table="public.o", partition_column="order_date",
                               partition_value=DAY, run_key="b", publish_strategy=strategy)

    staged = ld().stage(str(path))
    pg.execute("""alter table public.o rename to o_old;
                  create table public.o (id int, order_date date not null, ship_date date not null)
                      partition by range (ship_date);
                  create table public.o_s0502 partition of public.o for values from ('2024-05-02') to ('2024-05-03');
                  insert into public.o values (1, '2024-04-28', '2024-05-02'), (2, '2024-04-30', '2024-05-02')""")
    try:
        ld().publish(staged)
    except LoadRefusedError:
        pass
    assert pg.execute("select id from public.o where id < 100 order by 1").fetchall() == [(1,), (2,)], \
        "rows of other order days were dropped with ship_date's partition"


def _publish_after_ddl(pg, pg_uri, tmp_path, strategy, change):
    """Publish orders 1-2, stage 10-11, run ``change`` on the target, publish: ``swap`` may
    refuse (the partition then as it was), ``auto`` must publish."""
    loader(pg_uri, run_key="first").run(write_amounts(tmp_path / "a.csv", [1, 2]))
    staged = loader(pg_uri, run_key="second", publish_strategy=strategy).stage(
        write_amounts(tmp_path / "b.csv", [10, 11]))
    pg.execute(f"alter table public.orders {change}")
    try:
        loader(pg_uri, run_key="second", publish_strategy=strategy).publish(staged)
    except LoadRefusedError:
        assert strategy == "swap"
        assert [i for i, _ in amounts(pg)] == [1, 2]


@pytest.mark.parametrize("strategy", ["auto", "swap"])
@pytest.mark.parametrize("change", [
    pytest.param("alter column twice set expression as (amount * 3)", id="set-expression"),
    pytest.param("drop column twice, add column twice numeric generated always as (amount * 3) stored",
                 id="dropped-and-added"),
])
def test_a_generation_expression_changed_since_the_stage_is_not_swapped_in_stale(
        pg, pg_uri, tmp_path, strategy, change):
    """Staging computes ``twice`` with the expression of the stage's time; the target's
    expression changes before the publish. PostgreSQL 17 and later ATTACH a partition
    whose generation expression differs from the parent's (15 refuses: 'conflicting
    generation expression'): swapped in, the day would keep computing 2 * amount for its
    later rows while every other day computes 3 * amount. DELETE + INSERT (the target
    computes the values) or, for ``swap``, a refusal with the partition as it was."""
    if pg.info.server_version < 170000 and "set expression" in change:
        pytest.skip("ALTER COLUMN ... SET EXPRESSION is PostgreSQL 17+")
    pg.execute(NATIVE_NOTE.replace("note text", "twice numeric generated always as (amount * 2) stored"))
    _publish_after_ddl(pg, pg_uri, tmp_path, strategy, change)
    pg.execute(f"insert into public.orders (order_id, order_date, amount) values (99, '{DAY}', 1)")
    got = pg.execute("select order_id, amount, twice from public.orders order by 1").fetchall()
    assert all(twice == 3 * amount for _, amount, twice in got), got


@pytest.mark.parametrize("strategy", ["auto", "swap"])
@pytest.mark.parametrize(("change", "value"), [
    pytest.param("drop constraint amount_ok", "-1", id="check"),
    pytest.param("alter column amount drop not null", "null", id="not-null"),
])
def test_a_constraint_dropped_since_the_stage_is_not_left_on_the_partition(pg, pg_uri, tmp_path, strategy, change,
                                                                          value):
    """The owner drops ``amount_ok`` (relaxing the rule) between the stage and the publish:
    ATTACH accepts a partition with more CHECK constraints than its parent, so a
    swapped-in staging table would keep ``amount_ok`` as a constraint of its own, and the
    day would refuse a negative amount that every other day accepts. The same with a NOT
    NULL dropped. The partition is published without it (DELETE + INSERT, or staging's
    copy dropped before ATTACH), or the publish is refused."""
    pg.execute(NATIVE_NOTE + "; alter table public.orders add constraint amount_ok check (amount >= 0)")
    _publish_after_ddl(pg, pg_uri, tmp_path, strategy, change)
    pg.execute(f"create table public.orders_o partition of public.orders for values from ('{OTHER_DAY}') to ('2024-05-04')")
    pg.execute(f"insert into public.orders values (98, '{OTHER_DAY}', {value})")  # another day: accepted
    pg.execute(f"insert into public.orders values (99, '{DAY}', {value})")


def test_a_refused_publish_leaves_no_new_partition_behind(pg, pg_uri, tmp_path):
    """``delete_insert`` on a natively partitioned target without the day's partition: the
    publish re-checks the staged columns before it creates and attaches the partition,
    so a refusal (a column renamed since the stage) leaves the target's partitions as
    they were, as its message says."""
    pg.execute(NATIVE_NOTE)
    staged = loader(pg_uri, publish_strategy="delete_insert").stage(write_amounts(tmp_path / "a.csv", [1, 2]))
    pg.execute("alter table public.orders rename column amount to amt")
    with pytest.raises(LoadRefusedError, match="changed since the stage"):
        loader(pg_uri, publish_strategy="delete_insert").publish(staged)
    assert pg.execute("select count(*) from pg_partition_tree('public.orders') where level = 1").fetchone()[0] == 0
