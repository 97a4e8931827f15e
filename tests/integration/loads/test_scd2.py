"""SCD Type 2 rebuilt from snapshots: semantics, and the same history whatever the run order."""

from __future__ import annotations

import csv
import itertools
import sys
from pathlib import Path

import psycopg
import pytest

from safeload.loads.loader import PartitionLoader
from safeload.loads.scd2 import rebuild_scd2

ROOT = Path(__file__).resolve().parents[3]
DDL = (ROOT / "include" / "sql" / "customers.sql").read_text()
TRACKED = ["name", "email", "country", "segment"]


def write(path, day, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["snapshot_date", "customer_id", "name", "email", "country", "segment"])
        for cid, country, segment in rows:
            w.writerow([day, cid, f"C{cid}", f"c{cid}@x.io", country, segment])
    return str(path)


def load(uri, path, day):
    PartitionLoader(lambda: psycopg.connect(uri), table="public.customers_snapshot", partition_column="snapshot_date",
                    partition_value=day, run_key=f"r{day}").run(path)


def history(pg):
    return pg.execute("select customer_id, valid_from::text, valid_to::text, is_current, country, segment "
                      "from public.dim_customers order by 1, 2").fetchall()


SNAPSHOTS = {
    "2024-05-01": [(1, "DE", "smb"), (2, "FR", "consumer"), (3, "GB", "enterprise")],
    "2024-05-02": [(1, "DE", "enterprise"), (2, "FR", "consumer")],                      # 1 changes, 3 deleted
    "2024-05-03": [(1, "DE", "enterprise"), (2, "NL", "consumer"), (3, "GB", "enterprise")],  # 2 moves, 3 is back
}
EXPECTED = [
    (1, "2024-05-01", "2024-05-02", False, "DE", "smb"),
    (1, "2024-05-02", "9999-12-31", True, "DE", "enterprise"),
    (2, "2024-05-01", "2024-05-03", False, "FR", "consumer"),
    (2, "2024-05-03", "9999-12-31", True, "NL", "consumer"),
    (3, "2024-05-01", "2024-05-02", False, "GB", "enterprise"),
    (3, "2024-05-03", "9999-12-31", True, "GB", "enterprise"),
]


def test_versions_changes_deletions_and_returns(pg, pg_uri, tmp_path):
    pg.execute(DDL)
    for day, rows in SNAPSHOTS.items():
        load(pg_uri, write(tmp_path / f"{day}.csv", day, rows), day)
        rebuild_scd2(pg, "public.customers_snapshot", "public.dim_customers", key="customer_id", tracked=TRACKED)
    assert history(pg) == EXPECTED


@pytest.mark.parametrize("order", list(itertools.permutations(SNAPSHOTS)), ids="-".join)
def test_any_run_order_and_reruns_give_the_same_history(pg, pg_uri, tmp_path, order):
    pg.execute(DDL)
    for day in (*order, order[0]):  # every order, plus a re-run of the first date
        load(pg_uri, write(tmp_path / f"{day}.csv", day, SNAPSHOTS[day]), day)
        rebuild_scd2(pg, "public.customers_snapshot", "public.dim_customers", key="customer_id", tracked=TRACKED)
    assert history(pg) == EXPECTED


def test_generator_history_is_consistent(pg, pg_uri, tmp_path):
    """On generated data: at most one current version per key, versions never overlap."""
    sys.path.insert(0, str(ROOT / "include"))
    import datetime as dt

    import generate_customers

    pg.execute(DDL)
    for i in range(4):
        day = dt.date(2024, 5, 1) + dt.timedelta(days=i)
        load(pg_uri, str(generate_customers.write(tmp_path, day, 200)), day.isoformat())
    r = rebuild_scd2(pg, "public.customers_snapshot", "public.dim_customers", key="customer_id", tracked=TRACKED)
    assert r["versions"] > r["current"] > 150
    overlaps = pg.execute("""select count(*) from public.dim_customers a join public.dim_customers b
                             on a.customer_id = b.customer_id and a.valid_from < b.valid_from
                             and a.valid_to > b.valid_from""").fetchone()[0]
    assert overlaps == 0
    latest = pg.execute("select count(*) from public.customers_snapshot where snapshot_date = '2024-05-04'").fetchone()[0]
    assert r["current"] == latest
