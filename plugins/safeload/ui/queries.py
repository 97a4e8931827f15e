"""What the safeload page reads: SELECTs on safeload's tables, in a read-only transaction.

Every query is bounded by an index probe per table shown and a page size, so a page costs
the same with a year of daily history for 200 tables as with a week (docs/ui.md shows the
plans; tests/ui/test_queries.py checks them on 200 x 365 loads). No Airflow import.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

PAGE_SIZE = 50  # tables on the overview, loads on a table's history page
TREND_LOADS = 30  # published loads in a table's row-count sparkline
CHART_PARTITIONS = 60  # partitions on a table's quality charts
SAMPLE_REASONS = 3  # quarantined rows shown per partition
STATEMENT_TIMEOUT_MS = 15_000

TABLES = ("load_history", "quality_results", "quarantine", "contract_checks")


@contextmanager
def read_only(conninfo: str, *, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> Iterator[Any]:
    """A connection inside one ``READ ONLY`` transaction, rolled back at the end.

    Read-only twice over: the session default (``default_transaction_read_only``) and the
    transaction itself, so even a bug here cannot write to the warehouse.
    """
    import psycopg

    conn = psycopg.connect(
        conninfo, autocommit=True, application_name="safeload-ui",
        options=f"-c default_transaction_read_only=on -c statement_timeout={int(statement_timeout_ms)}")
    try:
        conn.read_only = True
        with conn.transaction(force_rollback=True):
            yield conn
    finally:
        conn.close()


def existing_tables(conn: Any) -> set[str]:
    """Which of safeload's tables exist (a fresh warehouse has none until the first load)."""
    row = conn.execute("select " + ", ".join(f"to_regclass('safeload.{t}') is not null" for t in TABLES)).fetchone()
    return {t for t, ok in zip(TABLES, row) if ok}


def _dicts(cur: Any) -> list[dict[str, Any]]:
    names = [d.name for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


# ------------------------------------------------------------------------- overview

_OVERVIEW = """
with recursive targets(target) as (
    -- a loose index scan: one probe of load_history_target_id_idx per distinct table,
    -- instead of reading every load to find the tables
    (select target from safeload.load_history where target > %(after)s order by target limit 1)
  union all
    select (select h.target from safeload.load_history h where h.target > t.target order by h.target limit 1)
    from targets t where t.target is not null
)
select t.target, l.id, l.partition_value, l.status, l.rows_loaded, l.rows_quarantined, l.rows_source,
       coalesce(l.published_at, l.started_at) as at, l.dag_id, l.run_id, l.task_id, l.try_number, l.message,
       tr.trend
from (select target from targets where target is not null limit %(limit)s) t
cross join lateral (
    select * from safeload.load_history h where h.target = t.target order by h.id desc limit 1
) l
cross join lateral (
    select coalesce(array_agg(s.rows_loaded order by s.id), '{}') as trend
    from (select h.id, h.rows_loaded from safeload.load_history h
          where h.target = t.target and h.status = 'published' and h.rows_loaded is not null
          order by h.id desc limit %(trend)s) s
) tr
order by t.target
"""

_LATEST_CHECKS = """
select t.target, count(*) as checks,
       count(*) filter (where not q.success and q.severity = 'critical') as failed,
       count(*) filter (where not q.success and q.severity <> 'critical') as warned
from unnest(%(targets)s::text[], %(partitions)s::text[]) as t(target, partition_value)
cross join lateral (
    -- the latest result of each check of that partition: a re-run supersedes a failure,
    -- whatever its kwargs (a volume check's carry the row count; a suite's bounds change)
    select r.success, r.severity from (
        select r.success, r.severity, r.checked_at,
               max(r.checked_at) over (partition by r.expectation_type, r.column_name) as latest
        from safeload.quality_results r
        where r.target = t.target and r.partition_value = t.partition_value
    ) r where r.checked_at = r.latest
) q
group by t.target
"""

_LATEST_DRIFT = """
select t.target, c.decision, c.passed, jsonb_array_length(c.changes) as changes, c.checked_at
from unnest(%(targets)s::text[]) as t(target)
cross join lateral (
    select * from safeload.contract_checks c where c.target = t.target order by c.id desc limit 1
) c
"""


def table_count(conn: Any) -> int:
    """How many tables have a load history (one index probe per table)."""
    return conn.execute("""
        with recursive targets(target) as (
            (select target from safeload.load_history order by target limit 1)
          union all
            select (select h.target from safeload.load_history h where h.target > t.target order by h.target limit 1)
            from targets t where t.target is not null
        ) select count(*) from targets where target is not null""").fetchone()[0]


def overview(conn: Any, *, after: str = "", limit: int = PAGE_SIZE,
             tables: set[str] | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of tables (ordered by name, after ``after``): the latest load, the row
    counts of recent published loads, the latest partition's checks and drift.

    :returns: ``(rows, next_after)``; ``next_after`` is None on the last page
    """
    tables = existing_tables(conn) if tables is None else tables
    if "load_history" not in tables:
        return [], None
    rows = _dicts(conn.execute(_OVERVIEW, {"after": after, "limit": limit + 1, "trend": TREND_LOADS}))
    next_after = rows[limit - 1]["target"] if len(rows) > limit else None
    rows = rows[:limit]
    for r in rows:
        r["trend"] = [int(x) for x in r["trend"]]
        r["volume"] = volume_verdict(r["trend"])
        r.update(checks=0, failed=0, warned=0, drift=None)
    by_target = {r["target"]: r for r in rows}
    if rows and "quality_results" in tables:
        for q in _dicts(conn.execute(_LATEST_CHECKS, {"targets": [r["target"] for r in rows],
                                                      "partitions": [r["partition_value"] for r in rows]})):
            by_target[q["target"]].update(checks=q["checks"], failed=q["failed"], warned=q["warned"])
    if rows and "contract_checks" in tables:
        for d in _dicts(conn.execute(_LATEST_DRIFT, {"targets": list(by_target)})):
            by_target[d["target"]]["drift"] = d
    return rows, next_after


def volume_verdict(trend: list[int], *, k: float = 4.0, min_history: int = 3) -> dict[str, Any] | None:
    """Is the last row count of ``trend`` a spike or a drop against the ones before it?

    The same band as the quality gate's volume check (median ± k·MAD, floored), so the page
    and the gate agree. None with too little history.
    """
    if len(trend) < min_history + 1:
        return None
    from safeload.quality.gate import volume_band

    med, _mad, lo, hi = volume_band(trend[:-1], k=k)
    last = trend[-1]
    return {"median": med, "lower": lo, "upper": hi, "rows": last,
            "verdict": "normal" if lo <= last <= hi else ("drop" if last < lo else "spike")}


# ------------------------------------------------------------------------- one table

@dataclass
class Series:
    """One check's values over partitions, for a line against its bounds."""

    key: str  # expectation type and column, for people
    severity: str
    measure: str  # what the value is: "value", "% unexpected", "rows"
    points: list[dict[str, Any]] = field(default_factory=list)  # partition, value, lower, upper, success, ...


def load_history(conn: Any, target: str, *, before: int | None = None,
                 limit: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], int | None]:
    """A page of ``target``'s loads, newest first (keyset paging on id).

    :returns: ``(rows, next_before)``; ``next_before`` is None on the last page
    """
    rows = _dicts(conn.execute(
        """select id, partition_value, status, rows_loaded, rows_quarantined, rows_source, checksum, source,
                  dag_id, run_id, task_id, try_number, started_at, published_at, duration_s, schema_changes, message
           from safeload.load_history where target = %s and (%s::bigint is null or id < %s)
           order by id desc limit %s""", (target, before, before, limit + 1)))
    return rows[:limit], (rows[limit - 1]["id"] if len(rows) > limit else None)


def row_trend(conn: Any, target: str, *, limit: int = 90) -> list[dict[str, Any]]:
    """The last ``limit`` published loads of ``target``, oldest first, with each one's
    volume band against the loads before it."""
    rows = _dicts(conn.execute(
        """select id, partition_value, rows_loaded from safeload.load_history
           where target = %s and status = 'published' and rows_loaded is not null
           order by id desc limit %s""", (target, limit)))[::-1]
    counts = [int(r["rows_loaded"]) for r in rows]
    for i, r in enumerate(rows):
        v = volume_verdict(counts[max(0, i - 14):i + 1])
        r.update(lower=v["lower"] if v else None, upper=v["upper"] if v else None,
                 success=v is None or v["verdict"] == "normal")
    return rows


def recent_partitions(conn: Any, target: str, *, limit: int = CHART_PARTITIONS,
                      tables: set[str] | None = None) -> list[str]:
    """The last ``limit`` partitions of ``target`` with a load or a check, oldest first."""
    tables = existing_tables(conn) if tables is None else tables
    seen: dict[str, None] = {}
    if "load_history" in tables:
        for (p,) in conn.execute("select partition_value from safeload.load_history where target = %s"
                                 " order by id desc limit %s", (target, limit * 4)):
            seen.setdefault(p, None)
    if not seen and "quality_results" in tables:  # a table checked by `safeload gate run`, never loaded
        for (p,) in conn.execute("select partition_value from safeload.quality_results where target = %s"
                                 " and partition_value is not null order by checked_at desc limit %s",
                                 (target, limit * 50)):
            seen.setdefault(p, None)
    return list(seen)[:limit][::-1]


# The latest result of each check (expectation type and column) on each partition: one
# gate execution writes its results in one statement, so they share ``checked_at``, and
# the newest execution supersedes the older ones whatever their kwargs (a volume check's
# carry the row count, and a suite's bounds may have changed since). Two checks of one
# type on one column in the same suite are both kept.
LATEST_RESULTS = """
select r.partition_value, r.expectation_type, r.column_name, r.kwargs, r.severity, r.success,
       r.observed_value, r.checked_at, r.dag_id, r.run_id, r.task_id
from (
    select r.*, max(r.checked_at) over (partition by r.partition_value, r.expectation_type, r.column_name)
                as latest
    from safeload.quality_results r where r.target = %s and r.partition_value = any(%s)
) r where r.checked_at = r.latest
order by r.partition_value, r.expectation_type, r.column_name, r.id
"""


def quality_series(conn: Any, target: str, partitions: list[str]) -> list[Series]:
    """Each check's latest result per partition, as series over ``partitions``."""
    if not partitions:
        return []
    rows = _dicts(conn.execute(LATEST_RESULTS, (target, partitions)))
    order = {p: i for i, p in enumerate(partitions)}
    series: dict[tuple[str, str | None, str], Series] = {}
    for r in sorted(rows, key=lambda r: order[r["partition_value"]]):
        value, lower, upper, measure = observed_number(r["expectation_type"], r["kwargs"] or {}, r["observed_value"])
        key = (r["expectation_type"], r["column_name"], _kwargs_key(r["kwargs"]))
        s = series.get(key)
        if s is None:
            label = r["expectation_type"] + (f" ({r['column_name']})" if r["column_name"] else "")
            s = series[key] = Series(key=label, severity=r["severity"], measure=measure)
        s.points.append({"partition": r["partition_value"], "value": value, "lower": lower, "upper": upper,
                         "success": r["success"], "severity": r["severity"], "observed": r["observed_value"],
                         "dag_id": r["dag_id"], "run_id": r["run_id"], "task_id": r["task_id"]})
    # failing checks first, then by name: the morning-after question is "what failed"
    return sorted(series.values(), key=lambda s: (all(p["success"] for p in s.points), s.key))


def _kwargs_key(kwargs: Any) -> str:
    import json

    kw = {k: v for k, v in (kwargs or {}).items() if k not in ("rows",)}  # the volume check's rows vary per load
    return json.dumps(kw, sort_keys=True, default=str)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def observed_number(expectation_type: str, kwargs: dict[str, Any],
                    observed: Any) -> tuple[float | None, float | None, float | None, str]:
    """A check's observed value as a number with its bounds: ``(value, lower, upper, measure)``.

    - aggregate checks (row count, mean, max ...): the metric against ``min_value``/``max_value``;
    - map checks (values in a set, not null, between ...): the unexpected percent against
      the ``mostly`` allowance, ``(1 - mostly)·100``;
    - the volume check: the row count against its median ± k·MAD band;
    - anything else (a date, a type name): no number, only pass/fail.
    """
    if isinstance(observed, dict):
        if expectation_type == "volume_check" or {"rows", "lower", "upper"} <= observed.keys():
            return _num(observed.get("rows")), _num(observed.get("lower")), _num(observed.get("upper")), "rows"
        if "unexpected_percent" in observed:
            mostly = _num(kwargs.get("mostly"))
            return (_num(observed["unexpected_percent"]), None,
                    round((1.0 - mostly) * 100.0, 9) if mostly is not None else 0.0, "% unexpected")
        return None, None, None, "value"
    return _num(observed), _num(kwargs.get("min_value")), _num(kwargs.get("max_value")), "value"


def drift_events(conn: Any, target: str, *, limit: int = 20,
                 tables: set[str] | None = None) -> list[dict[str, Any]]:
    """Contract checks that saw a difference, and columns the loader added (``evolve``), newest first."""
    tables = existing_tables(conn) if tables is None else tables
    events: list[dict[str, Any]] = []
    if "contract_checks" in tables:
        for r in _dicts(conn.execute(
                """select id, decision, passed, changes, source, contract, policy, dag_id, run_id, task_id,
                          try_number, checked_at as at
                   from safeload.contract_checks where target = %s and changes <> '[]'::jsonb
                   order by id desc limit %s""", (target, limit))):
            r["kind"] = "contract check"
            events.append(r)
    if "load_history" in tables:
        for r in _dicts(conn.execute(
                """select id, partition_value, schema_changes, dag_id, run_id, task_id, try_number,
                          coalesce(published_at, started_at) as at
                   from safeload.load_history where target = %s and schema_changes is not null
                   order by id desc limit %s""", (target, limit))):
            r["kind"] = "columns added on publish"
            r["decision"] = "evolve"
            r["passed"] = True
            r["changes"] = [{"kind": "added", "column": c.get("added"), "class": "additive",
                             "detail": "added to the target in the publish transaction"}
                            for c in (r.pop("schema_changes") or []) if isinstance(c, dict)]
            events.append(r)
    events.sort(key=lambda e: e["at"] or 0, reverse=True)
    return events[:limit]


def quarantine_summary(conn: Any, target: str, *, limit: int = 10,
                       tables: set[str] | None = None) -> list[dict[str, Any]]:
    """The last ``limit`` loads of ``target`` that quarantined rows, each with a few samples."""
    tables = existing_tables(conn) if tables is None else tables
    if "load_history" not in tables:
        return []
    loads = _dicts(conn.execute(
        """select id, partition_value, status, rows_quarantined, rows_source, dag_id, run_id, task_id, try_number,
                  coalesce(published_at, started_at) as at
           from safeload.load_history where target = %s and rows_quarantined > 0
           order by id desc limit %s""", (target, limit)))
    if loads and "quarantine" in tables:
        samples: dict[str, list[dict[str, Any]]] = {}
        for r in _dicts(conn.execute(
                """select p.partition_value, s.line, s.reason, s.raw
                   from unnest(%s::text[]) as p(partition_value)
                   cross join lateral (
                       select q.line, q.reason, q.raw from safeload.quarantine q
                       where q.target = %s and q.partition_value = p.partition_value
                       order by q.run_key desc, q.line limit %s) s""",
                (sorted({ld["partition_value"] for ld in loads}), target, SAMPLE_REASONS))):
            samples.setdefault(r["partition_value"], []).append(r)
        for ld in loads:
            ld["samples"] = samples.get(ld["partition_value"], [])
    return loads


def table_summary(conn: Any, target: str) -> dict[str, Any]:
    """Everything the page of one table shows but the paged history."""
    tables = existing_tables(conn)
    if "load_history" not in tables and "quality_results" not in tables:
        return {"tables": tables, "latest": None, "trend": [], "series": [], "drift": [], "quarantine": []}
    latest = None
    if "load_history" in tables:
        latest = next(iter(_dicts(conn.execute(
            "select * from safeload.load_history where target = %s order by id desc limit 1", (target,)))), None)
    partitions = recent_partitions(conn, target, tables=tables)
    return {
        "tables": tables,
        "latest": latest,
        "trend": row_trend(conn, target) if "load_history" in tables else [],
        "series": quality_series(conn, target, partitions) if "quality_results" in tables else [],
        "drift": drift_events(conn, target, tables=tables),
        "quarantine": quarantine_summary(conn, target, tables=tables),
    }


# ------------------------------------------------------------------------- one task

def run_report(conn: Any, *, dag_id: str, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """Everything safeload recorded for one DAG run (the task's report marks its own rows)."""
    tables = existing_tables(conn)
    out: dict[str, list[dict[str, Any]]] = {"loads": [], "checks": [], "contract_checks": []}
    if "load_history" in tables:
        out["loads"] = _dicts(conn.execute(
            """select id, target, partition_value, status, rows_loaded, rows_quarantined, rows_source, checksum,
                      dag_id, run_id, task_id, try_number, coalesce(published_at, started_at) as at, message
               from safeload.load_history where dag_id = %s and run_id = %s order by id limit 500""",
            (dag_id, run_id)))
    if "quality_results" in tables:
        out["checks"] = _dicts(conn.execute(
            """select id, target, partition_value, expectation_type, column_name, kwargs, severity, success,
                      observed_value, engine, dag_id, run_id, task_id, checked_at as at
               from safeload.quality_results where dag_id = %s and run_id = %s order by id limit 2000""",
            (dag_id, run_id)))
    if "contract_checks" in tables:
        out["contract_checks"] = _dicts(conn.execute(
            """select id, target, decision, passed, changes, source, contract, dag_id, run_id, task_id, try_number,
                      checked_at as at
               from safeload.contract_checks where dag_id = %s and run_id = %s order by id limit 100""",
            (dag_id, run_id)))
    return out
