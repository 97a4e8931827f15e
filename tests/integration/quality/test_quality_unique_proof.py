"""Uniqueness proven by a unique index whose other key columns are constant over the
checked rows (``TableInfo.unique_given_constant``): a natively partitioned table's primary
key ``(id, day)`` proves ``id`` unique on one day, with no distinct count.

Each case runs the sql engine three ways (row by row; grouped, the proof's ``min = max``
computed over groups; with a second connection offered), the engine's previous path (the
proof switched off: distinct count, then the exact duplicate count) and GX itself, on a
real PostgreSQL. The proof's results must be the previous path's, field for field
(samples of failed checks included), and GX's (success and counts, as the differential
tests compare them); the statements that ran are recorded and counted.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from safeload.quality.gx_engine import run_gx
from safeload.quality.sql.catalog import TableInfo, read_table_info
from safeload.quality.sql.compile import compile_plan
from safeload.quality.sql_engine import run_sql
from safeload.quality.suite import parse_suite

from tests.integration.quality.test_quality_differential import compare
from tests.integration.quality.test_quality_gate_sql import _wait_for_scans as _seq_scans

PARTITIONED = """
create table pt (id int, day date, v text, amount numeric(8,2), primary key (id, day)) partition by range (day);
create table pt_0101 partition of pt for values from ('2024-01-01') to ('2024-01-02');
create table pt_0102 partition of pt for values from ('2024-01-02') to ('2024-01-03');
create table pt_0103 partition of pt for values from ('2024-01-03') to ('2024-01-04');
-- day 1: ids 1-40; day 2: ids 1-30 again (duplicates across days only); day 3: empty
insert into pt select g, date '2024-01-01', (array['a', 'b', null])[1 + g % 3], g / 4.0
from generate_series(1, 40) g;
insert into pt select g, date '2024-01-02', (array['a', 'b', null])[1 + g % 3], g / 4.0
from generate_series(1, 30) g;
"""

UNIQUE_SUITE = [
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id", "mostly": 0.5}},
    {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["id", "v"]}},
    {"type": "expect_compound_columns_to_be_unique",
     "kwargs": {"column_list": ["v", "id"], "ignore_row_if": "any_value_is_missing"}},
    {"type": "expect_compound_columns_to_be_unique",
     "kwargs": {"column_list": ["id", "v"], "ignore_row_if": "never", "mostly": 0.9}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0}},
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 0}},
]


class Recording(psycopg.Connection):
    """A real connection that keeps the text of every statement it runs."""

    def execute(self, query, params=None, **kwargs):
        self.__dict__.setdefault("seen", []).append(query if isinstance(query, str) else query.as_string(self))
        return super().execute(query, params, **kwargs)


def _specs(exps):
    return list(parse_suite({"name": "proof", "expectations": exps}).expectations)


def _no_second_connection():
    pytest.fail("a second connection was opened: the distinct counts were not proven away")


def run_ways(uri: str, table: str, exps: list[dict], where: str | None, group_by: list[str],
             monkeypatch, *, proof: bool = True):
    """The sql engine's results in each way, the statements of the row-by-row way, the
    previous path's results and GX's."""
    specs = _specs(exps)
    ways = {"rows": {"group_by": ()}, "grouped": {"group_by": group_by},
            "offered a connection": {"group_by": (),
                                     "connect": _no_second_connection if proof else (lambda: psycopg.connect(uri))}}
    results, statements = {}, {}
    for way, kw in ways.items():
        with Recording.connect(uri) as conn:
            results[way], unsupported = run_sql(conn, schema="public", table=table, specs=specs, where=where, **kw)
            statements[way] = conn.__dict__.get("seen", [])
        assert unsupported == []
    with monkeypatch.context() as m:
        m.setattr(TableInfo, "unique_given_constant", lambda self, cols: None)
        with psycopg.connect(uri) as conn:
            previous, _ = run_sql(conn, schema="public", table=table, specs=specs, where=where)
    return specs, results, statements, previous, run_gx(uri, schema="public", table=table, specs=specs, where=where)


def assert_same(specs, results, previous, gx):
    for way, res in results.items():
        assert res == previous, way  # field for field, samples of failed checks included
        problems = compare(specs, res, gx)
        assert not problems, f"({way}) " + "\n".join(problems)


def _table_scans(statements: list[str], table: str) -> list[str]:
    return [s for s in statements if f'from "public"."{table}"' in s]


def test_a_partitions_primary_key_proves_uniqueness_of_one_day(pg, pg_uri, monkeypatch):
    pg.execute(PARTITIONED)
    with psycopg.connect(pg_uri) as conn:
        info = read_table_info(conn, "public", "pt")
    assert info.unique_given_constant(["id"]) == ("day",)
    assert info.unique_given_constant(["v", "id"]) == ("day",)
    plan = compile_plan(_specs(UNIQUE_SUITE), info, "day = '2024-01-01'")
    assert plan.distinct is None and plan.queries == [plan.scan]

    where = "day = '2024-01-01'"
    # counted by the server too, as the one-scan test of the gate does: one read of the
    # partition for the whole suite (the previous path reads it twice), none of the others
    before = _seq_scans(pg_uri, "pt_0101", 0)
    with psycopg.connect(pg_uri) as conn:
        run_sql(conn, schema="public", table="pt", specs=_specs(UNIQUE_SUITE), where=where,
                connect=_no_second_connection)
    time.sleep(0.5)
    assert _seq_scans(pg_uri, "pt_0101", before + 1) - before == 1
    assert _seq_scans(pg_uri, "pt_0102", 0) == 0

    specs, results, statements, previous, gx = run_ways(pg_uri, "pt", UNIQUE_SUITE, where, ["v"], monkeypatch)
    assert_same(specs, results, previous, gx)
    rows = results["rows"]
    assert all(r["success"] for r in rows.values())
    assert rows[0]["result"]["element_count"] == 40 and rows[0]["result"]["unexpected_count"] == 0
    for way, seen in statements.items():
        scans = _table_scans(seen, "pt")
        assert len(scans) == 1, (way, scans)  # the scan, and nothing else: no distinct, no group by
        assert "distinct" not in scans[0]
    assert 'min("day") = max("day")' in _table_scans(statements["rows"], "pt")[0]


def test_on_the_whole_table_the_proof_fails_and_the_duplicates_are_counted_exactly(pg, pg_uri, monkeypatch):
    """A plain table with a unique (id, day) index, rows of several days sharing ids: day
    is not constant, so the duplicated rows are counted by the follow-up group by, and the
    failed checks report the previous path's samples."""
    pg.execute("""
        create table multi (id int, day date, v text, amount numeric(8,2));
        create unique index on multi (id, day);
        insert into multi select g % 25, date '2024-01-01' + g % 3, (array['a', 'b'])[1 + g % 2], g
        from generate_series(1, 60) g;
        insert into multi values (null, '2024-01-01', 'a', 1), (null, '2024-01-01', 'a', 2);
    """)
    with psycopg.connect(pg_uri) as conn:
        assert read_table_info(conn, "public", "multi").unique_given_constant(["id"]) == ("day",)
    specs, results, statements, previous, gx = run_ways(pg_uri, "multi", UNIQUE_SUITE, None, ["day"], monkeypatch)
    assert_same(specs, results, previous, gx)
    rows = results["rows"]
    assert rows[0]["success"] is False and rows[0]["result"]["unexpected_count"] == gx[0]["result"][
        "unexpected_count"] == 60
    assert rows[0]["result"]["partial_unexpected_list"]
    assert rows[2]["success"] is False
    for seen in statements.values():
        assert not any("count(distinct" in s for s in seen)
        assert any("having count(*) > 1" in s for s in _table_scans(seen, "multi"))


def test_nulls_in_the_constant_column_fail_the_proof(pg, pg_uri, monkeypatch):
    """A unique (id, tag) constraint lets (1, NULL) appear twice: tag is constant where it
    has a value, but its nulls make the proof fail, and the duplicates are counted."""
    pg.execute("""
        create table tagged (id int, tag text, w text, unique (id, tag));
        insert into tagged select g, 'x', 'z' from generate_series(1, 20) g;
        insert into tagged values (1, null, 'z'), (21, null, 'z'), (21, null, 'z');
    """)
    exps = UNIQUE_SUITE[:2] + [{"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["id", "w"]}}]
    specs, results, statements, previous, gx = run_ways(pg_uri, "tagged", exps, None, ["tag"], monkeypatch)
    assert_same(specs, results, previous, gx)
    rows = results["rows"]
    assert rows[0]["success"] is False and rows[0]["result"]["unexpected_count"] == 4  # 1 twice, 21 twice
    assert rows[0]["result"]["partial_unexpected_list"] == previous[0]["result"]["partial_unexpected_list"]
    assert rows[1]["success"] is True  # 4 of 23 rows: within mostly 0.5
    assert not any("count(distinct" in s for s in statements["rows"])


def test_an_empty_partition(pg, pg_uri, monkeypatch):
    pg.execute(PARTITIONED)
    where = "day = '2024-01-03'"
    specs, results, statements, previous, gx = run_ways(pg_uri, "pt", UNIQUE_SUITE, where, ["v"], monkeypatch)
    assert_same(specs, results, previous, gx)
    assert results["rows"][0]["result"]["element_count"] == 0 and results["rows"][0]["success"]
    for seen in statements.values():
        assert len(_table_scans(seen, "pt")) == 1


def test_compound_uniqueness_with_a_three_column_key(pg, pg_uri, monkeypatch):
    pg.execute("""
        create table abd (a int, b text, day date, n int, primary key (a, b, day)) partition by list (day);
        create table abd_1 partition of abd for values in ('2024-01-01');
        create table abd_2 partition of abd for values in ('2024-01-02');
        -- the same 40 (a, b) pairs on each day
        insert into abd select g % 10, 'k' || (g / 10), d, g
        from generate_series(0, 39) g, (values (date '2024-01-01'), (date '2024-01-02')) as days(d);
    """)
    exps = [{"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["a", "b"]}},
            {"type": "expect_compound_columns_to_be_unique",
             "kwargs": {"column_list": ["b", "a"], "ignore_row_if": "never", "mostly": 0.2}},
            {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "a"}}]  # (a) alone: not provable
    with psycopg.connect(pg_uri) as conn:
        info = read_table_info(conn, "public", "abd")
    assert info.unique_given_constant(["a", "b"]) == ("day",)
    assert info.unique_given_constant(["a"]) == ("b", "day")

    specs, results, statements, previous, gx = run_ways(pg_uri, "abd", exps[:2], "day = '2024-01-02'", ["b"],
                                                        monkeypatch)
    assert_same(specs, results, previous, gx)
    assert results["rows"][0]["success"] and results["rows"][0]["result"]["element_count"] == 40
    for seen in statements.values():
        assert len(_table_scans(seen, "abd")) == 1

    # both days: (a, b) repeats across days, the proof fails, the count is GX's
    specs, results, statements, previous, gx = run_ways(pg_uri, "abd", exps, None, ["b"], monkeypatch)
    assert_same(specs, results, previous, gx)
    rows = results["rows"]
    assert rows[0]["success"] is False and rows[0]["result"]["unexpected_count"] == 80
    assert rows[2]["success"] is False  # a: b varies, so the two-column proof fails too


@pytest.mark.parametrize(
    ("ddl", "why"),
    [
        pytest.param("flag boolean, unique (id, flag)", "bool has no min/max", id="bool"),
        pytest.param("flag text, unique (id, flag) deferrable initially deferred",
                     "a deferred constraint allows duplicates inside a transaction", id="deferrable"),
        pytest.param("flag text); create unique index on t (id, flag collate \"C\"",
                     "another collation than the column's", id="collation"),
        pytest.param("flag text); create unique index on t (id, flag text_pattern_ops",
                     "a non-default operator class", id="opclass"),
        pytest.param("flag jsonb, unique (id, flag)", "not a type the proof compares", id="jsonb"),
    ],
)
def test_indexes_the_proof_does_not_use(pg, pg_uri, monkeypatch, ddl, why):
    value = "true" if ddl.startswith("flag boolean") else ("'{}'" if "jsonb" in ddl else "'x'")
    pg.execute(f"create table t (id int, {ddl});"
               f"insert into t select g % 30, {value} from generate_series(1, 30) g")
    with psycopg.connect(pg_uri) as conn:
        info = read_table_info(conn, "public", "t")
    assert frozenset({"id", "flag"}) in info.unique_sets
    assert info.unique_given_constant(["id"]) is None, why
    specs, results, statements, previous, gx = run_ways(pg_uri, "t", UNIQUE_SUITE[:2], None, [], monkeypatch,
                                                        proof=False)
    assert_same(specs, results, previous, gx)
    assert results["rows"][0]["success"]
    assert any("count(distinct" in s for s in statements["rows"])


def test_an_infinite_date_is_a_constant_like_any_other(pg, pg_uri, monkeypatch):
    """Current rows of a history table keyed (id, valid_to), checked where valid_to =
    'infinity': the constant is compared by PostgreSQL (psycopg cannot load that date)."""
    pg.execute("""
        create table hist (id int, valid_to date, primary key (id, valid_to));
        insert into hist select g, 'infinity' from generate_series(1, 20) g;
        insert into hist select g, '2024-01-01' from generate_series(1, 10) g;
    """)
    specs = _specs(UNIQUE_SUITE[:1])
    with Recording.connect(pg_uri) as conn:
        res, _ = run_sql(conn, schema="public", table="hist", specs=specs, where="valid_to = 'infinity'",
                         connect=_no_second_connection)
        assert len(_table_scans(conn.seen, "hist")) == 1
    assert res[0]["success"] and res[0]["result"]["element_count"] == 20
    assert res[0]["result"]["unexpected_count"] == 0


def sql_and_gx(uri, table, exps):
    """``exps`` run by the sql engine and by GX on ``public.table``: (specs, sql results, GX results)."""
    specs = list(parse_suite({"name": "proof", "expectations": exps}).expectations)
    with psycopg.connect(uri) as conn:
        res, unsupported = run_sql(conn, schema="public", table=table, specs=specs)
    assert unsupported == []
    return specs, res, run_gx(uri, schema="public", table=table, specs=specs)


def test_a_parents_unique_index_does_not_prove_rows_of_its_inheritance_children_unique(pg, pg_uri):
    """A unique index covers its own table only: with (non-partition) inheritance children,
    the scan of the parent reads their rows too, and GX finds the duplicates across them.
    The parent's primary key proves nothing there, outright or with 'day' constant."""
    pg.execute("""
        create table legacy (id int, day date, v text, primary key (id, day));
        create table legacy_child () inherits (legacy);
        create table solo (id int primary key, v text);
        create table solo_child () inherits (solo);
        insert into legacy select g, date '2024-01-01', 'a' from generate_series(1, 10) g;
        insert into legacy_child select g, date '2024-01-01', 'b' from generate_series(1, 4) g;
        insert into solo select g, 'a' from generate_series(1, 10) g;
        insert into solo_child select g, 'b' from generate_series(1, 3) g;
    """)
    for table, dups in (("legacy", 8), ("solo", 6)):
        exps = [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
                {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["id", "day"]}}
                if table == "legacy" else
                {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["id", "v"]}}]
        specs, res, gx = sql_and_gx(pg_uri, table, exps)
        assert gx[0]["result"]["unexpected_count"] == dups  # GX sees the children's rows
        problems = compare(specs, res, gx)
        assert not problems, "\n".join(problems)
