"""Fuzzing names: schemas, tables, columns, CSV headers and partition values with quotes,
semicolons, unicode, reserved words, ``$``, leading digits, and over 63 bytes.

For each drawn set of names the test creates the target the way a user would (exactly
named, through ``sql.Identifier``) and loads one partition. The load either succeeds and
the partition holds what the CSV said, or it is refused with an error that names the
offending name or value and the rule. Either way the catalogue (pg_class and
pg_namespace) afterwards holds no object nobody asked for: only the target, and the
partition of the value when the target is natively partitioned.
"""

from __future__ import annotations

import csv
import re

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from reliability.figures import FULL, record, trials
from safeload.errors import SafeloadError
from safeload.identifiers import IdentifierError, validate_identifier
from safeload.loads.loader import PartitionLoader
from safeload.metadata import ensure_metadata

N = trials(fast=40, full=800)
FUZZ = settings(max_examples=N, deadline=None, derandomize=not FULL, suppress_health_check=list(HealthCheck))

TRICKY = ["orders", "Orders", "select", "order", "user", "table", "group", "limit", "from", "a$b", "_x",
          'a"b', "a'b", "x; drop table y", "x;--", "café", "日本", "a b", "1abc", "a.b", "x" * 63, "y" * 64,
          "é" * 32, "tab\tname", "", "null", "safeload", "pg_x"]
VALID = ["orders", "Orders", "select", "order", "user", "table", "a$b", "_x", "x" * 63, "Z9"]
idents = st.one_of(st.sampled_from(VALID), st.sampled_from(VALID), st.sampled_from(TRICKY), st.text(st.characters(codec="utf-8", exclude_categories=("Cs",),
                                                                   exclude_characters="\x00"), min_size=1, max_size=70))
values = st.one_of(
    st.sampled_from(["2024-05-02", "a'b", "x'; drop table orders; --", "日本", "\\", "$$", "", " ", "null",
                     "2024-13-45", "é" * 40, "v" * 100]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30),
)


def _valid(name: str) -> bool:
    try:
        validate_identifier(name)
        return True
    except IdentifierError:
        return False


def snapshot(pg) -> set[tuple]:
    return set(pg.execute("select n.nspname, c.relname, c.relkind from pg_class c join pg_namespace n "
                          "on n.oid = c.relnamespace where n.nspname not like 'pg\\_%' "
                          "and n.nspname <> 'information_schema'").fetchall()
               + pg.execute("select nspname, '', 'n' from pg_namespace").fetchall())


STATS = {"examples": 0, "loaded": 0, "refused": 0}


@pytest.fixture
def db(pg):
    ensure_metadata(pg)
    return pg


@FUZZ
@given(schema=st.one_of(st.none(), idents), table=idents, part_col=idents, data_col=idents,
       layout=st.sampled_from(["plain", "list", "range"]), value=values,
       extra_header=st.one_of(st.none(), idents), tmp=st.just(None))
def test_names_load_or_are_refused_and_leave_no_stray_object(db, pg_uri, tmp_path, schema, table, part_col,
                                                             data_col, layout, value, extra_header, tmp):
    pg = db
    STATS["examples"] += 1
    pg.execute("select 1")
    # start from an empty database plus safeload's own schemas
    for (nsp,) in pg.execute("select nspname from pg_namespace where nspname not like 'pg\\_%' and nspname not in "
                             "('information_schema', 'safeload', 'safeload_staging')").fetchall():
        pg.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(nsp)))
    pg.execute("create schema public")
    # a target an earlier example created in safeload's own schema (the loader refuses it)
    for (t,) in pg.execute("select relname from pg_class where relnamespace = 'safeload'::regnamespace "
                           "and relkind in ('r', 'p') and relname not in ('staging', 'load_history', "
                           "'quarantine', 'quality_results', 'contract_checks')").fetchall():
        pg.execute(sql.SQL("drop table {} cascade").format(sql.Identifier("safeload", t)))
    # staging that an earlier example's failed publish kept for its retry
    for (t,) in pg.execute("select tablename from pg_tables where schemaname = 'safeload_staging'").fetchall():
        pg.execute(sql.SQL("drop table {}").format(sql.Identifier("safeload_staging", t)))
    pg.execute("delete from safeload.staging")
    if not _valid(data_col) or data_col == part_col:
        data_col = "v"  # odd column names are fuzzed through part_col and extra_header
        if part_col == "v":
            data_col = "w"
    if layout == "range":
        value = value if value.startswith("2024") else "2024-05-02"
    ptype = "date" if layout == "range" else "text"
    sch = schema or "public"
    created = True
    try:
        if schema:
            pg.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        pg.execute(sql.SQL("create table {} ({} {} not null, {} bigint){}").format(
            sql.Identifier(sch, table), sql.Identifier(part_col), sql.SQL(ptype), sql.Identifier(data_col),
            sql.SQL({"plain": "", "list": " partition by list ({})", "range": " partition by range ({})"}[layout])
            .format(sql.Identifier(part_col))))
    except psycopg.Error:
        created = False  # PostgreSQL itself refuses the name (empty, ...): the loader must still refuse cleanly
    before = snapshot(pg)
    header = [part_col, data_col] + ([extra_header] if extra_header is not None else [])
    src = tmp_path / "names.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for i in range(3):
            w.writerow([value, i] + (["extra"] if extra_header is not None else []))
    target = f"{schema}.{table}" if schema else table
    ld = PartitionLoader(lambda: psycopg.connect(pg_uri), table=target, partition_column=part_col,
                         partition_value=value, run_key="names", max_bad_rows=0) if _valid(part_col) else None
    names_ok = all(_valid(n) for n in (sch, table, part_col)) and created
    try:
        if ld is None:
            PartitionLoader(lambda: psycopg.connect(pg_uri), table=target, partition_column=part_col,
                            partition_value=value, run_key="names")
            pytest.fail(f"partition column {part_col!r} was accepted")
        ld.run(str(src))
        outcome = "loaded"
    except SafeloadError as e:
        msg = str(e)
        # the message names what was wrong: the name, the value or the rule
        assert any(s and repr(s)[1:-1] in msg or s in msg for s in (table, part_col, sch, value, extra_header or "x")) \
            or re.search(r"does not exist|empty|header|partition|malformed|row", msg), msg
        outcome = "refused"
    if outcome == "loaded":
        assert names_ok, f"loaded into {target!r} although a name is invalid"
        got = pg.execute(sql.SQL("select {}::text, {} from {} order by 2").format(
            sql.Identifier(part_col), sql.Identifier(data_col), sql.Identifier(sch, table))).fetchall()
        want_value = value if ptype == "text" else pg.execute("select %s::date::text", (value,)).fetchone()[0]
        assert got == [(want_value, 0), (want_value, 1), (want_value, 2)]
    after = snapshot(pg)
    new = after - before
    if layout != "plain" and outcome == "loaded":
        # the partition of the value (and its TOAST table), in the target's schema
        parts = {r for r in new if r[0] == sch and r[2] in ("r", "t")}
        new -= parts
        assert len([r for r in parts if r[2] == "r"]) <= 1, parts
    new = {r for r in new if r[0] != "pg_toast"}
    assert not new, f"objects nobody asked for: {new}"
    assert not pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone()[0]
    STATS[outcome] += 1


def test_record_names_figures():
    if not STATS["examples"]:
        pytest.skip("the fuzz test above did not run")
    assert STATS["loaded"] and STATS["refused"], STATS
    record("fuzz: table, column, partition names", trials=STATS["examples"], faults=STATS["refused"],
           held=f"{STATS['loaded']} loaded exactly, {STATS['refused']} refused naming the name or value; "
                "no stray object in pg_class/pg_namespace, no staging left")
