"""A regular expression evaluated once per most common value of its column, and looked
up per row (:func:`memoize_regexes`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from psycopg import sql

from safeload.quality.sql.plan import Plan, Slot, groupable_column, in_list

if TYPE_CHECKING:
    import psycopg


#: most common values of a column a regular expression memo may list (the most common
#: first; pg_stats holds up to the column's statistics target, 100 by default)
MEMO_MAX_VALUES = 1000


#: fewest rows (a fraction of the non-null ones, by pg_stats) the most common values must
#: cover for the memo to pay: it adds a hashed lookup per row (about 20 ns on PostgreSQL 18)
#: and saves the regular expression (about 130 ns) for the rows it covers
MEMO_MIN_COVERAGE = 0.2


def memoize_regexes(conn: psycopg.Connection, plan: Plan) -> Plan:
    """``plan`` with each regular expression on an analysed column evaluated once per
    most common value of the column (``pg_stats.most_common_vals``), in a small statement
    before the scan; the scan then looks a row's value up in those values instead of
    matching it::

        case when c in (<values that match>) then true
             when c in (<values that do not>) then false
             else c ~ <regex> end

    Exact whatever the statistics say: a value outside the lists (a rare one, one added
    since the last ``analyze``) still runs the regular expression, a null gives null as
    ``c ~ <regex>`` does, and the values are matched by PostgreSQL itself, as the column's
    type (``char(n)`` padded as stored) under the column's collation. Statistics only decide
    whether it pays (the values cover :data:`MEMO_MIN_COVERAGE` of the rows). Only columns
    whose equal values are identical (deterministic collation, no bare ``bpchar``), so that
    a value found in a list is the value that was matched. The lists are ``in`` lists
    padded as :func:`in_list` pads them, so PostgreSQL looks them up by hash. The scan no
    longer needs grouping for those expressions (:func:`plan_groups` then groups only for
    regular expressions left). A statement PostgreSQL refuses (an invalid regular
    expression) leaves the plan as it was: the scan reports the error, as before.

    Measured on 2M rows (PostgreSQL 18, CPU of the statement over a plain scan of 196-202
    ms): a regex on a char(3) column of 3 values +257 ms, grouped by that column +88, with
    the memo +43 (unpadded lists +68).

    :param conn: a psycopg connection
    :param plan: from :func:`compile_plan`
    """
    import psycopg

    table = plan.table
    eligible: dict[str, Slot] = {}
    for name, slot in plan.slots.items():
        if not slot.regex or slot.pattern is None or len(slot.cols) != 1:
            continue
        info = table.find(slot.cols[0])
        # n_distinct: the column has statistics; -1: every value distinct, no common values
        if info is None or not groupable_column(info) or info.n_distinct is None or info.n_distinct == -1:
            continue
        eligible[name] = slot
    if not eligible:
        return plan
    parts = []
    for k, (name, slot) in enumerate(eligible.items()):
        info = table.find(slot.cols[0])
        value = sql.SQL("m.v")
        if info.collation:
            value = sql.SQL("(m.v collate {})").format(sql.Identifier(*info.collation))
        parts.append(sql.SQL(
            # m.v as text (one type for the union): char(n) loses its padding, which its
            # equality ignores, so the value still finds the same rows
            "(select {k}, m.v::text, {value} ~ {pattern}, s.coverage"
            " from (select most_common_vals, (select sum(f) from unnest(most_common_freqs) as f)"
            "              / nullif(1 - null_frac, 0) as coverage"
            "       from pg_stats where schemaname = {schema} and tablename = {table} and attname = {col}"
            "       order by inherited limit 1) as s,"
            " unnest(s.most_common_vals::text::{type}[]) with ordinality as m(v, i)"
            " where m.i <= {limit} order by m.i)").format(
            k=sql.Literal(k), value=value, pattern=sql.Literal(slot.pattern), schema=sql.Literal(table.schema),
            table=sql.Literal(table.table), col=sql.Literal(info.name), type=sql.SQL(info.type),
            limit=sql.Literal(MEMO_MAX_VALUES)))
    try:
        with conn.transaction():
            rows = conn.execute(sql.SQL(" union all ").join(parts)).fetchall()
    except psycopg.OperationalError:
        raise
    except psycopg.Error:
        return plan  # an invalid regular expression: the scan reports it per check, as without the memo
    found: dict[int, list[tuple[Any, bool]]] = {}
    for k, v, matched, coverage in rows:
        if coverage is not None and coverage >= MEMO_MIN_COVERAGE:
            found.setdefault(k, []).append((v, matched))
    slots = dict(plan.slots)
    for k, (name, slot) in enumerate(eligible.items()):
        values = found.get(k)
        if not values:
            continue
        col = sql.Identifier(slot.cols[0])
        branches = [sql.SQL("when {} in ({}) then {}").format(col, in_list(vs), sql.SQL(answer))
                    for vs, answer in (([v for v, m in values if m], "true"), ([v for v, m in values if not m], "false"))
                    if vs]
        memo = sql.SQL("case {} else {} ~ {} end").format(sql.SQL(" ").join(branches), col, sql.Literal(slot.pattern))
        pred = sql.SQL("not ({})").format(memo)
        slots[name] = dataclasses.replace(slot, expr=sql.SQL("count(*) filter (where {})").format(pred), pred=pred,
                                          regex=False, memo=len(values))
    return dataclasses.replace(plan, slots=slots)
