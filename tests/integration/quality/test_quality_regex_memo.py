"""The sql engine's regular expression memo (``memoize_regexes``) and its not-null
counts, held to Great Expectations and to the engine without them, on a real PostgreSQL.

On an analysed table the engine matches a regular expression once per most common value
of the column (``pg_stats``) and the scan looks each row's value up in those values; a
value outside them still runs the expression. The tables here have values the statistics
do not list (checked against ``pg_stats``), nulls, ``char(n)`` padding, a "C" collation,
empty tables with statistics left from their rows, and ``mostly``; the statements that
ran are recorded, so a test knows the memo was used. A column with a validated not-null
constraint has its ``count(c)`` computed as ``count(*)``; a ``not valid`` one (PostgreSQL
18), whose column may hold nulls, must not be trusted.
"""

from __future__ import annotations

import random
import re

import psycopg
import pytest

from safeload.quality.gx_engine import run_gx
from safeload.quality.sql.catalog import read_table_info
from safeload.quality.sql.checks_values import regex_as_like
from safeload.quality.sql.regex_memo import MEMO_MIN_COVERAGE
from safeload.quality.sql_engine import run_sql
from safeload.quality.suite import parse_suite
from tests.integration.quality.test_quality_differential import compare, make_suite, make_table
from tests.integration.quality.test_quality_unique_proof import Recording

COMMON = {"k": ["A", "AB", "ZZZ", "x"], "s": ["paid", "placed", "void", "Paid"], "c": ["Ab", "ab", "AB"],
          "v": ["r1", "r2", "rr"]}
# each once: too rare for pg_stats' most common values, so the scan must match them itself
RARE = {"k": ["QQ", "q", "B1", "ZZ"], "s": ["p9", "pq", "P", "pzz", "p", "Pp"], "c": ["Zz", "zZ", "9a"],
        "v": ["r", "s3", "rrr", "3"]}

MEMO_TABLE = """
create table m (k char(3), s text, c text collate "C", v varchar(6), g int);
alter table m set (autovacuum_enabled = false);
"""

MEMO_SUITE = [
    # char(3): 'A' is stored 'A  ', and both ~ and GX see the padding
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "k", "regex": "^[A-Z]+$"}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "k", "regex": "^[A-Z]+ *$",
                                                               "mostly": 0.5}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "k", "regex": "^A[B ] $"}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "s", "regex": "^p[a-z]+$", "mostly": 0.9}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "s", "regex": "^[pP][a-z0-9]?$"}},
    # "C" collation: [[:upper:]] and ranges as that collation has them
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "c", "regex": "^[[:upper:]][a-z]$"}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "v", "regex": "[0-9]$", "mostly": 0.25}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "s", "value_set": ["paid", "placed"]}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "k"}},
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 0}},
]


def _specs(exps):
    return list(parse_suite({"name": "memo", "expectations": exps}).expectations)


def _fill_memo_table(conn, rng: random.Random, n: int = 3000) -> list[dict]:
    rows = []
    for i in range(n):
        row = {"g": 1 + i % 2}
        for col in COMMON:
            row[col] = None if rng.random() < 0.1 else rng.choice(COMMON[col])
        rows.append(row)
    for col, values in RARE.items():
        for j, value in enumerate(values):
            rows[7 + 31 * j + len(col)][col] = value
    with conn.cursor().copy("copy m (k, s, c, v, g) from stdin") as cp:
        for r in rows:
            cp.write_row([r["k"], r["s"], r["c"], r["v"], r["g"]])
    return rows


def _common_values(conn, table: str, col: str) -> list[str] | None:
    row = conn.execute("select most_common_vals::text::text[] from pg_stats where schemaname = 'public' "
                       "and tablename = %s and attname = %s", (table, col)).fetchone()
    return None if row is None else row[0]


def _run(uri: str, table: str, specs, where: str | None = None, **kw):
    with Recording.connect(uri) as conn:
        res, unsupported = run_sql(conn, schema="public", table=table, specs=specs, where=where, **kw)
        assert unsupported == []
        return res, conn.__dict__.get("seen", [])


def _scans(statements: list[str], table: str) -> list[str]:
    """The aggregate statements that read ``table`` (not the samples of failed checks)."""
    return [s for s in statements if f'from "public"."{table}"' in s and " limit " not in s]


def _memoized(statements: list[str], table: str, col: str) -> bool:
    return any(f'case when "{col}" in (' in s for s in _scans(statements, table))


def test_memo_is_exact_for_values_the_statistics_do_not_list(pg, pg_uri):
    pg.execute(MEMO_TABLE)
    rows = _fill_memo_table(pg, random.Random(7))
    pg.execute("analyze m")
    for col in COMMON:  # the premise: statistics list the common values, not the rare ones
        mcv = _common_values(pg, "m", col)
        assert mcv and {v.rstrip() for v in mcv} == set(COMMON[col]), (col, mcv)
    specs = _specs(MEMO_SUITE)
    memo, seen = _run(pg_uri, "m", specs)
    grouped, seen_grouped = _run(pg_uri, "m", specs, group_by=["k", "s", "c", "v"])
    without, seen_without = _run(pg_uri, "m", specs, regex_memo=False, group_by=())
    for col in COMMON:
        assert _memoized(seen, "m", col), col
        assert not _memoized(seen_without, "m", col)
    assert _memoized(seen_grouped, "m", "k")
    # with the memo, no regex left to save by grouping: one row-by-row scan
    assert len(_scans(seen, "m")) == 1 and "group by" not in _scans(seen, "m")[0]
    assert memo == without and grouped == without  # field for field, samples included
    problems = compare(specs, memo, run_gx(pg_uri, schema="public", table="m", specs=specs))
    assert not problems, "\n".join(problems)
    # counted in Python from the rows written (char(3) padded as stored): the rare values,
    # which only the scan's own regex sees, are among the unexpected ones
    for i, exp in enumerate(MEMO_SUITE[:7]):
        col, regex = exp["kwargs"]["column"], exp["kwargs"]["regex"]
        values = [r[col].ljust(3) if col == "k" else r[col] for r in rows if r[col] is not None]
        py_regex = {"^[[:upper:]][a-z]$": "^[A-Z][a-z]$"}.get(regex, regex)  # ASCII data, "C" collation
        unexpected = [v for v in values if not re.search(py_regex, v)]
        assert memo[i]["result"]["unexpected_count"] == len(unexpected), exp
        assert set(unexpected) & {v.ljust(3) if col == "k" else v for v in RARE[col]}, exp


def test_memo_on_a_partition_and_on_an_empty_table_with_statistics_left(pg, pg_uri):
    pg.execute(MEMO_TABLE)
    _fill_memo_table(pg, random.Random(8))
    pg.execute("analyze m")
    specs = _specs(MEMO_SUITE)
    gx = run_gx(pg_uri, schema="public", table="m", specs=specs, where="g = 2")
    memo, seen = _run(pg_uri, "m", specs, where="g = 2")
    assert _memoized(seen, "m", "s")
    assert memo == _run(pg_uri, "m", specs, where="g = 2", regex_memo=False)[0]
    problems = compare(specs, memo, gx)
    assert not problems, "\n".join(problems)

    pg.execute("delete from m")  # the statistics stay (autovacuum is off for m)
    assert _common_values(pg, "m", "s")
    memo, seen = _run(pg_uri, "m", specs)
    assert _memoized(seen, "m", "s")
    assert memo[0]["success"] and memo[0]["result"]["element_count"] == 0
    problems = compare(specs, memo, run_gx(pg_uri, schema="public", table="m", specs=specs))
    assert not problems, "\n".join(problems)


def test_an_invalid_regex_is_reported_as_without_the_memo(pg, pg_uri):
    pg.execute(MEMO_TABLE)
    _fill_memo_table(pg, random.Random(9))
    pg.execute("analyze m")
    specs = _specs([{"type": "expect_column_values_to_match_regex", "kwargs": {"column": "s", "regex": "^[p"}},
                    *MEMO_SUITE])
    memo, seen = _run(pg_uri, "m", specs)
    assert not _memoized(seen, "m", "s")  # the memo's statement failed: the plan is left as it was
    assert memo[0]["exception"] and "regular expression" in memo[0]["exception"]
    assert all(r["exception"] is None for i, r in memo.items() if i > 0)
    problems = compare(specs, memo, run_gx(pg_uri, schema="public", table="m", specs=specs))
    assert not problems, "\n".join(problems)


def test_no_memo_when_the_common_values_cover_few_rows(pg, pg_uri):
    pg.execute("create table u (s text)")
    # 'dup' in 5% of the rows, every other value unique: the memo would cost more than it saves
    pg.execute("insert into u select case when g % 20 = 0 then 'dup' else 'v' || g end from generate_series(1, 4000) g")
    pg.execute("analyze u")
    assert _common_values(pg, "u", "s") == ["dup"] and 0.05 < MEMO_MIN_COVERAGE
    specs = _specs([{"type": "expect_column_values_to_match_regex", "kwargs": {"column": "s", "regex": "^v[0-9]+$",
                                                                               "mostly": 0.9}}])
    res, seen = _run(pg_uri, "u", specs)
    assert not _memoized(seen, "u", "s")
    assert res[0]["result"]["unexpected_count"] == 200


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed{s}") for s in range(300, 304)])
def test_random_analysed_tables_agree_with_gx(pg, pg_uri, seed):
    """The differential tests' random tables and suites, analysed: the memo in every way
    the engine runs (row by row, grouped), against GX and against the engine without it."""
    rng = random.Random(seed)
    rows = make_table(pg, rng, "r", n_rows=rng.choice([0, 40, 120, 300]))
    pg.execute("analyze r")
    exps = make_suite(rng, rows)
    specs = _specs(exps)
    gx = run_gx(pg_uri, schema="public", table="r", specs=specs)
    without, _ = _run(pg_uri, "r", specs, regex_memo=False, group_by=())
    memo_used = False
    for way, kw in {"rows": {"group_by": ()}, "grouped": {"group_by": ["s", "c", "k"]}, "auto": {}}.items():
        res, seen = _run(pg_uri, "r", specs, **kw)
        memo_used |= any(_memoized(seen, "r", c) for c in ("s", "c", "k"))
        problems = compare(specs, res, gx) + compare(specs, res, without)
        assert not problems, f"({way}) " + "\n".join(problems)
    # a real regex (not run as LIKE) on a column pg_stats lists common values of: memoized
    memoizable = [e for e in exps if e["type"] == "expect_column_values_to_match_regex"
                  and e["kwargs"]["column"] in ("s", "c", "k") and regex_as_like(e["kwargs"]["regex"]) is None
                  and _common_values(pg, "r", e["kwargs"]["column"])]
    assert memo_used == bool(memoizable), memoizable


NOT_NULL_TABLE = """
create table nn (id int primary key, a int not null, b int, d date not null, t text);
insert into nn select g, g % 5, case when g % 4 = 0 then null else g end, date '2024-01-01', 'x'
from generate_series(1, 50) g;
-- PostgreSQL 18: a constraint that does not hold yet, on a column with nulls
alter table nn add constraint b_not_null not null b not valid;
"""


def test_validated_not_null_constraints_count_rows_and_not_valid_ones_do_not(pg, pg_uri):
    pg.execute(NOT_NULL_TABLE)
    with psycopg.connect(pg_uri) as conn:
        info = read_table_info(conn, "public", "nn")
    assert [c.name for c in info.columns if c.not_null] == ["id", "a", "d"]
    specs = _specs([
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "b"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "b", "mostly": 0.7}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "a", "min_value": 1}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "b", "max_value": 40}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "a", "mostly": 0.1}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["a", "t"]}},
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "a", "min_value": 0}},
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "d", "min_value": "2024-01-01"}},
    ])
    res, seen = _run(pg_uri, "nn", specs)
    scan = _scans(seen, "nn")[0]
    assert 'count("a")' not in scan and 'count("id")' not in scan and 'count("b")' in scan
    grouped, _ = _run(pg_uri, "nn", specs, group_by=["a"])
    assert grouped == res
    assert not res[2]["success"] and res[2]["result"]["unexpected_count"] == 12  # the not valid constraint's nulls
    problems = compare(specs, res, run_gx(pg_uri, schema="public", table="nn", specs=specs))
    assert not problems, "\n".join(problems)
