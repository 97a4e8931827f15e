"""The partition checksum (docs/decisions/006) on every kind of column type, on a real PostgreSQL."""

from __future__ import annotations

import pytest

from safeload.loads.sql import partition_checksum

DDL = """
create type mood as enum ('ok', 'meh');
create domain positive as integer check (value > 0);
create table public.{name} (
    day date not null, n numeric(12,2), f double precision, v varchar(5), c char(3), t text, ts timestamp(3),
    tz timestamptz, u uuid, i interval, j json, jb jsonb, arr integer[], m mood, p point, d positive, b boolean,
    by bytea, ip inet
)"""
ROWS = [
    ("2024-05-02", "1.50", 1.5, "ab", "x", "t1", "2024-05-02 01:02:03.456", "2024-05-02 00:00:00+00",
     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "1 day", '{"a": 1}', '{"a": 1}', "{1,2}", "ok", "(1,2)", 3, True,
     b"\x00\x01", "10.0.0.1"),
    ("2024-05-02", None, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None,
     None, None),
    ("2024-05-02", "-2.00", -0.0, "", "", "", None, None, None, None, "[]", "[]", "{}", "meh", None, 1, False,
     b"", None),
]
COLS = "day, n, f, v, c, t, ts, tz, u, i, j, jb, arr, m, p, d, b, by, ip"


def fill(pg, name, rows):
    with pg.cursor() as cur:
        cur.executemany(f"insert into public.{name} ({COLS}) values ({', '.join(['%s'] * 19)})", rows)


def test_every_column_type_checksums_and_the_order_does_not_matter(pg):
    pg.execute(DDL.format(name="a"))
    pg.execute(DDL.split(";")[-1].format(name="b"))
    fill(pg, "a", ROWS)
    fill(pg, "b", list(reversed(ROWS)))
    a = partition_checksum(pg, "public.a", "day", "2024-05-02")
    assert a[0] == 3
    assert a == partition_checksum(pg, "public.b", "day", "2024-05-02")
    assert partition_checksum(pg, "public.a", "day", "2024-05-03") == (0, "0")


@pytest.mark.parametrize("change", [
    pytest.param("update public.b set j = '{\"a\": 2}' where m = 'ok'", id="json-as-text"),
    pytest.param("update public.b set arr = '{2,1}' where m = 'ok'", id="array-as-text"),
    pytest.param("update public.b set m = 'meh' where m = 'ok'", id="enum-as-text"),
    pytest.param("update public.b set n = 1.51 where m = 'ok'", id="numeric-by-value"),
    pytest.param("update public.b set tz = tz + interval '1 microsecond' where m = 'ok'", id="timestamptz-by-value"),
    pytest.param("delete from public.b where m = 'meh'", id="a-row-less"),
])
def test_any_change_changes_the_checksum(pg, change):
    pg.execute(DDL.format(name="a"))
    pg.execute(DDL.split(";")[-1].format(name="b"))
    fill(pg, "a", ROWS)
    fill(pg, "b", ROWS)
    pg.execute(change)
    assert partition_checksum(pg, "public.a", "day", "2024-05-02") != partition_checksum(
        pg, "public.b", "day", "2024-05-02")


def test_equal_values_hash_equal_whatever_their_spelling(pg):
    """numeric 1.5 and 1.50 are one value to PostgreSQL, and to the checksum (decision 006)."""
    pg.execute("create table public.x (day date, n numeric)")
    pg.execute("create table public.y (day date, n numeric)")
    pg.execute("insert into public.x values ('2024-05-02', 1.5)")
    pg.execute("insert into public.y values ('2024-05-02', 1.50)")
    assert partition_checksum(pg, "public.x", "day", "2024-05-02") == partition_checksum(
        pg, "public.y", "day", "2024-05-02")
