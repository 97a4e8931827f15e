"""The quality gate: one interface over the ``sql`` and ``gx`` engines.

.. code-block:: python

    result = run_gate("postgresql://loader@warehouse/dw", table="safeload_staging.orders_20240501",
                      suite="include/expectations/orders.json", where=None, engine="sql",
                      store={"target": "public.orders", "partition_value": "2024-05-01",
                             "dag_id": "orders_daily", "run_id": "scheduled__2024-05-01",
                             "task_id": "audit", "run_key": "orders_daily/scheduled__2024-05-01"})
    result.add(volume_check(conninfo, target="public.orders", rows=10432))
    log.info(result.summary())
    result.raise_for_critical()   # QualityGateError after every check has run

Severity is GX's own field: a failed ``critical`` check fails the gate; ``warning`` and
``info`` failures are reported and stored, and the run goes on. A check that could not
run (a missing column, a value of the wrong type) counts as failed.

The ``sql`` engine (default) evaluates the common expectation types in one aggregate scan
(uniqueness checks without a unique index add one statement of distinct counts, run beside
the scan on a second connection) and hands every other type to the ``gx`` engine, so a
suite may use any GX type;
``engine="gx"`` runs the whole suite through Great Expectations.

No Airflow import; Great Expectations is imported only when the ``gx`` engine runs.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from safeload.errors import QualityGateError, SafeloadError
from safeload.quality.suite import SEVERITIES, ExpectationSpec, Suite, coerce_suite

ENGINES = ("sql", "gx")
_STORE_KEYS = {"target", "partition_value", "dag_id", "run_id", "task_id", "run_key", "suite"}


class GateError(SafeloadError):
    """The gate could not run: no connection, no such table, a bad ``where`` or engine.

    ``retryable`` is True for connection failures (the database may be back on retry).
    """

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return _jsonable(float(value))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


# --------------------------------------------------------------------------- texts

def _num(x: Any) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float, Decimal)):
        return str(x)
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        x = int(x)
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:,.6g}" if abs(x) >= 1e-4 or x == 0 else f"{x:.3g}"


def _pct(p: float | None) -> str:
    if p is None:
        return "?"
    return f"{p:.3g}%" if p < 1 else f"{p:.4g}%"


def _values(vs: Iterable[Any], limit: int = 8) -> str:
    vs = list(vs)
    shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in vs[:limit])
    return "{" + shown + (f", ... ({len(vs)} values)" if len(vs) > limit else "") + "}"


def _range(kw: dict[str, Any]) -> str:
    lo, hi = kw.get("min_value"), kw.get("max_value")
    smin, smax = kw.get("strict_min", False), kw.get("strict_max", False)
    if lo is not None and hi is not None:
        if not smin and not smax:
            return f"between {_num(lo)} and {_num(hi)}"
        return f"{'>' if smin else '>='} {_num(lo)} and {'<' if smax else '<='} {_num(hi)}"
    if lo is not None:
        return f"{'>' if smin else '>='} {_num(lo)}"
    if hi is not None:
        return f"{'<' if smax else '<='} {_num(hi)}"
    return "any value"


def expected_text(spec: ExpectationSpec) -> str:
    """What the check expects, for people: ``between 0 and 100000``, ``0 nulls``,
    ``at most 1% unexpected``.

    :param spec: the expectation
    """
    t, kw = spec.type, spec.kwargs
    mostly = kw.get("mostly", 1)
    tolerance = None
    if isinstance(mostly, (int, float)) and mostly < 1:
        tolerance = f"at most {_pct((1 - mostly) * 100)} unexpected"
    if t == "expect_column_values_to_not_be_null":
        return tolerance.replace("unexpected", "nulls") if tolerance else "0 nulls"
    if t == "expect_column_values_to_be_unique":
        base = "no duplicates"
    elif t == "expect_compound_columns_to_be_unique":
        base = f"({', '.join(kw.get('column_list', []))}) unique"
    elif t == "expect_column_values_to_be_between":
        base = _range(kw)
    elif t == "expect_column_values_to_be_in_set":
        base = f"in {_values(kw.get('value_set') or [])}"
    elif t == "expect_column_values_to_not_be_in_set":
        base = f"not in {_values(kw.get('value_set') or [])}"
    elif t == "expect_column_values_to_match_regex":
        base = f"matching {kw.get('regex')!r}"
    elif t in ("expect_column_min_to_be_between", "expect_column_max_to_be_between",
               "expect_column_mean_to_be_between", "expect_column_sum_to_be_between",
               "expect_table_row_count_to_be_between"):
        what = {"min": "min", "max": "max", "mean": "mean", "sum": "sum"}.get(t.split("_")[2], "row count")
        base = f"{what} {_range(kw)}"
    elif t == "expect_column_to_exist":
        idx = kw.get("column_index")
        base = "column exists" + (f" at position {idx}" if idx else "")
    elif t == "expect_column_values_to_be_of_type":
        base = f"type {kw.get('type_')}"
    else:
        args = {k: v for k, v in kw.items() if k not in ("column", "column_list", "result_format")}
        base = ", ".join(f"{k}={v!r}" for k, v in args.items()) or t
    return f"{base} ({tolerance})" if tolerance else base


def _map_observed(res: dict[str, Any]) -> dict[str, Any]:
    keys = ("element_count", "unexpected_count", "unexpected_percent", "missing_count")
    return {k: res[k] for k in keys if k in res}


def observed_text(r: ExpectationResult) -> str:
    """The observed value, for people: ``3 nulls of 1,000 rows (0.3%)``.

    :param r: the result
    """
    if r.exception:
        return f"error: {r.exception}"
    ov = r.observed_value
    if isinstance(ov, dict) and "unexpected_count" in ov:
        u, n = ov.get("unexpected_count"), ov.get("element_count")
        if u is None:
            return f"no rows to check ({_num(n or 0)} rows)"
        if r.type == "expect_column_values_to_not_be_null":
            text = f"{_num(u)} nulls of {_num(n)} rows ({_pct(ov.get('unexpected_percent'))})"
        else:
            considered = n - ov["missing_count"] if "missing_count" in ov and n is not None else n
            noun = "rows" if r.type == "expect_compound_columns_to_be_unique" else "non-null values"
            text = f"{_num(u)} unexpected of {_num(considered)} {noun} ({_pct(ov.get('unexpected_percent'))})"
        sample = r.details.get("partial_unexpected_list")
        if sample:
            text += f", e.g. {_values(sample, 5)[1:-1]}"
        return text
    if r.type == "volume_check" and isinstance(ov, dict):
        verdict = {"drop": ", a drop", "spike": ", a spike"}.get(ov.get("verdict"), "")
        return (f"{_num(ov.get('rows'))} rows{verdict} (history median {_num(ov.get('median'))}, "
                f"{ov.get('history')} loads)")
    if ov is None and r.type == "expect_column_to_exist":
        return "column exists" if r.success else "column missing"
    if ov is None:
        return "no value (empty table or only nulls)" if "observed_value" in r.details else "--"
    return _num(ov) if isinstance(ov, (int, float)) else str(ov)


# --------------------------------------------------------------------------- results

@dataclass
class ExpectationResult:
    """The outcome of one expectation.

    :param type: the GX expectation type
    :param kwargs: its arguments
    :param severity: critical | warning | info
    :param success: whether it passed (False when it could not run)
    :param observed_value: the metric (aggregate checks: a number, date, type name) or, for
        map checks, ``{"element_count", "unexpected_count", "unexpected_percent"[, "missing_count"]}``
    :param expected: what it expects, for people
    :param engine_used: ``sql`` or ``gx``
    :param details: the full GX-shaped result (samples of unexpected values, percents)
    :param exception: why it could not run, or None
    """

    type: str
    kwargs: dict[str, Any]
    severity: str
    success: bool
    observed_value: Any
    expected: str
    engine_used: str
    column: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    exception: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, spec: ExpectationSpec, raw: dict[str, Any], engine: str) -> ExpectationResult:
        """Build a result from an engine's GX-shaped result.

        :param spec: the expectation
        :param raw: ``{"success", "result": {...}, "exception"}`` from the sql or gx engine
        :param engine: which engine produced it
        """
        res = raw.get("result") or {}
        observed = res.get("observed_value") if "observed_value" in res else (
            _map_observed(res) if "unexpected_count" in res else None)
        column = spec.column or (", ".join(spec.columns) if spec.columns else None)
        return cls(type=spec.type, kwargs=spec.kwargs, severity=spec.severity, success=bool(raw.get("success")),
                   observed_value=observed, expected=expected_text(spec), engine_used=engine, column=column,
                   details=res, exception=raw.get("exception"), meta=spec.meta)

    @property
    def critical_failure(self) -> bool:
        return not self.success and self.severity == "critical"

    def line(self) -> str:
        """One line for reports: ``CRITICAL expect_...(amount): observed ...; expected ...``."""
        what = f"{self.type}({self.column})" if self.column else self.type
        return f"{self.severity.upper():8} {what}: observed {observed_text(self)}; expected {self.expected}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        d = {"type": self.type, "column": self.column, "kwargs": self.kwargs, "severity": self.severity,
             "success": self.success, "observed_value": self.observed_value, "expected": self.expected,
             "engine_used": self.engine_used}
        sample = self.details.get("partial_unexpected_list")
        if sample:
            d["unexpected_sample"] = sample[:20]
        if self.exception:
            d["exception"] = self.exception
        return _jsonable(d)


@dataclass
class GateResult:
    """All results of a gate run.

    :param results: one :class:`ExpectationResult` per expectation, in suite order
    :param table: the table checked
    :param where: the partition filter, or None
    :param suite: the suite's name
    :param engine: the engine asked for
    :param location: where the full result is stored (set when history was written)
    :param duration_s: how long the checks took
    """

    results: list[ExpectationResult]
    table: str = ""
    where: str | None = None
    suite: str = ""
    engine: str = "sql"
    location: str | None = None
    duration_s: float = 0.0

    @property
    def success(self) -> bool:
        """True when no critical check failed."""
        return not any(r.critical_failure for r in self.results)

    @property
    def failed(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success]

    def add(self, result: ExpectationResult) -> None:
        """Add a result computed elsewhere (e.g. :func:`volume_check`).

        :param result: the result; a critical failure makes the gate fail
        """
        self.results.append(result)

    def statistics(self) -> dict[str, int]:
        stats = {"evaluated": len(self.results), "successful": sum(r.success for r in self.results)}
        for sev in SEVERITIES:
            stats[f"failed_{sev}"] = sum(1 for r in self.failed if r.severity == sev)
        return stats

    def to_dict(self) -> dict[str, Any]:
        """``{"success": bool, "results": [...], ...}``, JSON-serialisable."""
        return {"success": self.success, "results": [r.to_dict() for r in self.results],
                "table": self.table, "where": self.where, "suite": self.suite, "engine": self.engine,
                "statistics": self.statistics(), "location": self.location,
                "duration_s": round(self.duration_s, 3)}

    def summary(self, limit: int = 20) -> str:
        """A bounded report: a header line, then each failed check's observed vs expected
        (critical first).

        :param limit: at most this many failed checks are listed; the rest are counted
        """
        on = self.table + (f" where {self.where}" if self.where else "")
        failed = sorted(self.failed, key=lambda r: SEVERITIES.index(r.severity) if r.severity in SEVERITIES else 9)
        n = len(self.results)
        if not failed:
            return f"quality gate on {on}: all {n} checks passed ({self.engine} engine, {self.duration_s:.2f} s)"
        counts = ", ".join(f"{sum(1 for r in failed if r.severity == s)} {s}" for s in SEVERITIES
                           if any(r.severity == s for r in failed))
        verdict = "FAILED" if not self.success else "passed with warnings"
        lines = [f"quality gate on {on} {verdict}: {len(failed)} of {n} checks failed ({counts})"]
        lines += ["  " + r.line() for r in failed[:limit]]
        if len(failed) > limit:
            lines.append(f"  ... and {len(failed) - limit} more failed checks")
        if self.location:
            lines.append(f"full result: {self.location}")
        return "\n".join(lines)

    def raise_for_critical(self) -> None:
        """Raise :class:`~safeload.errors.QualityGateError` when a critical check failed,
        with the bounded summary and where the full result is."""
        if self.success:
            return
        where = self.location or "QualityGateError.result (GateResult.to_dict() has every check)"
        summary = self.summary()
        if "full result:" not in summary:
            summary += f"\nfull result: {where}"
        raise QualityGateError(summary, result=self)


# --------------------------------------------------------------------------- running

def _connect(conninfo: str, **kwargs: Any):
    import psycopg

    try:
        return psycopg.connect(conninfo, **kwargs)
    except psycopg.OperationalError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GateError(f"cannot connect to the warehouse: {first}; check the connection (host, port, "
                        "database, user) and that the server is up", retryable=True) from None
    except psycopg.ProgrammingError as e:
        raise GateError(f"invalid connection string: {e}; use postgresql://user@host:port/dbname") from None


def run_gate(conninfo: str, *, table: str, suite: Any, where: str | None = None, engine: str = "sql",
             store: dict[str, Any] | None = None, sample_size: int = 5, work_mem: str | None = None) -> GateResult:
    """Run every expectation of ``suite`` on ``table`` (or its ``where`` partition).

    :param conninfo: libpq URI or ``key=value`` string of the warehouse
    :param table: ``schema.table`` (schema defaults to ``public``)
    :param suite: a :class:`~safeload.quality.suite.Suite`, a suite file path, GX's suite
        dict, a list of expectation dicts, or a ``gx.ExpectationSuite``
    :param where: a SQL predicate selecting the partition to check, e.g.
        ``order_date = '2024-05-01'`` (written by the DAG's author; used as given)
    :param engine: ``sql`` (one scan, plus a concurrent distinct count for uniqueness
        without an index; other types go to GX) or ``gx`` (GX for everything)
    :param store: when given, every result is written to ``safeload.quality_results``:
        ``{"target", "partition_value", "dag_id", "run_id", "task_id", "run_key", "suite"}``
        (``target`` defaults to ``table``, ``suite`` to the suite's name)
    :param sample_size: unexpected values reported per failed check (sql engine)
    :param work_mem: ``work_mem`` for the sql engine's transaction (e.g. ``"256MB"``): lets
        the sort behind a uniqueness check stay in memory; None keeps the server's setting
    :returns: the :class:`GateResult`; call :meth:`GateResult.raise_for_critical` to fail
    :raises GateError: when the gate cannot run (connection, table, ``where``, engine)
    :raises SuiteError: when the suite is malformed
    """
    import psycopg

    from safeload.identifiers import IdentifierError, validate_table_name

    if engine not in ENGINES:
        raise GateError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    try:
        schema, name = validate_table_name(table)
    except IdentifierError as e:
        raise GateError(str(e)) from None
    if where is not None and not str(where).strip():
        where = None
    if store is not None:
        unknown = set(store) - _STORE_KEYS
        if unknown:
            raise GateError(f"store has unknown keys {sorted(unknown)}; the keys are {', '.join(sorted(_STORE_KEYS))}")
    s: Suite = coerce_suite(suite)
    specs = list(s.expectations)
    started = time.monotonic()
    raw: dict[int, dict[str, Any]] = {}
    engines: dict[int, str] = {}
    try:
        gx_indexes = _run_sql_part(conninfo, schema, name, specs, where, engine, sample_size, work_mem,
                                    raw, engines)
    except psycopg.OperationalError as e:  # the connection dropped mid-run
        raise GateError(f"lost the connection to the warehouse: {str(e).strip()}; retry", retryable=True) from None
    if gx_indexes:
        from safeload.quality.gx_engine import run_gx

        try:
            got = run_gx(conninfo, schema=schema, table=name, specs=specs, indexes=gx_indexes, where=where)
        except LookupError as e:
            raise GateError(str(e)) from None
        raw.update(got)
        engines.update({i: "gx" for i in got})
    results = []
    for i, spec in enumerate(specs):
        r = raw.get(i) or {"success": False, "result": {}, "exception": "no result (the engine skipped it)"}
        results.append(ExpectationResult.from_raw(spec, r, engines.get(i, engine)))
    gate = GateResult(results=results, table=f"{schema}.{name}", where=where, suite=s.name, engine=engine,
                      duration_s=time.monotonic() - started)
    if store is not None:
        given = {k: v for k, v in store.items() if v is not None}
        write_history(conninfo, gate.results, store={"suite": s.name, "target": f"{schema}.{name}", **given})
        run_key = store.get("run_key")
        gate.location = ("safeload.quality_results" + (f" where run_key = '{run_key}'" if run_key else
                                                       f" where target = '{store.get('target', gate.table)}'"))
    return gate


def _run_sql_part(conninfo, schema, name, specs, where, engine, sample_size, work_mem, raw, engines) -> list[int]:
    """Check the target, run the sql engine (when asked); return the indexes left for GX."""
    import psycopg

    with _connect(conninfo, autocommit=True) as conn:
        if where:
            _check_where(conn, schema, name, where)
        if engine != "sql" or not specs:
            if conn.execute("select to_regclass(%s) is null", (f'"{schema}"."{name}"',)).fetchone()[0]:
                raise GateError(_no_table(schema, name))
            return list(range(len(specs)))
        from safeload.quality.sql_engine import run_sql

        try:
            got, unsupported = run_sql(conn, schema=schema, table=name, specs=specs, where=where,
                                       sample_size=sample_size, work_mem=work_mem,
                                       connect=lambda: psycopg.connect(conninfo, autocommit=True))
        except LookupError:
            raise GateError(_no_table(schema, name)) from None
    raw.update(got)
    engines.update({i: "sql" for i in got})
    return unsupported


def _no_table(schema: str, name: str) -> str:
    return f"table {schema}.{name} does not exist; check the name (schema.table) and the connection's database"


def _check_where(conn: Any, schema: str, name: str, where: str) -> None:
    """Fail early, with one clear message, on a broken ``where`` (otherwise every check
    would report the same error). Planning only: ``limit 0`` reads no rows."""
    import psycopg
    from psycopg import sql

    try:
        conn.execute(sql.SQL("select 1 from {} where ({}) limit 0").format(sql.Identifier(schema, name),
                                                                            sql.SQL(where)))
    except psycopg.errors.UndefinedTable:
        raise GateError(_no_table(schema, name)) from None
    except psycopg.Error as e:
        diag = getattr(e, "diag", None)
        msg = diag.message_primary if diag is not None and diag.message_primary else str(e)
        raise GateError(f"the where clause {where!r} is not valid on {schema}.{name}: {msg}; fix the "
                        "partition filter") from None


def write_history(conninfo: str, results: Iterable[ExpectationResult], *, store: dict[str, Any]) -> int:
    """Append results to ``safeload.quality_results`` (creating safeload's tables if needed).

    :param conninfo: libpq URI or ``key=value`` string of the warehouse
    :param results: the results to write
    :param store: ``target`` (required), ``partition_value``, ``dag_id``, ``run_id``,
        ``task_id``, ``run_key``, ``suite``
    :returns: the number of rows written
    """
    from psycopg.types.json import Jsonb

    from safeload.metadata import ensure_metadata

    if not store.get("target"):
        raise GateError("store needs 'target': the table the results are about, e.g. public.orders")
    rows = [(store.get("run_key"), store.get("dag_id"), store.get("run_id"), store.get("task_id"), store["target"],
             None if store.get("partition_value") is None else str(store["partition_value"]), store.get("suite"),
             r.type, r.column, Jsonb(_jsonable(r.kwargs)), r.severity, r.success,
             Jsonb(_jsonable(r.observed_value if r.exception is None else {"exception": r.exception})),
             r.engine_used) for r in results]
    with _connect(conninfo, autocommit=True) as conn:
        ensure_metadata(conn)
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "insert into safeload.quality_results (run_key, dag_id, run_id, task_id, target, partition_value,"
                " suite, expectation_type, column_name, kwargs, severity, success, observed_value, engine)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    return len(rows)


# --------------------------------------------------------------------------- volume

def volume_band(history: list[int], *, k: float = 4.0,
                floor_fraction: float = 0.1) -> tuple[float, float, float, float]:
    """``(median, mad, lower, upper)`` of a row-count history: median ± k·MAD, where the
    MAD is floored at ``floor_fraction`` of the median, and at 1 row (a perfectly steady
    history has a MAD of 0, and then any change at all would look like an anomaly).

    :param history: row counts of earlier loads
    :param k: width of the band in (floored) MADs
    :param floor_fraction: the MAD's floor as a fraction of the median
    """
    med = statistics.median(history)
    mad = statistics.median([abs(x - med) for x in history])
    spread = max(mad, floor_fraction * med, 1.0)
    return med, mad, max(0.0, med - k * spread), med + k * spread


def volume_check(conninfo: str, *, target: str, rows: int, last_n: int = 14, k: float = 4.0,
                 min_history: int = 3, severity: str = "warning",
                 exclude_partition: str | None = None) -> ExpectationResult:
    """Compare this partition's row count with the last ``last_n`` published loads of
    ``target`` (``safeload.load_history``): it passes within median ± k·MAD.

    With fewer than ``min_history`` published loads it passes, saying so in the observed
    value. A sudden drop (a half-delivered file) or spike (a duplicated one) fails at
    ``severity``.

    :param conninfo: libpq URI or ``key=value`` string of the warehouse
    :param target: the target table, as the loader records it (``public.orders``)
    :param rows: this partition's row count
    :param last_n: how many recent published loads make the history
    :param k: width of the band in MADs
    :param min_history: fewest loads worth comparing with
    :param severity: critical | warning | info
    :param exclude_partition: leave earlier loads of this partition out (a re-run should
        not be compared with itself)
    """
    if severity not in SEVERITIES:
        raise GateError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    kwargs = {"target": target, "rows": rows, "last_n": last_n, "k": k, "min_history": min_history}
    with _connect(conninfo) as conn:
        exists = conn.execute("select to_regclass('safeload.load_history') is not null").fetchone()[0]
        history: list[int] = []
        if exists:
            history = [int(r[0]) for r in conn.execute(
                "select rows_loaded from safeload.load_history where target = %s and status = 'published'"
                " and rows_loaded is not null and (%s::text is null or partition_value <> %s::text)"
                " order by id desc limit %s", (target, exclude_partition, exclude_partition, last_n)).fetchall()]
    if len(history) < min_history:
        observed = (f"{rows} rows; only {len(history)} published load(s) of {target} in safeload.load_history "
                    f"(need {min_history}), so the volume was not compared")
        return ExpectationResult(type="volume_check", kwargs=kwargs, severity=severity, success=True,
                                 observed_value=observed,
                                 expected=f"row count within median ± {k:g}·MAD of the last {last_n} loads",
                                 engine_used="sql", details={"observed_value": observed, "history": history})
    med, mad, lo, hi = volume_band(history, k=k)
    ok = lo <= rows <= hi
    observed = {"rows": rows, "median": med, "mad": mad, "lower": lo, "upper": hi, "history": len(history),
                "verdict": "normal" if ok else ("drop" if rows < lo else "spike")}
    return ExpectationResult(
        type="volume_check", kwargs=kwargs, severity=severity, success=ok, observed_value=observed,
        expected=f"between {_num(math.ceil(lo))} and {_num(math.floor(hi))} rows (median {_num(med)} ± "
                 f"{k:g}·MAD {_num(max(mad, 0.1 * med, 1.0))} of the last {len(history)} loads)",
        engine_used="sql", details={"observed_value": observed, "history": history})

