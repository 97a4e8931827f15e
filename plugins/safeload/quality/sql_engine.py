"""The ``sql`` engine: a suite compiled into one aggregate scan of the table.

Great Expectations computes most of a suite's metrics in bundled queries, but still
issues several statements per expectation (row counts, null counts, unexpected counts,
window queries for uniqueness, samples of unexpected values). This engine compiles
every supported expectation of a suite into **one** ``select count(*), count(a),
count(*) filter (where ...), min(b), ... from t where <partition>`` statement, evaluates
the results in Python with GX's own rules, and reads the catalogue once for column
existence and types. Other statements run only when a check needs them:

- uniqueness not proven by a unique index: the distinct counts run as a statement of their
  own, at the same time as the scan on a second connection in the same snapshot (a
  distinct count cannot run in a parallel plan, and would make the whole scan serial);
  only when there are duplicates does a ``group by`` count the duplicated rows exactly
  as GX does (every row of a repeated value is unexpected). An index proves uniqueness
  when its key columns are among the checked ones, or when its other key columns are
  non-null and constant over the checked rows, which the scan itself tells (a
  partition's primary key ``(order_id, order_date)`` for a check of ``order_id`` on one
  day; see :meth:`TableInfo.unique_given_constant`);
- failed map checks: a ``limit``-ed query fetches a few unexpected values for the report.

Rewrites keep the per-row work down, with the same results: a regular expression that
is a literal with anchors becomes a ``like``; short ``in`` lists are padded to the length
PostgreSQL looks up by hash; a regular expression on an analysed column is matched once
per most common value and looked up per row (:func:`memoize_regexes`); a column with a
validated not-null constraint is counted by ``count(*)``; and when a regular expression
still checks a low-cardinality column (by a small sample when the table has no
statistics), the scan groups the rows by such columns first and evaluates their
predicates once per group (:meth:`Plan.scan`, :func:`choose_group_keys`). See
docs/decisions/007.

Results are GX-shaped dicts (``{"success", "result": {...}, "exception"}``) with the
fields GX reports: ``observed_value`` for aggregate checks; ``element_count``,
``unexpected_count``, ``unexpected_percent``, ``missing_count``... for map checks,
with GX's null handling (nulls leave the denominator of every map check except
``not_null``), its ``mostly`` rule, its results on empty tables and all-null columns.

Expectation types not listed in :data:`SUPPORTED` (or using ``row_condition`` or
suite parameters) are reported as unsupported; :func:`safeload.quality.gate.run_gate`
hands them to the ``gx`` engine. Identifiers go through :class:`psycopg.sql.Identifier`,
values through :class:`psycopg.sql.Literal`; the ``where`` partition filter is SQL
written by the DAG's author and is used as given.

This module is the engine's entry (:func:`run_sql`) and says the order of its steps;
the steps live in :mod:`safeload.quality.sql`: the catalogue read (:mod:`~.sql.catalog`),
the compilation, one unit per family of expectation types (:mod:`~.sql.compile`), the
rewrites of the plan (:mod:`~.sql.regex_memo`, :mod:`~.sql.grouping`), the execution
(:mod:`~.sql.execute`) and GX's rules for the results (:mod:`~.sql.results`). Their
public names are importable from here too.

No Airflow and no Great Expectations import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from safeload.quality.sql.catalog import ColumnInfo, TableInfo, read_table_info
from safeload.quality.sql.checks_values import regex_as_like
from safeload.quality.sql.compile import SUPPORTED, compile_plan, unsupported_reason
from safeload.quality.sql.execute import execute_plan
from safeload.quality.sql.grouping import choose_group_keys, estimate_cardinality, plan_groups
from safeload.quality.sql.plan import Plan
from safeload.quality.sql.regex_memo import memoize_regexes
from safeload.quality.sql.results import RawResult, map_result, metric_between
from safeload.quality.suite import ExpectationSpec

if TYPE_CHECKING:
    import psycopg

__all__ = ["SUPPORTED", "ColumnInfo", "Plan", "RawResult", "TableInfo", "choose_group_keys", "compile_plan",
           "estimate_cardinality", "execute_plan", "map_result", "memoize_regexes", "metric_between", "plan_groups",
           "read_table_info", "regex_as_like", "run_sql", "unsupported_reason"]


def run_sql(conn: psycopg.Connection, *, schema: str, table: str, specs: Sequence[ExpectationSpec],
            where: str | None = None, sample_size: int = 5, work_mem: str | None = None,
            connect: Callable[[], psycopg.Connection] | None = None,
            group_by: Sequence[str] | str = "auto", regex_memo: bool = True,
            ) -> tuple[dict[int, RawResult], list[int]]:
    """Evaluate the supported expectations of ``specs`` on ``schema.table``.

    :param conn: a psycopg connection to the warehouse
    :param schema: the table's schema
    :param table: the table (or view)
    :param specs: the suite's expectations
    :param where: a SQL predicate selecting the partition, or None
    :param sample_size: unexpected values fetched per failed map check (0: none)
    :param work_mem: ``work_mem`` for the transaction, or None (see :func:`execute_plan`)
    :param connect: opens a second connection for the distinct counts (see :func:`execute_plan`)
    :param group_by: ``"auto"`` (group the scan when that pays, :func:`plan_groups`), or
        the columns to group by (``()``: row by row); the results are the same either way
    :param regex_memo: evaluate regular expressions once per most common value of an
        analysed column (:func:`memoize_regexes`); the results are the same either way

    :returns: (results by index, indexes of the expectations left for the gx engine)
    :raises LookupError: when the table does not exist
    """
    with conn.transaction():  # not left open: execute_plan opens its own snapshot on an idle connection
        info = read_table_info(conn, schema, table)
    if info is None:
        raise LookupError(f"table {schema}.{table} does not exist; check the name (schema.table) and the "
                          "connection's database")
    plan = compile_plan(specs, info, where, sample_size=sample_size)
    if regex_memo:
        plan = memoize_regexes(conn, plan)  # before grouping: a memoized regex needs none
    if group_by == "auto":
        plan = plan_groups(conn, plan)
    else:
        plan = plan.grouped([group_by] if isinstance(group_by, str) else group_by)
    return execute_plan(conn, plan, work_mem=work_mem, connect=connect), plan.unsupported
