"""Staging is created from the catalogue (``create_like``) instead of ``CREATE TABLE ...
(LIKE target INCLUDING DEFAULTS INCLUDING GENERATED ...)``, which would keep a lock on the
target for the stage's whole COPY.
PostgreSQL's own ``LIKE`` is the specification: for each source table below, the table
``create_like`` makes and the one ``LIKE`` makes must be the same in the catalogue, column
by column and constraint by constraint.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from safeload.loads.sql import create_like

SETUP = """
create schema util;
create schema other;
create function util.positive(x numeric) returns boolean language sql immutable as 'select x > 0';
create function util.next_ref() returns text language sql as $$select 'R-' || 1$$;
create type util.mood as enum ('ok', 'meh');
create domain util.posint as integer check (value > 0);
create collation util.ci (provider = libc, locale = 'C');
"""

#: source tables, each (name, DDL after it)
SOURCES = {
    "types": """create table src.t (
        id bigint not null, amount numeric(12,2), code varchar(20) not null, cur char(3),
        name text collate "C", label text collate util.ci, at timestamptz, day date, doc jsonb,
        tags integer[], key uuid, ok boolean, span interval, mood util.mood, n util.posint,
        "Odd ""Name"" col" text, bits bit varying(8), t3 time(3))""",
    "defaults": """create table src.t (
        id serial, made timestamptz not null default now(), ref text default util.next_ref(),
        qty integer default 1 + 2, mood util.mood default 'ok', gone int,
        ident bigint generated always as identity, twice numeric generated always as (qty * 2) stored);
        alter table src.t drop column gone""",
    "checks": """create table src.t (
        amount numeric check (util.positive(amount)), lo int, hi int,
        constraint lo_hi check (lo <= hi), constraint only_here check (lo > -5) no inherit);
        alter table src.t add constraint later check (hi < 1000) not valid""",
    "partitioned": """create table src.t (
        order_id bigint not null, order_date date not null, amount numeric(12,2) default 0,
        status text collate "C" check (status <> ''),
        constraint positive check (amount >= 0), primary key (order_id, order_date))
        partition by range (order_date)""",
}


def _signature(conn: psycopg.Connection, table: str) -> dict:
    cols = conn.execute(
        """select a.attnum, a.attname, a.atttypid::regtype::text, a.atttypmod, a.attcollation, a.attnotnull,
                  a.attgenerated, a.attidentity, pg_get_expr(d.adbin, d.adrelid)
           from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
           where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum""",
        (table,)).fetchall()
    names = {r[0]: r[1] for r in cols}
    enforced = "conenforced" if conn.info.server_version >= 180000 else "true"
    cons = conn.execute(
        f"""select contype, conname, pg_get_expr(conbin, conrelid), connoinherit, convalidated, {enforced}, conkey
            from pg_constraint where conrelid = %s::regclass order by contype, conname""", (table,)).fetchall()
    # not-null constraints (PostgreSQL 18) are named after the table: compare them by column
    cons = [(t, None if t == "n" else n, e, ni, v, en, [names[k] for k in key or []])
            for t, n, e, ni, v, en, key in cons]
    persistence = conn.execute("select relpersistence from pg_class where oid = %s::regclass", (table,)).fetchone()
    return {"columns": [r[1:] for r in cols], "constraints": sorted(cons, key=repr), "persistence": persistence}


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize(("unlogged", "constraints"), [(False, True), (True, False)])
def test_create_like_makes_what_like_makes(pg, source, unlogged, constraints):
    pg.execute(SETUP)
    pg.execute("create schema src; create schema stg")
    pg.execute(SOURCES[source])
    if source == "defaults" and pg.info.server_version >= 180000:
        pg.execute("alter table src.t add column thrice numeric generated always as (qty * 3) virtual")
    if source == "checks" and pg.info.server_version >= 180000:
        pg.execute("alter table src.t add constraint loose check (lo < 10) not enforced")
        pg.execute("alter table src.t add constraint hi_set not null hi not valid")
    including = "including defaults including generated" + (" including constraints" if constraints else "")
    pg.execute(f"create {'unlogged ' if unlogged else ''}table stg.by_like (like src.t {including})")
    # in a transaction with another search_path: names in the source's expressions must
    # still mean the same objects, and the caller's search_path must come back
    with pg.transaction():
        pg.execute("set local search_path = other, public")
        create_like(pg, '"src"."t"', sql.Identifier("stg", "ours"), unlogged=unlogged, constraints=constraints)
        assert pg.execute("show search_path").fetchone()[0] == "other, public"
    assert _signature(pg, "stg.ours") == _signature(pg, "stg.by_like")


def test_a_staged_partition_attaches_and_a_row_gets_the_targets_defaults(pg):
    """What the swap does with it: ATTACH (which matches CHECK constraints by name and
    columns by type and collation) and rows that rely on the defaults."""
    pg.execute(SETUP)
    pg.execute("create schema src; create schema stg")
    pg.execute(SOURCES["partitioned"])
    create_like(pg, '"src"."t"', sql.Identifier("stg", "p1"), unlogged=False, constraints=True)
    pg.execute("insert into stg.p1 (order_id, order_date, status) values (1, '2024-05-01', 'placed')")
    pg.execute("alter table stg.p1 add primary key (order_id, order_date)")
    pg.execute("alter table src.t attach partition stg.p1 for values from ('2024-05-01') to ('2024-05-02')")
    assert pg.execute("select order_id, amount, status from src.t").fetchall() == [(1, 0, "placed")]
    with pytest.raises(psycopg.errors.CheckViolation):
        pg.execute("insert into src.t (order_id, order_date, amount, status) values (2, '2024-05-01', -1, 'x')")
