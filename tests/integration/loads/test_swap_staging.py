"""Staging built to become the partition (a swap): the parent's indexes, named apart for
every partition and built as btree only where the parent's are btree, INCLUDE columns
left out of the key; a CHECK that lets ATTACH skip its scan; duplicate keys refused at
publish, naming the key."""

from __future__ import annotations

import csv
import hashlib

import psycopg
import pytest

from safeload.errors import LoadRefusedError
from safeload.loads.loader import PartitionLoader
from safeload.loads.sql import partition_checksum

from tests.integration.loads.orders import NATIVE_PK, PLAIN, loader, write_csv, write_customers, write_rows

LONG = "orders_of_the_regional_warehouse_by_customer"  # 44 characters: staging names keep 40


def test_swapped_partitions_of_a_long_named_table_do_not_collide_on_index_names(pg, pg_uri, tmp_path):
    """The swap moves staging's indexes into the target's schema. Named by PostgreSQL after
    the staging table, the names of a long table's indexes would truncate the staging
    name's digest away and be the same for every day ('relation ... already exists' at
    the second day's swap, every retry too). Three days swap in, each with its own
    index attached to the parent's."""
    pg.execute(f"create table public.{LONG} (order_id bigint not null, customer_id int, order_date date not null)"
               " partition by range (order_date)")
    pg.execute(f"create index on public.{LONG} (customer_id, order_date)")
    for k, day in enumerate(["2024-05-01", "2024-05-02", "2024-05-03"]):
        r = loader(pg_uri, day, table=f"public.{LONG}").run(
            write_customers(tmp_path / f"{k}.csv", day, 50, start=k * 100))
        assert (r.rows, r.published_by) == (50, "swap")
    assert pg.execute(f"select count(*) from public.{LONG}").fetchone()[0] == 150
    # each partition has its own index, attached to the parent's
    n = pg.execute("select count(*) from pg_inherits i join pg_class c on c.oid = i.inhparent "
                   "where c.relkind = 'I' and c.relname like %s", (LONG[:20] + "%",)).fetchone()[0]
    assert n == 3


def test_swap_attach_skips_its_scan_when_the_partition_column_is_nullable(pg, pg_uri, tmp_path):
    """ATTACH skips its validation scan only when staging's constraints imply the partition
    constraint, which includes 'order_date IS NOT NULL': with a nullable column, CHECK
    (order_date = value) alone does not (it admits NULL), and ATTACH would scan every row
    under the parent's ACCESS EXCLUSIVE lock (and fail on a NULL row). PostgreSQL's own
    message says the constraint is implied, on the first swap and the next."""
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
        staged = ld.stage(write_rows(tmp_path / f"{k}.csv", [[1, 1, "2024-05-02"], [2, 1, "2024-05-02"], [3, 1, ""]]))
        messages.clear()  # the publish's own: ATTACH says whether it scans
        r = ld.publish(staged)
        assert (r.rows, r.rows_quarantined, r.published_by) == (2, 1, "swap")
        attach = [m for m in messages if m.startswith("verifying table") or "implied by existing constraints" in m]
        assert attach == [f'partition constraint for table "{staged.staging_table}" is implied by existing '
                          "constraints"], attach


def test_swap_staging_copies_no_index_as_a_btree_that_the_parent_has_by_another_method(pg, pg_uri, tmp_path):
    """Staging for a swap gets the parent's btree indexes only: a hash (or GiST, GIN) index
    built as a btree may not build at all (entries over 2704 bytes, as this long text
    column has; no btree class for a point). ATTACH builds those on the partition."""
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
        r = loader(pg_uri, "2024-05-02", table="public.docs", run_key=f"r{k}").run(str(src))
        assert (r.rows, r.published_by) == (3, "swap")
    # the partition has the parent's hash and gist indexes (built by ATTACH), each attached
    methods = pg.execute("select am.amname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                         "join pg_am am on am.oid = c.relam where c.relkind = 'i' order by 1").fetchall()
    assert methods == [("gist",), ("hash",)], methods


def test_swap_staging_does_not_make_an_included_column_a_key(pg, pg_uri, tmp_path):
    """A primary key's INCLUDE columns stay out of staging's key: a key column is NOT NULL,
    and the parent allows NULL there."""
    pg.execute("create table public.orders (order_id bigint not null, customer_id int, order_date date not null,"
               " primary key (order_id, order_date) include (customer_id)) partition by range (order_date)")
    src = write_rows(tmp_path / "a.csv", [[1, "", "2024-05-02"], [2, 5, "2024-05-02"]])
    for k in range(2):
        r = loader(pg_uri, "2024-05-02", table="public.orders", run_key=f"r{k}").run(src)
        assert (r.rows, r.published_by) == (2, "swap")
    assert pg.execute("select count(*), count(customer_id) from public.orders").fetchone() == (2, 1)


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
