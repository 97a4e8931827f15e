"""Differential tests: the ``sql`` engine against Great Expectations itself.

For seeded random tables (nulls, duplicates, empty tables, all-null columns, values on
the bounds) and random suites of every type the ``sql`` engine supports (strict and
inclusive bounds, one-sided bounds, ``mostly``, value sets with NULL or empty, ...), both
engines must agree on success and on the observed values GX reports: ``observed_value``
of aggregate checks, and ``element_count``, ``unexpected_count``, ``unexpected_percent``
and ``missing_count`` of map checks. Checks that GX refuses (between on a text column,
regex on an integer column, a missing column) must fail in both, with an error.

GX is slow (a validation takes a second or more), so each random table gets one suite
of many expectations, validated once by GX and by the sql engine in each of its ways of
running (row by row; grouped by low-cardinality columns; distinct counts on a second
connection), each held to GX's results.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from safeload.quality.gx_engine import run_gx
from safeload.quality.sql.catalog import read_table_info
from safeload.quality.sql.compile import SUPPORTED, compile_plan
from safeload.quality.sql_engine import run_sql
from safeload.quality.suite import parse_suite

COLUMNS = {  # name -> type
    "i": "integer", "n": "numeric(8,2)", "f": "double precision", "s": "text", "d": "date",
    "b": "smallint", "c": "varchar(4)", "g": "integer", "k": "char(3)",
}
# LIKE's wildcards and a regex metacharacter among the words: a regex rewritten as LIKE
# must escape them
WORDS = ["A", "B", "AB", "x", "yy", "Q1", "", "ZZZ", "a_b", "5%", "a.b"]


def _value(rng: random.Random, col: str, null_rate: float):
    if rng.random() < null_rate:
        return None
    if col == "i":
        return rng.randint(-5, 5)
    if col == "n":
        return Decimal(rng.randint(-300, 300)) / 4
    if col == "f":
        return rng.choice([0.5, 1.25, -2.0, 3.0, 10.0, rng.uniform(-10, 10)])
    if col == "s":
        return rng.choice(WORDS)
    if col == "d":
        return dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 9))
    if col == "b":
        return rng.randint(0, 2)
    if col == "c":
        return rng.choice(["p", "q", "r"])
    if col == "k":  # char(3): stored padded ('A  '), and both ~ and like see the padding
        return rng.choice(["A", "AB", "x", "Q1", "ZZZ", "a_b"])
    return rng.randint(1, 2)  # g: the partition column


def make_table(conn: psycopg.Connection, rng: random.Random, name: str, *, n_rows: int | None = None,
               all_null: bool = False) -> list[dict]:
    """Create and fill a random table; return its rows. Nulls per column: none, some,
    many or all (``all_null``: every column but the partition column)."""
    n_rows = rng.choice([0, 1, 2, 3, 8, 20, 40, 60]) if n_rows is None else n_rows
    null_rates = {c: 1.0 if all_null else rng.choice([0.0, 0.0, 0.1, 0.3, 1.0]) for c in COLUMNS}
    null_rates["g"] = 0.0
    rows = [{c: _value(rng, c, null_rates[c]) for c in COLUMNS} for _ in range(n_rows)]
    conn.execute(sql.SQL("create table {} ({})").format(
        sql.Identifier(name), sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
                                                 for c, t in COLUMNS.items())))
    if rows:
        with conn.cursor().copy(sql.SQL("copy {} ({}) from stdin").format(
                sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))) as cp:
            for r in rows:
                cp.write_row([r[c] for c in COLUMNS])
    return rows


def _bound(rng: random.Random, rows: list[dict], col: str):
    present = [r[col] for r in rows if r[col] is not None]
    if present and rng.random() < 0.8:
        v = rng.choice(present)  # on a value: strict vs inclusive matters
    else:
        v = {"i": rng.randint(-6, 6), "n": rng.randint(-80, 80) / 2, "f": rng.uniform(-10, 10),
             "d": dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(-1, 10)), "b": rng.randint(-1, 3)}[col]
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    return v


def _bounds(rng: random.Random, rows: list[dict], col: str) -> dict:
    lo, hi = _bound(rng, rows, col), _bound(rng, rows, col)
    if lo > hi:
        lo, hi = hi, lo
    kw = {}
    shape = rng.choice(["both", "both", "min", "max", "none"])
    if shape in ("both", "min"):
        kw["min_value"] = lo
    if shape in ("both", "max"):
        kw["max_value"] = hi
    for flag in ("strict_min", "strict_max"):
        if rng.random() < 0.4:
            kw[flag] = rng.random() < 0.6
    return kw


def _mostly(rng: random.Random) -> dict:
    r = rng.random()
    if r < 0.5:
        return {}
    return {"mostly": rng.choice([1.0, 0.9, 0.75, 0.5, 0.0, round(rng.random(), 3)])}


def make_suite(rng: random.Random, rows: list[dict]) -> list[dict]:  # noqa: C901
    exps: list[dict] = []

    def add(etype, **kw):
        exps.append({"type": etype, "kwargs": kw})

    for col in rng.sample(list(COLUMNS), 4):
        add("expect_column_values_to_not_be_null", column=col, **_mostly(rng))
    for col in rng.sample(["i", "n", "s", "d", "b", "c"], 3):
        add("expect_column_values_to_be_unique", column=col, **_mostly(rng))
    for col in rng.sample(["i", "n", "f", "d", "b"], 3):
        kw = _bounds(rng, rows, col)
        if "min_value" not in kw and "max_value" not in kw:
            kw["min_value"] = _bound(rng, rows, col)
        add("expect_column_values_to_be_between", column=col, **kw, **_mostly(rng))
    for etype in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        col = rng.choice(["s", "i", "c", "k"])
        universe = {"s": WORDS, "i": list(range(-5, 6)), "c": ["p", "q", "r", "zz"], "k": ["A", "AB", "x", "Q1"]}[col]
        vs = rng.sample(universe, rng.randint(0, min(4, len(universe))))
        if rng.random() < 0.25:
            vs.append(None)
        add(etype, column=col, value_set=vs, **_mostly(rng))
    # literal patterns (run as LIKE) and real ones (run as ~, per row or per group)
    for regex in rng.sample(["^A", "B$", "^[A-Z]+$", "x", "^$", "^[A-Z][0-9]?$", "Z{2,}", "_", "%$", r"^a\.b$",
                             "a.b", "A $", "^AB $"], 3):
        add("expect_column_values_to_match_regex", column=rng.choice(["s", "c", "k"]), regex=regex, **_mostly(rng))
    for etype, cols in (("expect_column_min_to_be_between", ["i", "n", "f", "d"]),
                        ("expect_column_max_to_be_between", ["i", "n", "f", "d"]),
                        ("expect_column_mean_to_be_between", ["i", "n", "f", "b"]),
                        ("expect_column_sum_to_be_between", ["i", "n", "f", "b"])):
        col = rng.choice(cols)
        if etype.endswith(("mean_to_be_between", "sum_to_be_between")):
            lo = rng.choice([-20, -1, 0, 0.5, 1, 5])
            kw = {"min_value": lo, "max_value": lo + rng.choice([0, 1, 10, 100])}
            if rng.random() < 0.3:
                kw.pop(rng.choice(["min_value", "max_value"]))
            kw.update({f: rng.random() < 0.5 for f in ("strict_min", "strict_max") if rng.random() < 0.4})
        else:
            kw = _bounds(rng, rows, col)
        add(etype, column=col, **kw)
    n = len(rows)
    lo = max(0, n + rng.randint(-2, 1))
    add("expect_table_row_count_to_be_between", min_value=lo, max_value=max(lo, n + rng.randint(-1, 2)),
        **{f: rng.random() < 0.5 for f in ("strict_min", "strict_max")})
    add("expect_table_row_count_to_be_between", min_value=n)
    for cols in (["b", "c"], ["b", "i"], ["c", "s", "b"]):
        add("expect_compound_columns_to_be_unique", column_list=cols,
            ignore_row_if=rng.choice(["all_values_are_missing", "any_value_is_missing", "never"]), **_mostly(rng))
    add("expect_column_to_exist", column=rng.choice(list(COLUMNS)))
    add("expect_column_to_exist", column="missing_col")
    add("expect_column_to_exist", column="s", column_index=rng.choice([0, 1, 3, -5, 12]))
    for col in rng.sample(list(COLUMNS), 3):
        right = {"i": "INTEGER", "n": "NUMERIC(8, 2)", "f": "DOUBLE PRECISION", "s": "TEXT", "d": "DATE",
                 "b": "SMALLINT", "c": "VARCHAR(4)", "g": "INTEGER", "k": "CHAR(3)"}[col]
        add("expect_column_values_to_be_of_type", column=col,
            type_=rng.choice([right, right.lower(), "BIGINT", "numeric(8,2)"]))
    # checks GX refuses: both engines must fail them with an error
    add("expect_column_values_to_be_between", column="s", min_value=0)
    add("expect_column_values_to_match_regex", column="i", regex="^1")
    add("expect_column_values_to_not_be_null", column="nope")
    rng.shuffle(exps)
    return exps


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return str(a) == str(b)


def compare(specs, sql_res, gx_res) -> list[str]:
    problems = []
    for i, spec in enumerate(specs):
        s, g = sql_res[i], gx_res[i]
        where = f"[{i}] {spec.type} {spec.kwargs}"
        if s["success"] != g["success"]:
            problems.append(f"{where}: success sql={s['success']} gx={g['success']} | sql={s} | gx={g}")
            continue
        if bool(s.get("exception")) != bool(g.get("exception")):
            problems.append(f"{where}: exception sql={s.get('exception')!r} gx={g.get('exception')!r}")
            continue
        sr, gr = s["result"], g["result"]
        if "observed_value" in gr or "observed_value" in sr:
            if not _close(sr.get("observed_value"), gr.get("observed_value")):
                problems.append(f"{where}: observed sql={sr.get('observed_value')!r} gx={gr.get('observed_value')!r}")
        for key in ("element_count", "unexpected_count", "unexpected_percent", "missing_count",
                    "missing_percent", "unexpected_percent_total"):
            if key in gr and not _close(sr.get(key), gr.get(key)):
                problems.append(f"{where}: {key} sql={sr.get(key)!r} gx={gr.get(key)!r}")
    return problems


def _run_both(conninfo: str, table: str, exps: list[dict], where: str | None = None):
    """GX's results, and the sql engine's in each of its ways of running: row by row with
    the distinct counts after the scan on one connection; grouped by every column it can
    group by with the distinct counts on a second connection; grouped by some."""
    specs = list(parse_suite({"name": "diff", "expectations": exps}).expectations)
    assert all(s.type in SUPPORTED for s in specs)
    with psycopg.connect(conninfo) as conn:
        info = read_table_info(conn, "public", table)
        candidates = sorted(compile_plan(specs, info, where).group_candidates())
        assert candidates, "the random suites have per-row checks on groupable columns"
        ways = {"rows": {"group_by": ()},
                "grouped+concurrent": {"group_by": candidates, "connect": lambda: psycopg.connect(conninfo)},
                "grouped-by-some": {"group_by": candidates[::2]}}
        sql_res = {}
        for way, kw in ways.items():
            sql_res[way], unsupported = run_sql(conn, schema="public", table=table, specs=specs, where=where,
                                                sample_size=0, **kw)
            assert unsupported == []
    gx_res = run_gx(conninfo, schema="public", table=table, specs=specs, where=where)
    return specs, sql_res, gx_res


def compare_ways(specs, sql_res, gx_res) -> list[str]:
    return [f"({way}) {p}" for way, res in sql_res.items() for p in compare(specs, res, gx_res)]


# the first tables are the edge cases: empty, and every column null
SHAPES = {(0, 0): {"n_rows": 0}, (1, 0): {"n_rows": 7, "all_null": True}, (2, 0): {"n_rows": 1}}


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed{s}") for s in range(6)])
def test_sql_engine_agrees_with_gx(pg, pg_uri, seed):
    rng = random.Random(seed)
    tables = []
    for k in range(2):  # two random tables per database, one suite each
        name = f"r{seed}_{k}"
        rows = make_table(pg, rng, name, **SHAPES.get((seed, k), {}))
        tables.append((name, make_suite(rng, rows)))
    problems = []
    for name, exps in tables:
        specs, sql_res, gx_res = _run_both(pg_uri, name, exps)
        problems += [f"{name}: {p}" for p in compare_ways(specs, sql_res, gx_res)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed{s}") for s in range(100, 103)])
def test_sql_engine_agrees_with_gx_on_a_partition(pg, pg_uri, seed):
    """With ``where`` (GX: a query asset), element counts are the partition's."""
    rng = random.Random(seed)
    rows = make_table(pg, rng, "p")
    exps = make_suite(rng, [r for r in rows if r["g"] == 1])
    specs, sql_res, gx_res = _run_both(pg_uri, "p", exps, where="g = 1")
    problems = compare_ways(specs, sql_res, gx_res)
    assert not problems, "\n".join(problems)
