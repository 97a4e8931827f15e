"""Review (session 3) of the auto/swap publish and the sql engine's rewrites: each test
here failed before the fix it names, against the real PostgreSQL."""

from __future__ import annotations

import csv
import hashlib

import psycopg
import pytest

from safeload.loads import partitions
from safeload.loads.loader import PartitionLoader

LONG = "orders_of_the_regional_warehouse_by_customer"  # 44 characters: staging names keep 40


def _csv(path, day, n, start=1):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "customer_id", "order_date"])
        for i in range(start, start + n):
            w.writerow([i, i % 7, day])
    return str(path)


def _loader(uri, table, day, run_key="r", **kw):
    return PartitionLoader(lambda: psycopg.connect(uri), table=table, partition_column="order_date",
                           partition_value=day, run_key=run_key, **kw)


def test_swapped_partitions_of_a_long_named_table_do_not_collide_on_index_names(pg, pg_uri, tmp_path):
    """The swap moves staging's indexes into the target's schema. Named by PostgreSQL after
    the staging table, a long table name and index columns truncate the name's digest away,
    so every day's index has the same name and the second day's swap fails with 'relation
    ... already exists' (every retry too)."""
    pg.execute(f"create table public.{LONG} (order_id bigint not null, customer_id int, order_date date not null)"
               " partition by range (order_date)")
    pg.execute(f"create index on public.{LONG} (customer_id, order_date)")
    for k, day in enumerate(["2024-05-01", "2024-05-02", "2024-05-03"]):
        r = _loader(pg_uri, f"public.{LONG}", day).run(_csv(tmp_path / f"{k}.csv", day, 50, start=k * 100))
        assert (r.rows, r.published_by) == (50, "swap")
    assert pg.execute(f"select count(*) from public.{LONG}").fetchone()[0] == 150
    # each partition has its own index, attached to the parent's
    n = pg.execute("select count(*) from pg_inherits i join pg_class c on c.oid = i.inhparent "
                   "where c.relkind = 'I' and c.relname like %s", (LONG[:20] + "%",)).fetchone()[0]
    assert n == 3


def _csv_rows(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "customer_id", "order_date"])
        w.writerows(rows)
    return str(path)


def test_a_row_without_a_partition_value_is_quarantined_not_published_again_and_again(pg, pg_uri, tmp_path):
    """Staging's CHECK (order_date = value) lets a NULL through (a CHECK fails only on
    false): the row was published outside the partition, which the next load's DELETE
    does not touch, so every re-run of the day added one more copy of it."""
    pg.execute("create table public.orders (order_id bigint not null, customer_id int, order_date date)")
    src = _csv_rows(tmp_path / "a.csv", [[1, 1, "2024-05-02"], [2, 1, "2024-05-02"], [3, 1, ""]])
    for attempt in range(2):
        r = _loader(pg_uri, "public.orders", "2024-05-02", run_key=f"r{attempt}", max_bad_rows=5).run(src)
        assert (r.rows, r.rows_quarantined, r.rows_source) == (2, 1, 3)
    assert pg.execute("select count(*) filter (where order_date is null), count(*) from public.orders").fetchone() \
        == (0, 2)
    reasons = [r[0] for r in pg.execute("select reason from safeload.quarantine order by id").fetchall()]
    assert len(reasons) == 2 and all("order_date" in x for x in reasons), reasons


def test_swap_attach_skips_its_scan_when_the_partition_column_is_nullable(pg, pg_uri, tmp_path):
    """ATTACH skips its validation scan only when staging's constraints imply the partition
    constraint, which includes 'order_date IS NOT NULL': with a nullable column, CHECK
    (order_date = value) does not (it admits NULL), so ATTACH scanned every row while the
    swap held the parent's ACCESS EXCLUSIVE lock, and a NULL row failed the publish with
    'partition constraint ... is violated by some row'."""
    pg.execute("create table public.orders (order_id bigint not null, customer_id int, order_date date)"
               " partition by range (order_date)")
    messages: list[str] = []

    def connect():
        conn = psycopg.connect(pg_uri, options="-c client_min_messages=debug1")
        conn.add_notice_handler(lambda d: messages.append(d.message_primary or ""))
        return conn

    for k in range(2):  # the first creates the partition, the second replaces it by swap
        ld = PartitionLoader(connect, table="public.orders", partition_column="order_date",
                             partition_value="2024-05-02", run_key=f"r{k}", max_bad_rows=5)
        staged = ld.stage(_csv_rows(tmp_path / f"{k}.csv", [[1, 1, "2024-05-02"], [2, 1, "2024-05-02"], [3, 1, ""]]))
        messages.clear()  # the publish's own: ATTACH says whether it scans
        r = ld.publish(staged)
        assert (r.rows, r.rows_quarantined, r.published_by) == (2, 1, "swap")
        attach = [m for m in messages if m.startswith("verifying table") or "implied by existing constraints" in m]
        assert attach == [f'partition constraint for table "{staged.staging_table}" is implied by existing '
                          "constraints"], attach


def test_auto_does_not_swap_away_a_partition_that_holds_other_values(pg, pg_uri, tmp_path):
    """A partition created by the user for a month (or a LIST partition of several values)
    holds other days' rows: swapping it for one day's staging table detaches and drops
    them all. The load must replace the day's rows only, and keep the rest of the month."""
    pg.execute("create table public.orders (order_id bigint not null, customer_id int, order_date date not null)"
               " partition by range (order_date)")
    pg.execute("create table public.orders_2024_05 partition of public.orders "
               "for values from ('2024-05-01') to ('2024-06-01')")
    pg.execute("insert into public.orders select g, 1, date '2024-05-01' + (g % 31) from generate_series(1, 310) g")
    before = dict(pg.execute("select order_date::text, count(*) from public.orders group by 1").fetchall())
    r = _loader(pg_uri, "public.orders", "2024-05-02").run(_csv(tmp_path / "a.csv", "2024-05-02", 25, start=1000))
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
    r = _loader(pg_uri, "public.events", "a").run(_csv(tmp_path / "a.csv", "a", 3, start=100))
    assert (r.rows, r.rows_replaced, r.published_by) == (3, 5, "delete_insert")
    r = _loader(pg_uri, "public.events", "c").run(_csv(tmp_path / "c.csv", "c", 4, start=200))
    assert (r.rows, r.published_by) == (4, "swap")
    assert dict(pg.execute("select order_date, count(*) from public.events group by 1").fetchall()) == \
        {"a": 3, "b": 5, "c": 4}


def test_swap_refuses_a_partition_that_holds_other_values_and_changes_nothing(pg, pg_uri, tmp_path):
    pg.execute("create table public.orders (order_id bigint not null, customer_id int, order_date date not null)"
               " partition by range (order_date)")
    pg.execute("create table public.orders_2024_05 partition of public.orders "
               "for values from ('2024-05-01') to ('2024-06-01')")
    pg.execute("insert into public.orders select g, 1, date '2024-05-01' + (g % 31) from generate_series(1, 62) g")
    from safeload.errors import LoadRefusedError

    with pytest.raises(LoadRefusedError, match="also holds other values"):
        _loader(pg_uri, "public.orders", "2024-05-02", publish_strategy="swap").run(
            _csv(tmp_path / "a.csv", "2024-05-02", 5, start=1000))
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
            r = _loader(pg_uri, table, value, run_key=f"r{k}").run(_csv(tmp_path / f"{k}.csv", value, 5 + k))
            assert (r.rows, r.published_by) == (5 + k, "swap")
        assert pg.execute(f"select count(*) from {table}").fetchone()[0] == 6


# ---------------------------------------------------------------- the sql engine

def _sql_and_gx(uri, table, exps):
    from safeload.quality.gx_engine import run_gx
    from safeload.quality.sql_engine import run_sql
    from safeload.quality.suite import parse_suite

    specs = list(parse_suite({"name": "review", "expectations": exps}).expectations)
    with psycopg.connect(uri) as conn:
        res, unsupported = run_sql(conn, schema="public", table=table, specs=specs)
    assert unsupported == []
    return specs, res, run_gx(uri, schema="public", table=table, specs=specs)


def test_a_parents_unique_index_does_not_prove_rows_of_its_inheritance_children_unique(pg, pg_uri):
    """A unique index covers its own table only: with (non-partition) inheritance children,
    the scan of the parent reads their rows too, and GX finds the duplicates across them.
    The engine took the parent's primary key as a proof (outright, and with 'day' constant)
    and reported none."""
    from tests.integration.quality.test_quality_differential import compare

    pg.execute("""
        create table legacy (id int, day date, v text, primary key (id, day));
        create table legacy_child () inherits (legacy);
        create table solo (id int primary key, v text);
        create table solo_child () inherits (solo);
        insert into legacy select g, date '2024-01-01', 'a' from generate_series(1, 10) g;
        insert into legacy_child select g, date '2024-01-01', 'b' from generate_series(1, 4) g;
        insert into solo select g, 'a' from generate_series(1, 10) g;
        insert into solo_child select g, 'b' from generate_series(1, 3) g;
    """)
    for table, dups in (("legacy", 8), ("solo", 6)):
        exps = [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
                {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["id", "day"]}}
                if table == "legacy" else
                {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["id", "v"]}}]
        specs, res, gx = _sql_and_gx(pg_uri, table, exps)
        assert gx[0]["result"]["unexpected_count"] == dups  # GX sees the children's rows
        problems = compare(specs, res, gx)
        assert not problems, "\n".join(problems)


def test_a_parents_no_inherit_not_null_does_not_count_its_childrens_nulls_away(pg, pg_uri):
    """PostgreSQL 18: a parent's NOT NULL ... NO INHERIT sets attnotnull on the parent while
    an inheritance child holds NULLs that the scan of the parent reads: count(id) is not
    count(*) there, and GX counts the NULLs."""
    from tests.integration.quality.test_quality_differential import compare

    if int(pg.execute("show server_version_num").fetchone()[0]) < 180000:
        import pytest
        pytest.skip("NOT NULL ... NO INHERIT is PostgreSQL 18's")
    pg.execute("""
        create table par (id int, v text);
        create table par_child () inherits (par);
        insert into par values (1, 'a'), (2, 'b');
        insert into par_child values (null, 'c'), (3, 'd');
        alter table only par add constraint par_id_nn not null id no inherit;
    """)
    exps = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]
    specs, res, gx = _sql_and_gx(pg_uri, "par", exps)
    assert gx[0]["result"]["unexpected_count"] == 1
    problems = compare(specs, res, gx)
    assert not problems, "\n".join(problems)


def test_list_values_whose_partition_names_collide_each_get_a_partition(pg, pg_uri, tmp_path):
    """Partition names are the value's first 20 characters with '-' and the like as '_':
    'eu-west' and 'eu_west' (or two values sharing 20 characters) named the same table,
    and the second value's first load failed with 'relation ... already exists', every
    retry too, by swap and by DELETE + INSERT alike."""
    for k, strategy in enumerate(["auto", "delete_insert"]):
        t = f"regions{k}"
        pg.execute(f"create table public.{t} (order_id bigint not null, customer_id int, order_date text not null)"
                   " partition by list (order_date)")
        values = ["eu-west", "eu_west", "warehouse_europe_west_1", "warehouse_europe_west_2"]
        for j, value in enumerate(values):
            r = _loader(pg_uri, f"public.{t}", value, publish_strategy=strategy).run(
                _csv(tmp_path / f"{k}{j}.csv", value, 2 + j))
            assert r.rows == 2 + j
        assert dict(pg.execute(f"select order_date, count(*) from public.{t} group by 1").fetchall()) == \
            {v: 2 + j for j, v in enumerate(values)}


@pytest.fixture
def files_server(pg):
    """A file_fdw server: foreign tables whose rows come from a program."""
    pg.execute("create extension file_fdw")
    pg.execute("create server files foreign data wrapper file_fdw")
    return pg


def _same_as_gx_with_one_null(pg_uri, table):
    from tests.integration.quality.test_quality_differential import compare

    exps = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]
    specs, res, gx = _sql_and_gx(pg_uri, table, exps)
    assert gx[0]["result"]["unexpected_count"] == 1
    problems = compare(specs, res, gx)
    assert not problems, "\n".join(problems)


def test_a_foreign_tables_not_null_is_not_trusted(files_server, pg_uri):
    """PostgreSQL does not enforce a foreign table's NOT NULL (the remote data is what it
    is): count(id) is not count(*) there either, and GX counts the NULLs."""
    pg = files_server
    # rows from a program: the server's OS user cannot read the test's temporary directory
    pg.execute("create foreign table remote (id int not null, v text) server files "
               "options (program 'echo 1,a; echo ,b; echo 3,c', format 'csv')")
    _same_as_gx_with_one_null(pg_uri, "remote")


def test_a_partitioned_tables_not_null_is_not_trusted_with_a_foreign_partition(files_server, pg_uri):
    """The same through a partitioned table: its NOT NULL binds its plain partitions, not
    a foreign one."""
    pg = files_server
    pg.execute("create table pt (id int not null, v text not null) partition by list (v)")
    pg.execute("create table pt_a partition of pt for values in ('a')")
    pg.execute("insert into pt values (1, 'a'), (2, 'a')")
    pg.execute("create foreign table pt_b partition of pt for values in ('b') server files "
               "options (program 'echo 3,b; echo ,b', format 'csv')")
    _same_as_gx_with_one_null(pg_uri, "pt")


def test_swap_staging_copies_no_index_as_a_btree_that_the_parent_has_by_another_method(pg, pg_uri, tmp_path):
    """Staging for a swap got every plain index of the parent as a btree: a hash (or GiST,
    GIN) index on a long text column became a btree, whose entries are limited to 2704
    bytes, and the stage failed ('index row size exceeds btree maximum') where DELETE +
    INSERT loads the rows; a GiST index on a type with no btree class failed outright."""
    pg.execute("create table public.docs (order_id bigint not null, body text, spot point, order_date date not null)"
               " partition by range (order_date)")
    pg.execute("create index on public.docs using hash (body)")
    pg.execute("create index on public.docs using gist (spot)")
    src = tmp_path / "docs.csv"
    with open(src, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "body", "spot", "order_date"])
        for i in range(3):
            body = "".join(hashlib.sha256(f"{i}-{j}".encode()).hexdigest() for j in range(150))  # incompressible
            w.writerow([i, body, f"({i},{i})", "2024-05-02"])
    for k in range(2):
        r = _loader(pg_uri, "public.docs", "2024-05-02", run_key=f"r{k}").run(str(src))
        assert (r.rows, r.published_by) == (3, "swap")
    # the partition has the parent's hash and gist indexes (built by ATTACH), each attached
    methods = pg.execute("select am.amname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                         "join pg_am am on am.oid = c.relam where c.relkind = 'i' order by 1").fetchall()
    assert methods == [("gist",), ("hash",)], methods


def test_swap_staging_does_not_make_an_included_column_a_key(pg, pg_uri, tmp_path):
    """A primary key's INCLUDE columns were built into staging's key: NOT NULL where the
    parent allows NULL, so a row with none failed the index build, and every publish
    after it ('null value in column ... violates not-null constraint')."""
    pg.execute("create table public.orders (order_id bigint not null, customer_id int, order_date date not null,"
               " primary key (order_id, order_date) include (customer_id)) partition by range (order_date)")
    src = _csv_rows(tmp_path / "a.csv", [[1, "", "2024-05-02"], [2, 5, "2024-05-02"]])
    for k in range(2):
        r = _loader(pg_uri, "public.orders", "2024-05-02", run_key=f"r{k}").run(src)
        assert (r.rows, r.published_by) == (2, "swap")
    assert pg.execute("select count(*), count(customer_id) from public.orders").fetchone() == (2, 1)


def test_the_swap_decision_keeps_no_lock_on_the_parent(pg, pg_uri, tmp_path):
    """Reading a partition's constraint (pg_get_partition_constraintdef) also locks its
    parent, ACCESS SHARE, to the end of the transaction: kept by the publish's swap
    decision, it would stand in the way of every other load's swap of the same table
    (each one's ACCESS EXCLUSIVE attempts wait for it), as _partition_for explains."""
    from safeload.loads import sql as q

    pg.execute("create table public.orders (order_id bigint not null, customer_id int, order_date date not null)"
               " partition by range (order_date)")
    _loader(pg_uri, "public.orders", "2024-05-02").run(_csv(tmp_path / "a.csv", "2024-05-02", 5))
    ld = _loader(pg_uri, "public.orders", "2024-05-02", run_key="b")
    held = "select count(*) from pg_locks where pid = pg_backend_pid() and relation = 'public.orders'::regclass"
    # the bounds check alone, on a fresh session (no partition constraint cached yet, as
    # after another session's DDL): the path that opens the parent
    with psycopg.connect(pg_uri) as conn:
        info = q.target_info(conn, "public.orders")
        assert partitions.bounds_one_value(conn, info, "public.orders_p2024_05_02", "2024-05-02")
        assert conn.execute(held).fetchone()[0] == 0
    with psycopg.connect(pg_uri) as conn:
        info = q.target_info(conn, "public.orders")
        assert ld.swap_blocker(conn, info, partition=True) is None
        assert conn.execute(held).fetchone()[0] == 0


def test_a_timestamp_days_partition_with_other_times_is_not_swapped_away(pg, pg_uri, tmp_path):
    """On a timestamp column the day's partition holds every time of the day, and DELETE +
    INSERT replaces the rows equal to the value only: the swap replaced the whole day, so
    auto dropped a 13:00 row that delete_insert keeps. Where a swap published the day for
    this value (its CHECK pins every row to it), the swap goes on."""
    for strategy in ("auto", "delete_insert"):
        t = f"snaps_{strategy}"
        pg.execute(f"create table public.{t} (order_id bigint not null, customer_id int, "
                   "order_date timestamptz not null) partition by range (order_date)")
        pg.execute(f"create table public.{t}_d partition of public.{t} for values from ('2024-05-02') to ('2024-05-03')")
        pg.execute(f"insert into public.{t} values (98, 1, '2024-05-02 00:00'), (99, 1, '2024-05-02 13:00')")
        r = _loader(pg_uri, f"public.{t}", "2024-05-02", run_key="b", publish_strategy=strategy).run(
            _csv(tmp_path / "b.csv", "2024-05-02", 4))
        assert (r.rows, r.rows_replaced, r.published_by) == (4, 1, "delete_insert"), strategy
        assert pg.execute(f"select count(*) from public.{t} where order_id = 99").fetchone()[0] == 1, strategy
