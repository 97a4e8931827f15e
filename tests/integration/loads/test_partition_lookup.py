"""The value's partition is found from PostgreSQL's partition pruning (the leaves a plan for
``key = value`` keeps), then confirmed by the leaf's partition constraint, instead of
reading the constraint of every leaf of the table (300 ms and a lock per partition at 1000
partitions). The exhaustive look-up is the specification: for every layout below and
values inside, between, outside and on the bounds, both must name the same leaf.
"""

from __future__ import annotations

import psycopg
import pytest

from safeload.errors import LoadRefusedError
from safeload.loads import partitions
from safeload.loads import sql as q
from safeload.loads.loader import PartitionLoader

LAYOUTS = {
    "range of days, gaps": """
        create table public.t (k date not null, v int) partition by range (k);
        create table public.t_1 partition of public.t for values from ('2024-05-01') to ('2024-05-02');
        create table public.t_2 partition of public.t for values from ('2024-05-02') to ('2024-05-03');
        create table public.t_m partition of public.t for values from ('2024-06-01') to ('2024-07-01');
        create table public.t_lo partition of public.t for values from (minvalue) to ('2020-01-01')""",
    "range with a DEFAULT": """
        create table public.t (k date not null, v int) partition by range (k);
        create table public.t_1 partition of public.t for values from ('2024-05-01') to ('2024-05-02');
        create table public."t ""odd"" name" partition of public.t default""",
    "list of text, several values": """
        create table public.t (k text not null, v int) partition by list (k);
        create table public.t_a partition of public.t for values in ('eu-west', 'eu_west');
        create table public.t_b partition of public.t for values in ('us');
        create schema other;
        create table other.t_c partition of public.t for values in ('Ünïcode', 'apac')""",
    "list key with a collation of its own": """
        create table public.t (k text not null, v int) partition by list (k collate "C");
        create table public.t_a partition of public.t for values in ('eu');
        create table public.t_b partition of public.t for values in ('us')""",
    "integer range, sub-partitioned": """
        create table public.t (k bigint not null, j int not null, v int) partition by range (k);
        create table public.t_1 partition of public.t for values from (1) to (2);
        create table public.t_2 partition of public.t for values from (2) to (10) partition by list (j);
        create table public.t_2a partition of public.t_2 for values in (1);
        create table public.t_2d partition of public.t_2 default""",
    "timestamp range of days": """
        create table public.t (k timestamptz not null, v int) partition by range (k);
        create table public.t_1 partition of public.t for values from ('2024-05-01 00:00+00') to ('2024-05-02 00:00+00')""",
    "no partition yet": """
        create table public.t (k date not null, v int) partition by range (k)""",
    "a lone DEFAULT partition": """
        create table public.t (k date not null, v int) partition by range (k);
        create table public.t_d partition of public.t default""",
}

VALUES = {
    "date": ["2024-05-01", "2024-05-02", "2024-05-03", "2024-06-15", "2024-07-01", "2019-12-31", "2020-01-01"],
    "text": ["eu-west", "eu_west", "us", "US", "apac", "Ünïcode", "eu", "", "zz"],
    "bigint": ["0", "1", "2", "9", "10"],
    "timestamp with time zone": ["2024-05-01 00:00+00", "2024-05-01 23:59:59.999999+00", "2024-05-02 00:00+00",
                                 "2024-04-30 23:59:59+00"],
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_pruned_look_up_finds_what_the_exhaustive_one_finds(pg, layout, monkeypatch):
    pg.execute(LAYOUTS[layout])
    info = q.target_info(pg, "public.t")
    values = VALUES[info.column("k").type]
    found = {}
    with pg.transaction():
        for v in values:
            found[v] = partitions.partition_for(pg, info, v)
            candidates = partitions.pruned_leaves(pg, info, v)
            assert candidates is not None
            if layout == "list key with a collation of its own":
                # the key cannot be pruned by a comparison under the column's collation: every leaf
                assert len(candidates) == 2
            elif layout.endswith("sub-partitioned") and v != "1":
                assert len(candidates) <= 2, (v, candidates)  # the sub-partitions of the value's partition
            else:
                assert len(candidates) <= 1, (v, candidates)  # pruned to the value's leaf
    monkeypatch.setattr(partitions, "pruned_leaves", lambda *a: None)  # the exhaustive look-up
    with pg.transaction():
        exhaustive = {v: partitions.partition_for(pg, info, v) for v in values}
    assert found == exhaustive
    # and each is right by PostgreSQL's own routing: a row inserted with the value lands in it
    # (in one of its sub-partitions, for a partitioned partition)
    for v, part in found.items():
        with pg.transaction(force_rollback=True):
            if part is None:
                with pytest.raises(Exception, match="no partition of relation"):
                    with pg.transaction():
                        pg.execute(_insert(info), (v,))
            else:
                landed = pg.execute(_insert(info) + " returning tableoid", (v,)).fetchone()[0]
                assert pg.execute("select %s::regclass::text in (select relid::regclass::text from "
                                  "pg_partition_ancestors(%s))", (part, landed)).fetchone()[0], v


def _insert(info) -> str:
    extra = ", j" if info.column("j") else ""
    return f"insert into public.t (k{extra}) values (%s{', 5' if extra else ''})"


def test_the_look_up_locks_the_values_partition_only(pg):
    """The look-up's locks are released by its rolled-back savepoint, but until then every
    partition it holds stands in the way of other days' swaps (and one lock per partition
    fills the lock table on a table of many). Listing the partitions with
    pg_partition_tree locked all of them; the plan and pg_inherits lock none."""
    pg.execute("create table public.t (k date not null, v int) partition by range (k)")
    for d in range(1, 29):
        pg.execute(f"create table public.t_{d} partition of public.t "
                   f"for values from ('2024-02-{d:02d}') to (date '2024-02-{d:02d}' + 1)")
    info = q.target_info(pg, "public.t")
    with pg.transaction():
        assert partitions.find_partition(pg, info, "2024-02-10") == "t_10"
        held = pg.execute("select count(*) from pg_locks where pid = pg_backend_pid() and locktype = 'relation' "
                          "and relation in (select inhrelid from pg_inherits where inhparent = 'public.t'::regclass)"
                          ).fetchone()[0]
    assert held == 1


PINNED = """create table public.snaps (order_id bigint, order_date timestamptz not null) partition by range (order_date)"""


def _snaps_csv(path, value, n):
    path.write_text("order_id,order_date\n" + "".join(f"{i},{value}\n" for i in range(1, n + 1)))
    return str(path)


def _snaps_loader(uri, value, run_key, strategy):
    return PartitionLoader(lambda: psycopg.connect(uri), table="public.snaps", partition_column="order_date",
                           partition_value=value, run_key=run_key, publish_strategy=strategy)


def test_the_pruned_look_up_is_not_narrowed_by_a_partitions_check_constraint(pg, pg_uri, tmp_path):
    """EXPLAIN's plan would also drop partitions whose own CHECK constraints refute the
    value (constraint_exclusion = partition, the default), which PostgreSQL's routing
    does not: a day that a swap published for '2024-05-02' keeps its CHECK pinning every
    row to midnight, and the look-up for '2024-05-02 13:00' must still find the day's
    partition (as the exhaustive look-up and routing do). ``swap`` then refuses clearly
    ('also holds other values'), the partition unchanged, instead of trying to ATTACH a
    second partition for the day."""
    pg.execute(PINNED)
    _snaps_loader(pg_uri, "2024-05-02", "a", "swap").run(_snaps_csv(tmp_path / "a.csv", "2024-05-02", 3))
    info = q.target_info(pg, "public.snaps")
    with pg.transaction():
        day = pg.execute("select relid::regclass::text from pg_partition_tree('public.snaps') where level = 1"
                         ).fetchone()[0]
        assert partitions.partition_for(pg, info, "2024-05-02 13:00") == day
    with pytest.raises(LoadRefusedError, match="also holds other values"):
        _snaps_loader(pg_uri, "2024-05-02 13:00", "b", "swap").run(_snaps_csv(tmp_path / "b.csv", "2024-05-02 13:00", 2))
    assert pg.execute("select count(*) from public.snaps").fetchone()[0] == 3
