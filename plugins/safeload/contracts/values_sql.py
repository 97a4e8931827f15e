"""The value rules of a contract on a PostgreSQL table or query, in SQL.

One statement counts the rows that break every rule (``count(*) filter (where ...)``,
``count(x) - count(distinct x)`` for keys), so the source is read once, by the server,
with its own memory bounds (work_mem, spilling to disk). Only a broken rule costs a
second statement, for its first rows. Rows are numbered in the order the query returns
them (``row_number() over ()``). Pure Python apart from psycopg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from safeload.contracts.values import MAX_EXAMPLES, RuleResult, _bound, match_columns

if TYPE_CHECKING:
    from safeload.contracts.model import Contract
    from safeload.contracts.rules import Rule

_TYPED = ("smallint", "integer", "bigint", "numeric", "real", "double precision", "boolean", "date", "timestamp",
          "timestamptz", "time")


def _predicate(rule: Rule, cols: list[Any], contract: Contract) -> tuple[Any, list[Any]] | None:
    """``(SQL condition true for an offending row, parameters)``, or None for the key and count rules."""
    from psycopg import sql

    c = cols[0] if cols else None
    pg_type = contract.column(rule.columns[0]).type if rule.columns else None
    present = sql.SQL("{} is not null").format(c) if c is not None else None
    kind = rule.kind
    if kind == "not_null":
        return sql.SQL("{} is null").format(c), []
    if kind == "missing_values":
        texts = [str(v) for v in rule.arg if v is not None]
        cond = sql.SQL("{}::text = any(%s)").format(c)
        if any(v is None for v in rule.arg):
            return sql.SQL("({} is null or {})").format(c, cond), [texts]
        return cond, [texts]
    if kind in ("min_length", "max_length"):
        op = sql.SQL("<" if kind == "min_length" else ">")
        return sql.SQL("char_length({}::text) {} %s").format(c, op), [rule.arg]
    if kind in ("minimum", "maximum"):
        op = {("minimum", False): "<", ("minimum", True): "<=", ("maximum", False): ">",
              ("maximum", True): ">="}[(kind, rule.exclusive)]
        return sql.SQL("{} {} %s").format(c, sql.SQL(op)), [_bound(rule.arg, pg_type)]
    values = pattern = None
    if kind == "pattern":
        pattern = rule.arg
    elif kind == "allowed_values":
        values = rule.arg
    elif kind == "invalid_values":
        values, pattern = rule.arg.get("values"), rule.arg.get("pattern")
    else:
        return None
    parts, params = [], []
    if values is not None:
        if pg_type is not None and pg_type.name in _TYPED:
            parts.append(sql.SQL("not ({} = any(%s))").format(c))
            params.append([_bound(v, pg_type) for v in values if v is not None])
        else:
            parts.append(sql.SQL("not ({}::text = any(%s))").format(c))
            params.append([str(v) for v in values if v is not None])
    if pattern is not None:
        parts.append(sql.SQL("not ({}::text ~ %s)").format(c))
        params.append(pattern)
    return sql.SQL("({} and ({}))").format(present, sql.SQL(" or ").join(parts)), params


def check_rules_sql(conn: Any, relation: Any, source_columns: list[str], contract: Contract | None
                    ) -> tuple[int | None, list[RuleResult]]:
    """``(rows, results)`` of the contract's value rules on ``relation`` (a ``sql.Composable``
    naming a table, or ``(query) as q``)."""
    from psycopg import sql

    if contract is None or not contract.rules:
        return None, []
    match = match_columns(contract, source_columns)
    results: list[RuleResult] = []
    exprs, params, counted = [sql.SQL("count(*)")], [], []
    for rule in contract.rules:
        missing = [c for c in rule.columns if c not in match]
        if missing:
            results.append(RuleResult(rule, "not checked", reason=f"column {missing[0]!r} is not in the source "
                                                                    "(reported as drift)"))
            continue
        cols = [sql.Identifier(match[c]) for c in rule.columns]
        if rule.kind in ("minimum", "maximum") and _bound(rule.arg, contract.column(rule.columns[0]).type) is None:
            results.append(RuleResult(rule, "not checked", reason=f"the bound {rule.arg!r} is not a "
                                                                    f"{contract.column(rule.columns[0]).type} value"))
            continue
        if rule.kind in ("unique", "primary_key"):
            all_present = sql.SQL(" and ").join(sql.SQL("{} is not null").format(c) for c in cols)
            key = cols[0] if len(cols) == 1 else sql.SQL("({})").format(sql.SQL(", ").join(cols))
            exprs.append(sql.SQL("count(*) filter (where {}) - count(distinct {}) filter (where {})").format(
                all_present, key, all_present))
        elif rule.kind == "row_count":
            exprs.append(sql.SQL("count(*)"))
        else:
            cond, p = _predicate(rule, cols, contract)
            exprs.append(sql.SQL("count(*) filter (where {})").format(cond))
            params.extend(p)
        result = RuleResult(rule, "passed")
        results.append(result)
        counted.append((result, cols))
    if not counted:
        return None, results
    row = conn.execute(sql.SQL("select {} from {}").format(sql.SQL(", ").join(exprs), relation), params).fetchone()
    total = int(row[0])
    for (result, cols), count in zip(counted, row[1:]):
        result.offending = int(count)
        result.settle(total)
        if result.status != "passed" and result.rule.kind != "row_count":
            result.examples = _examples(conn, relation, result.rule, cols, contract)
    return total, results


def _examples(conn: Any, relation: Any, rule: Rule, cols: list[Any], contract: Contract) -> list[tuple[int, str, str]]:
    from psycopg import sql

    if rule.kind in ("unique", "primary_key"):
        all_present = sql.SQL(" and ").join(sql.SQL("{} is not null").format(c) for c in cols)
        value = sql.SQL("concat_ws(', ', {})").format(sql.SQL(", ").join(sql.SQL("{}::text").format(c) for c in cols))
        query = sql.SQL(
            "select n, v, f from (select n, v, min(n) over (partition by v) as f from "
            "(select row_number() over () as n, {value} as v, {present} as keep from {rel}) s where keep) d "
            "where n <> f order by n limit {limit}").format(value=value, present=all_present, rel=relation,
                                                             limit=sql.Literal(MAX_EXAMPLES))
        return [(n, str(v)[:80], f"repeats row {f}") for n, v, f in conn.execute(query).fetchall()]
    cond, params = _predicate(rule, cols, contract)
    query = sql.SQL("select n, v from (select row_number() over () as n, {c}::text as v, {cond} as bad from {rel}) s "
                    "where bad order by n limit {limit}").format(c=cols[0], cond=cond, rel=relation,
                                                                 limit=sql.Literal(MAX_EXAMPLES))
    return [(n, "" if v is None else str(v)[:80], "") for n, v in conn.execute(query, params).fetchall()]
