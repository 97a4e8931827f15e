"""Review (session 3) of the auto/swap publish and the sql engine's rewrites: each test
here failed before the fix it names, against the real PostgreSQL."""

from __future__ import annotations

import csv

import psycopg

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
