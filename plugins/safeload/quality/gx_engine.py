"""The ``gx`` engine: Great Expectations 1.x itself validates the suite.

An ephemeral data context (nothing written to disk), a PostgreSQL data source from the
connection string, a table asset (or, for a partition, a query asset
``select * from schema.table where <where>``), one batch, one validation. Used for
``engine="gx"`` and for the expectation types the ``sql`` engine does not evaluate.

Great Expectations is imported inside the functions only: importing it takes seconds
and must not happen when a DAG file is parsed. Its usage statistics are off
(``GX_ANALYTICS_ENABLED=False``) and its progress bars hidden.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from psycopg import sql

from safeload.quality.suite import ExpectationSpec

RawResult = dict[str, Any]

# Expectations about the table's columns rather than its rows. GX cannot read column
# types of a query asset on PostgreSQL (a KeyError 'type'), and the columns of a
# partition are the table's, so these run on the table asset even when ``where`` is set.
_SCHEMA_TYPES = frozenset({
    "expect_column_to_exist", "expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list",
    "expect_table_columns_to_match_ordered_list", "expect_table_columns_to_match_set",
    "expect_table_column_count_to_be_between", "expect_table_column_count_to_equal",
})
_INDEX_KEY = "safeload_index"


def sqlalchemy_url(conninfo: str) -> str:
    """A ``postgresql+psycopg2://`` URL for a libpq URI or ``key=value`` connection string.

    :param conninfo: the libpq connection string

    >>> sqlalchemy_url("postgresql://postgres@127.0.0.1:5432/db")
    'postgresql+psycopg2://postgres@127.0.0.1:5432/db'
    """
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy.engine import URL

    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    host = params.pop("host", None)
    port = params.pop("port", None)
    url = URL.create(
        "postgresql+psycopg2",
        username=params.pop("user", None),
        password=params.pop("password", None),
        host=host if host and "," not in host else None,
        port=int(port) if port and port.isdigit() else None,
        database=params.pop("dbname", None),
        query={**params, **({"host": host} if host and "," in host else {})},
    )
    return url.render_as_string(hide_password=False)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """GX logs warnings for routine things (decimal to float conversions); keep them out
    of task logs while it runs."""
    logger = logging.getLogger("great_expectations")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _import_gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


def _exception_text(res: Any) -> str | None:
    info = getattr(res, "exception_info", None) or {}
    if isinstance(info, dict) and info.get("raised_exception"):
        return str(info.get("exception_message") or "GX raised an exception")
    if isinstance(info, dict):  # GX keys metric errors by metric id
        for v in info.values():
            if isinstance(v, dict) and v.get("raised_exception"):
                return str(v.get("exception_message") or "GX raised an exception")
    return None


def _json_result(res: Any) -> dict[str, Any]:
    from great_expectations.util import convert_to_json_serializable

    raw = dict(res.result or {})
    observed = raw.get("observed_value")
    out = convert_to_json_serializable(raw)
    if observed is not None and not isinstance(observed, (list, dict)):
        out["observed_value"] = observed  # keep dates as dates, like the sql engine
    return out


def run_gx(conninfo: str, *, schema: str, table: str, specs: Sequence[ExpectationSpec],
           indexes: Sequence[int] | None = None, where: str | None = None,
           result_format: str = "BASIC") -> dict[int, RawResult]:
    """Validate ``specs`` (or only those at ``indexes``) with Great Expectations.

    :param conninfo: libpq URI or ``key=value`` string of the warehouse
    :param schema: the table's schema
    :param table: the table
    :param specs: the suite's expectations
    :param indexes: which of them to run (default: all)
    :param where: a SQL predicate selecting a partition (a query asset)
    :param result_format: GX's result format
    :returns: a GX-shaped result dict per index
    :raises LookupError: when GX cannot read the table
    """
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    wanted = list(range(len(specs))) if indexes is None else list(indexes)
    results: dict[int, RawResult] = {}
    if not wanted:
        return results

    with _quiet():
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        ds = context.data_sources.add_postgres(f"safeload_{uuid.uuid4().hex[:8]}",
                                               connection_string=sqlalchemy_url(conninfo))
        try:
            groups: dict[bool, list[int]] = {}
            for i in wanted:
                on_table = where is None or specs[i].type in _SCHEMA_TYPES
                groups.setdefault(on_table, []).append(i)
            for on_table, idxs in groups.items():
                if on_table:
                    asset = ds.add_table_asset(f"t_{uuid.uuid4().hex[:8]}", table_name=table, schema_name=schema)
                else:
                    query = sql.SQL("select * from {} where ({})").format(
                        sql.Identifier(schema, table), sql.SQL(where or "true")).as_string(None)
                    asset = ds.add_query_asset(f"q_{uuid.uuid4().hex[:8]}", query=query)
                batch_def = asset.add_batch_definition_whole_table("all")
                try:
                    batch = batch_def.get_batch()
                except Exception as e:  # noqa: BLE001  GX wraps SQLAlchemy errors in its own types
                    raise LookupError(f"Great Expectations cannot read {schema}.{table}"
                                      f"{' where ' + where if where else ''}: {str(e).splitlines()[0]}") from None
                results.update(_validate(gx, ExpectationConfiguration, batch, specs, idxs, result_format))
        finally:
            with contextlib.suppress(Exception):
                ds.get_engine().dispose()  # do not leave pooled connections behind
    return results


def _validate(gx, ExpectationConfiguration, batch, specs: Sequence[ExpectationSpec], idxs: list[int],
              result_format: str) -> dict[int, RawResult]:
    results: dict[int, RawResult] = {}
    suite = gx.ExpectationSuite(name=f"safeload_{uuid.uuid4().hex[:8]}")
    # GX's suite is a set: it drops an expectation equal to one already in it (meta
    # aside). Run each distinct expectation once and copy its result to its twins.
    first_of: dict[str, int] = {}
    twins: dict[int, int] = {}
    for i in idxs:
        spec = specs[i]
        key = repr((spec.type, sorted(spec.kwargs.items(), key=lambda kv: kv[0]), spec.severity))
        if key in first_of:
            twins[i] = first_of[key]
            continue
        first_of[key] = i
        d = spec.to_gx_dict()
        d["meta"] = {**d["meta"], _INDEX_KEY: i}
        try:
            cfg = ExpectationConfiguration(**d)
            suite.add_expectation(cfg.to_domain_obj())
        except Exception as e:  # noqa: BLE001  unknown type, invalid arguments (pydantic)
            msg = " ".join(str(e).split())
            results[i] = {"success": False, "result": {}, "exception": f"GX refused the expectation: {msg[:500]}"}
    if suite.expectations:
        validation = batch.validate(suite, result_format=result_format)
        for res in validation.results:
            i = int(res.expectation_config.meta.get(_INDEX_KEY))
            results[i] = {"success": bool(res.success), "result": _json_result(res),
                          "exception": _exception_text(res)}
    for i, j in twins.items():
        results[i] = results[j]
    return results
