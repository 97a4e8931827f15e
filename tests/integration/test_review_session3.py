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
