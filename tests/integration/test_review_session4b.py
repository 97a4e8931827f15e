"""Review (session 4b) of the session-4 fixes (commits 5271d66..2d0eb6f): staging carries
the target's CHECK constraints for both strategies and a CHECK violation at the stage is
refused with the source's line; generated columns are computed in staging; the publish
re-checks the target's definition. Each test here failed against the real PostgreSQL on
the code it was written against (2d0eb6f); each says whether the behaviour worked before
those fixes (a regression) or not. Where more than one outcome is sound, the test accepts
each of them (the rows published right, or a clear ``LoadRefusedError`` with the partition
left as it was).
"""

from __future__ import annotations

import psycopg
import pytest
from safeload.errors import LoadRefusedError
from safeload.loads.loader import PartitionLoader, QuerySource

DAY = "2024-05-02"
OTHER_DAY = "2024-05-03"
PLAIN = """create table public.orders (order_id bigint not null, order_date date not null,
           amount numeric(12,2) not null, note text)"""
NATIVE = PLAIN + " partition by range (order_date)"


def _loader(uri, run_key="r", **kw):
    return PartitionLoader(lambda: psycopg.connect(uri), table="public.orders", partition_column="order_date",
                           partition_value=DAY, run_key=run_key, **kw)


def _write(path, text: str, newline: str = "\n") -> str:
    path.write_bytes(text.replace("\n", newline).encode())
    return str(path)


def _days(pg, day=DAY):
    return pg.execute("select order_id, amount from public.orders where order_date = %s order by 1",
                      (day,)).fetchall()


# --- a row of another partition that also breaks a target CHECK ---------------------------

@pytest.mark.parametrize(("ddl", "strategy"), [(PLAIN, "auto"), (NATIVE, "auto"), (NATIVE, "delete_insert")],
                         ids=["plain", "native-swap", "native-delete-insert"])
@pytest.mark.parametrize("source", ["csv", "query"])
def test_a_row_of_another_day_breaking_a_target_check_is_quarantined_not_refusing_the_load(
        pg, pg_uri, tmp_path, ddl, strategy, source):
    """A regression of 49fb84b. A daily delivery with one late row of another day, whose
    amount also breaks the target's ``amount_ok`` CHECK: the row is not this partition's,
    and the loader quarantines rows of other partitions. The straight COPY now meets the
    target's CHECK before staging's ``safeload_partition_check`` (PostgreSQL evaluates a
    table's CHECK constraints in name order: 'amount_ok' < 'safeload_partition_check')
    and refuses the whole load ('line 3 breaks CHECK constraint amount_ok'); named
    ``z_amount_ok``, the same row is quarantined and the load publishes. Before the fix
    (5271d66) all three strategies published the 2 rows and quarantined the late one."""
    pg.execute(ddl + "; alter table public.orders add constraint amount_ok check (amount >= 0)")
    rows = [(1, DAY, "1.00"), (2, OTHER_DAY, "-5.00"), (3, DAY, "3.00")]
    if source == "csv":
        src = _write(tmp_path / "a.csv", "order_id,order_date,amount\n" + "".join(
            f"{i},{d},{a}\n" for i, d, a in rows))
    else:
        pg.execute("create table public.src (order_id bigint, order_date date, amount numeric)")
        pg.cursor().executemany("insert into public.src values (%s, %s, %s)", rows)
        src = QuerySource(lambda: psycopg.connect(pg_uri), "select * from public.src order by order_id")
    r = _loader(pg_uri, publish_strategy=strategy, max_bad_rows=1).run(src)
    assert (r.rows, r.rows_quarantined) == (2, 1)
    assert "another partition" in pg.execute("select reason from safeload.quarantine").fetchone()[0]
    assert [i for i, _ in _days(pg)] == [1, 3]


# --- the source's line of a CHECK violation ------------------------------------------------

@pytest.mark.parametrize("strategy", ["auto", "delete_insert"])
def test_the_line_of_a_check_violation_in_a_crlf_file_with_line_feeds_in_quoted_fields(
        pg, pg_uri, tmp_path, strategy):
    """Not a regression (new in 49fb84b). Excel writes CRLF between records and a bare LF
    inside a quoted cell. In a CRLF file COPY counts only CR line ends inside quotes, so
    its 'line 4' is not the file's line: the refusal names line 4 (the middle of record
    1's note) while the row with the negative amount is on line 6, as an editor, Python's
    csv reader and safeload's own quarantine count it."""
    pg.execute(NATIVE + "; alter table public.orders add constraint amount_ok check (amount >= 0)")
    path = tmp_path / "excel.csv"
    path.write_bytes((f'order_id,order_date,amount,note\r\n1,{DAY},1.00,"first\nsecond\nthird"\r\n'
                      f'2,{DAY},2.00,b\r\n3,{DAY},-3.00,c\r\n').encode())
    with pytest.raises(LoadRefusedError) as e:
        _loader(pg_uri, publish_strategy=strategy).run(str(path))
    assert "amount_ok" in str(e.value)
    assert f"{path}, line 6 " in str(e.value), e.value
    assert _days(pg) == []


# --- the target's definition changed between stage and publish ------------------------------

def _csv(tmp_path, name, ids, amount=None):
    return _write(tmp_path / name, "order_id,order_date,amount\n" + "".join(
        f"{i},{DAY},{amount if amount is not None else i}.00\n" for i in ids))


def _publish_after_ddl(pg, pg_uri, tmp_path, strategy, change):
    """Publish days 1-2, stage 10-11, run ``change`` on the target, publish: ``swap`` may
    refuse (the partition then as it was), ``auto`` must publish."""
    _loader(pg_uri, run_key="first").run(_csv(tmp_path, "a.csv", [1, 2]))
    staged = _loader(pg_uri, run_key="second", publish_strategy=strategy).stage(_csv(tmp_path, "b.csv", [10, 11]))
    pg.execute(f"alter table public.orders {change}")
    try:
        _loader(pg_uri, run_key="second", publish_strategy=strategy).publish(staged)
    except LoadRefusedError:
        assert strategy == "swap"
        assert [i for i, _ in _days(pg)] == [1, 2]


@pytest.mark.parametrize("strategy", ["auto", "swap"])
@pytest.mark.parametrize("change", [
    pytest.param("alter column twice set expression as (amount * 3)", id="set-expression"),
    pytest.param("drop column twice, add column twice numeric generated always as (amount * 3) stored",
                 id="dropped-and-added"),
])
def test_a_generation_expression_changed_since_the_stage_is_not_swapped_in_stale(
        pg, pg_uri, tmp_path, strategy, change):
    """Not a regression (generated columns did not load before 49fb84b). Staging computes
    ``twice`` with the expression of the stage's time; the target's expression changes
    before the publish. PostgreSQL 17 and later ATTACH a partition whose generation
    expression differs from the parent's (15 refuses: 'conflicting generation
    expression'), and the publish compares names and types only: the swap publishes
    twice = 2 * amount, and the partition keeps computing 2 * amount for every later
    row of the day while every other day computes 3 * amount. Sound: DELETE + INSERT
    (the target computes the values) or, for ``swap``, a refusal with the partition as it was."""
    if pg.info.server_version < 170000 and "set expression" in change:
        pytest.skip("ALTER COLUMN ... SET EXPRESSION is PostgreSQL 17+")
    pg.execute(NATIVE.replace("note text", "twice numeric generated always as (amount * 2) stored"))
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
    """Not a regression (swap staging carried the CHECKs before too). The owner drops
    ``amount_ok`` (relaxing the rule) between the stage and the publish: ATTACH accepts
    a partition with more CHECK constraints than its parent, so the swapped-in partition
    keeps ``amount_ok`` as a constraint of its own, and the day refuses a negative amount
    that every other day of the table now accepts. The same with a NOT NULL dropped
    (PostgreSQL 15 and 18 alike). Sound: the partition published without it (DELETE +
    INSERT, or staging's copy dropped before ATTACH), or a refusal."""
    pg.execute(NATIVE + "; alter table public.orders add constraint amount_ok check (amount >= 0)")
    _publish_after_ddl(pg, pg_uri, tmp_path, strategy, change)
    pg.execute(f"create table public.orders_o partition of public.orders for values from ('{OTHER_DAY}') to ('2024-05-04')")
    pg.execute(f"insert into public.orders values (98, '{OTHER_DAY}', {value})")  # another day: accepted
    pg.execute(f"insert into public.orders values (99, '{DAY}', {value})")


# --- a CHECK constraint of the value's partition itself --------------------------------------

def _partition_with_own_check(pg):
    pg.execute(NATIVE)
    pg.execute(f"create table public.orders_d partition of public.orders for values from ('{DAY}') to ('{OTHER_DAY}')")
    pg.execute("alter table public.orders_d add constraint small check (amount < 100)")


def test_a_swap_does_not_drop_the_partitions_own_check_constraint(pg, pg_uri, tmp_path):
    """Not a regression (the swap never looked at the old partition's own constraints).
    The day's partition has a CHECK of its own (``small``: amount < 100), which staging,
    built from the parent, lacks. ``auto`` swaps: the old partition and ``small`` are
    dropped and rows with amount 500 are published. Sound: the partition keeps its rule
    (the rows are refused, naming it), or the swap is not used for it."""
    _partition_with_own_check(pg)
    try:
        _loader(pg_uri).run(_csv(tmp_path, "a.csv", [1, 2], amount=500))
    except LoadRefusedError as e:
        assert "small" in str(e)
    assert _days(pg) == []
    assert pg.execute("select count(*) from pg_constraint where conname = 'small'").fetchone()[0] == 1


def test_a_partitions_own_check_refusal_does_not_blame_ddl_since_the_stage(pg, pg_uri, tmp_path):
    """Not a regression (49fb84b added the message). DELETE + INSERT into the same
    partition is refused by ``small`` with 'a staged row breaks the target's CHECK
    constraint 'small', added since the stage ... Stage the partition again: the stage
    names the source's line'. Nothing was added since the stage, and a new stage passes
    again (staging carries the parent's CHECKs, not the partition's) and the publish
    fails the same way: the advice sends the operator round in a loop."""
    _partition_with_own_check(pg)
    with pytest.raises(LoadRefusedError) as e:
        _loader(pg_uri, publish_strategy="delete_insert").run(_csv(tmp_path, "a.csv", [1, 2], amount=500))
    assert "small" in str(e.value)
    assert "added since the stage" not in str(e.value), e.value
    assert _days(pg) == []


# --- a generated partition column ------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["auto", "delete_insert"])
def test_a_plain_table_partitioned_by_a_generated_column_loads(pg, pg_uri, tmp_path, strategy):
    """Not a regression (before 49fb84b the publish's INSERT failed raw: 'cannot insert a
    non-DEFAULT value into column "day"'). A plain table whose partition column is
    computed (``day date generated always as (ts::date) stored``) and a source without
    it, as _map_columns now demands: the stage sets staging's ``day`` DEFAULT to the
    partition value, which PostgreSQL refuses on a generated column with a raw
    SyntaxError ('column "day" ... is a generated column'). Sound: the rows load (the
    partition CHECK still pins ``day`` to the value), or a LoadRefusedError says why not."""
    pg.execute("create table public.ev (id bigint not null, ts timestamp not null, "
               "day date generated always as (ts::date) stored)")
    src = _write(tmp_path / "ev.csv", f"id,ts\n1,{DAY} 10:00\n2,{DAY} 11:00\n")
    loader = PartitionLoader(lambda: psycopg.connect(pg_uri), table="public.ev", partition_column="day",
                             partition_value=DAY, run_key="r", publish_strategy=strategy)
    try:
        r = loader.run(src)
    except LoadRefusedError:
        return
    assert r.rows == 2
    assert pg.execute("select id, day::text from public.ev order by 1").fetchall() == [(1, DAY), (2, DAY)]


# --- incremental loads into a target with a generated column ---------------------------------

def test_an_incremental_plan_for_a_target_with_a_generated_column(pg):
    """Not a regression (such a target never loaded: the publish's INSERT failed raw), but
    49fb84b's answer (_map_columns: 'drop it from the source') cannot be followed here:
    ``plan_reloads`` fingerprints, and ReloadPartitionsOperator (operators/incremental.py,
    ``columns = [c.name for c in target_info(...).columns]``) projects, every column of the
    target, generated ones included. The application's table has no ``twice``: the plan
    fails with PostgreSQL's raw UndefinedColumn. (A source query that computes ``twice``
    passes the plan, and the reload's stage then refuses it as a column the target
    computes.) Sound: a plan that fingerprints the columns a load writes (not the
    generated ones) and marks the day for reload, or a SourceError saying what to do."""
    from datetime import datetime, timezone

    from safeload.errors import SourceError
    from safeload.loads.incremental import IncrementalSource, plan_reloads

    pg.execute(NATIVE.replace("note text", "twice numeric generated always as (amount * 2) stored"))
    pg.execute("create schema app; create table app.orders (order_id bigint, order_date date, amount numeric, "
               "updated_at timestamptz)")
    pg.execute(f"insert into app.orders values (1, '{DAY}', 1, '{DAY} 10:00+00'), (2, '{DAY}', 2, '{DAY} 11:00+00')")
    source = IncrementalSource("select order_id, order_date, amount, updated_at from app.orders", "order_date",
                               "updated_at", ("order_id",))
    window = (datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 5, 3, tzinfo=timezone.utc))
    try:
        plan = plan_reloads(pg, pg, source, table="public.orders", window=window)
    except SourceError as e:
        assert "twice" in str(e)
        return
    assert plan.reload == [DAY]


def test_a_staged_row_with_no_sub_partition_is_not_blamed_on_a_check_added_since_the_stage(pg, pg_uri, tmp_path):
    """Not a regression (before 49fb84b: PostgreSQL's raw CheckViolation). The day's
    partition is sub-partitioned by status, with a partition for 'placed' only; a staged
    'shipped' row has nowhere to go. PostgreSQL reports that with SQLSTATE 23514
    (check_violation) and no constraint name, and the publish's new handler turns it
    into "breaks the target's CHECK constraint None, added since the stage ... Stage the
    partition again": no constraint, nothing added, and a new stage fails the same way.
    Sound: a refusal that says the row has no partition to go to."""
    pg.execute(NATIVE)
    pg.execute(f"create table public.orders_d partition of public.orders for values from ('{DAY}') to "
               f"('{OTHER_DAY}') partition by list (note)")
    pg.execute("create table public.orders_d_placed partition of public.orders_d for values in ('placed')")
    src = _write(tmp_path / "a.csv", f"order_id,order_date,amount,note\n1,{DAY},1.00,placed\n2,{DAY},2.00,shipped\n")
    with pytest.raises(LoadRefusedError) as e:
        _loader(pg_uri).run(src)
    assert "None" not in str(e.value) and "added since the stage" not in str(e.value), e.value
    assert "partition" in str(e.value) and "shipped" in str(e.value)
    assert _days(pg) == []


# --- staging's own partition CHECK met in the checked path ----------------------------------

@pytest.mark.parametrize("ddl", ["", " partition by list (region)"], ids=["plain", "native"])
def test_a_text_partition_value_with_a_trailing_space_is_not_blamed_on_the_target(pg, pg_uri, tmp_path, ddl):
    """Not a regression (before 49fb84b: PostgreSQL's raw CheckViolation). A row whose
    text partition column is 'eu ' while loading 'eu': the checked path's partition test
    (``_same_partition``) strips spaces and writes the row, and staging's
    ``safeload_partition_check`` (text compares exactly) refuses it. The new refusal says
    the row 'breaks CHECK constraint safeload_partition_check of public.sales' and advises
    to 'relax the constraint': the constraint is safeload's own, not the target's. Sound:
    the row quarantined as another partition's (as 'us' is), or a refusal that says the
    value is not the partition value."""
    pg.execute(f"create table public.sales (id bigint not null, region text not null, amount numeric){ddl}")
    src = _write(tmp_path / "r.csv", "id,region,amount\n1,eu,1\n2,eu ,2\n3,us,3\n")
    loader = PartitionLoader(lambda: psycopg.connect(pg_uri), table="public.sales", partition_column="region",
                             partition_value="eu", run_key="r", max_bad_rows=2)
    try:
        r = loader.run(src)
    except LoadRefusedError as e:
        assert "relax the constraint" not in str(e) and "of public.sales" not in str(e), e
        return
    assert (r.rows, r.rows_quarantined) == (1, 2)
    assert pg.execute("select id, region from public.sales").fetchall() == [(1, "eu")]


# --- what a swap leaves on the partition ----------------------------------------------------

def test_a_swapped_in_day_does_not_stop_the_owner_changing_a_virtual_generated_column(pg, pg_uri, tmp_path):
    """Not a regression (a target with a generated column did not load before 49fb84b).
    PostgreSQL 18 refuses ``ALTER COLUMN ... SET EXPRESSION`` on a virtual generated column
    of a table with CHECK constraints. A day published by swap keeps staging's
    ``safeload_partition_check``, so the target's owner can no longer change the
    expression ('not supported for virtual generated columns in tables with check
    constraints ... relation "orders_p2024_05_02"'), though the table itself has no CHECK;
    a day published by DELETE + INSERT does not stand in the way. Sound: the owner's DDL
    runs (e.g. the pin dropped after ATTACH where the partition bound already implies it:
    a date, integer or LIST key)."""
    if pg.info.server_version < 180000:
        pytest.skip("virtual generated columns are PostgreSQL 18+")
    pg.execute(NATIVE.replace("note text", "twice numeric generated always as (amount * 2) virtual"))
    r = _loader(pg_uri).run(_csv(tmp_path, "a.csv", [1, 2]))
    assert r.published_by == "swap"
    pg.execute("alter table public.orders alter column twice set expression as (amount * 3)")
    assert pg.execute("select twice from public.orders order by order_id").fetchall() == [(3,), (6,)]


def test_a_refused_publish_leaves_no_new_partition_behind(pg, pg_uri, tmp_path):
    """Not a regression (low severity). ``delete_insert`` on a natively partitioned target
    without the day's partition: the publish creates and attaches it in a transaction of
    its own before it re-checks the target (``_ensure_partition``), then refuses (a
    column renamed since the stage) saying 'the partition is unchanged'; the new empty
    partition stays. Sound: the target's partitions as they were."""
    pg.execute(NATIVE)
    staged = _loader(pg_uri, publish_strategy="delete_insert").stage(_csv(tmp_path, "a.csv", [1, 2]))
    pg.execute("alter table public.orders rename column amount to amt")
    with pytest.raises(LoadRefusedError, match="changed since the stage"):
        _loader(pg_uri, publish_strategy="delete_insert").publish(staged)
    assert pg.execute("select count(*) from pg_partition_tree('public.orders') where level = 1").fetchone()[0] == 0
