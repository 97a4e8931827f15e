"""Staging is created from the catalogue (``create_like``) instead of ``CREATE TABLE ...
(LIKE target INCLUDING DEFAULTS INCLUDING GENERATED ...)``, which would keep a lock on the
target for the stage's whole COPY.
PostgreSQL's own ``LIKE`` is the specification: for each source table below, the table
``create_like`` makes and the one ``LIKE`` makes must be the same in the catalogue, column
by column and constraint by constraint. Staging is made without autovacuum, which a
swapped-in partition gets back.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from safeload.errors import LoadRefusedError
from safeload.loads.loader import PartitionLoader
from safeload.loads.sql import create_like

from tests.integration.loads.orders import DAY, NATIVE, PLAIN, write_csv

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


def test_create_like_that_fails_raises_its_own_error(pg):
    """``create_like`` restores ``search_path`` after a failed CREATE without a statement
    of its own in the aborted transaction: the caller (and ``explain_privileges``) sees
    the real error, not InFailedSqlTransaction ('current transaction is aborted')."""
    pg.execute("create schema src; create schema stg; create table src.t (a int); create table stg.taken (b int)")
    with pytest.raises(psycopg.errors.DuplicateTable):
        with pg.transaction():
            create_like(pg, '"src"."t"', sql.Identifier("stg", "taken"), unlogged=True, constraints=False)


@pytest.fixture
def loader_role(pg, pg_uri):
    """A non-superuser loader with docs/security.md's grants (owner membership included)."""
    doc = (Path(__file__).resolve().parents[3] / "docs" / "security.md").read_text()
    blocks = dict(re.findall(r"```sql\n-- safeload-grants: ([\w-]+)\n(.*?)```", doc, flags=re.S))
    suffix = uuid.uuid4().hex[:8]
    role, owner = f"loader_{suffix}", f"owner_{suffix}"
    db = pg_uri.rsplit("/", 1)[1]
    pg.execute(f"create role {owner} nologin")
    try:
        yield {"role": role, "owner": owner, "uri": pg_uri.replace("postgres@", f"{role}@", 1),
               "grant": lambda: [pg.execute(re.sub(r"\bwarehouse\b", f'"{db}"', blocks[b].replace(
                   "safeload_loader", role).replace("orders_owner", owner)))
                   for b in ("login", "metadata-by-loader", "target-delete-insert", "target-owner")]}
    finally:
        for r in (role, owner):
            if pg.execute("select 1 from pg_roles where rolname = %s", (r,)).fetchone():
                pg.execute(f"drop owned by {r} cascade")
                pg.execute(f"drop role {r}")


@pytest.mark.parametrize("ddl", [PLAIN, NATIVE], ids=["plain", "native"])
def test_a_target_typed_in_a_schema_the_loader_cannot_use_still_stages(pg, tmp_path, loader_role, ddl):
    """The target's amount is a domain of a schema the loader has no USAGE on (a DBA's
    ``types`` schema). ``CREATE TABLE ... (LIKE target)`` copies the type by OID, while
    ``create_like`` prints ``types.money2``, which PostgreSQL refuses to that role. The
    load succeeds (staging then made with LIKE, and a warning), or a PrivilegeError names
    the grant (USAGE on schema types)."""
    pg.execute("create schema types; create domain types.money2 as numeric(12,2) check (value >= 0)")
    pg.execute(ddl.replace("amount numeric(12,2)", "amount types.money2"))
    pg.execute(f"alter table public.orders owner to {loader_role['owner']}")
    loader_role["grant"]()
    loader = PartitionLoader(lambda: psycopg.connect(loader_role["uri"]), table="public.orders",
                             partition_column="order_date", partition_value=DAY, run_key="r")
    try:
        r = loader.run(write_csv(tmp_path / "a.csv", DAY, 3))
    except LoadRefusedError as e:
        assert "usage on schema types" in str(e).lower(), e
        return
    assert r.rows == 3


@pytest.mark.parametrize("ddl", [PLAIN, NATIVE], ids=["plain", "native"])
def test_staging_is_not_autovacuumed_and_a_swapped_in_partition_is(pg, pg_uri, tmp_path, ddl):
    """A worker vacuuming staging would hold a lock the publish's DROP or ATTACH waits for:
    staging is made without autovacuum, and a partition swapped in from it gets it back."""
    pg.execute(ddl)
    ld = PartitionLoader(lambda: psycopg.connect(pg_uri), table="public.orders", partition_column="order_date",
                         partition_value=DAY, run_key="vac", parallel=1)
    staged = ld.stage(write_csv(tmp_path / "a.csv", DAY, 100))
    options = "select reloptions from pg_class where oid = %s::regclass"
    assert pg.execute(options, (f"safeload_staging.{staged.staging_table}",)).fetchone() == (
        ["autovacuum_enabled=false"],)
    r = ld.publish(staged)
    assert r.published_by == ("swap" if ddl == NATIVE else "delete_insert")
    if ddl == NATIVE:
        part = pg.execute("select inhrelid::regclass::text from pg_inherits "
                          "where inhparent = 'public.orders'::regclass").fetchone()[0]
        assert pg.execute(options, (part,)).fetchone() == (None,)
