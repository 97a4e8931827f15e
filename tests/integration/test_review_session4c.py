"""Review (session 4c) of the second review's fixes (49fb84b..d62dc52), hunting false
positives of the new swap checks (``PartitionLoader._same_columns`` and the "rules of its
own" clause of ``swap_blocker``) on ordinary targets. Each test here failed against the
real PostgreSQL (18 embedded and 15) on d62dc52, and says whether it worked before.
"""

from __future__ import annotations

import psycopg
import pytest
from safeload.loads.loader import PartitionLoader

DAY = "2024-05-01"


def _loader(uri, run_key, strategy):
    return PartitionLoader(lambda: psycopg.connect(uri), table="public.t", partition_column="d",
                           partition_value=DAY, run_key=run_key, publish_strategy=strategy)


@pytest.mark.parametrize("strategy", ["auto", "swap"])
def test_a_partition_attached_by_the_manuals_recipe_still_swaps(pg, pg_uri, tmp_path, strategy):
    """A regression of 8842819. PostgreSQL's manual (ALTER TABLE ... ATTACH PARTITION)
    recommends creating the table to attach with a CHECK constraint matching its bound,
    so that ATTACH skips its scan; the CHECK is then redundant and often left in place.
    ``swap_blocker`` now counts it as a "rule of its own" which a swap would drop:
    ``auto`` reloads that day by DELETE + INSERT for ever, and ``swap`` is refused as
    unsafe ("has rules of its own (CHECK constraint t_20240501_bound)"). Nothing is lost
    by the swap: the CHECK mentions only the partition key, and the swapped-in partition
    holds the value alone (its bound and the pin), at which the CHECK is true. Before the
    fix both strategies swapped. A fix: ignore own CHECKs whose columns (conkey) are the
    partition key alone and that hold for the value."""
    pg.execute("""
        create table public.t (id int not null, d date not null, a int, primary key (id, d)) partition by range (d);
        create table public.t_20240501 (like public.t including all);
        alter table public.t_20240501 add constraint t_20240501_bound check (d >= '2024-05-01' and d < '2024-05-02');
        alter table public.t attach partition public.t_20240501 for values from ('2024-05-01') to ('2024-05-02');
        insert into public.t values (1, '2024-05-01', 100), (9, '2024-05-01', 900);
    """)
    src = tmp_path / "day.csv"
    src.write_text("id,d,a\n" + "".join(f"{i},{DAY},{i}\n" for i in range(1, 4)))
    loader = _loader(pg_uri, "r1", strategy)
    result = loader.publish(loader.stage(str(src)))
    assert result.published_by == "swap"
    assert pg.execute("select id, a from public.t order by 1").fetchall() == [(1, 1), (2, 2), (3, 3)]
