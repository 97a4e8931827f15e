"""A suite compiled into one scan (:func:`compile_plan`). Pure: no database access.

Each expectation type belongs to one family, a module that compiles it
(:mod:`.checks_schema`, :mod:`.checks_metrics`, :mod:`.checks_values`,
:mod:`.checks_unique`); this module finds the checked columns in the catalogue, refuses
those that are missing or of a type the family cannot check, and hands the rest to
their family. A further type is a further entry of a family's ``TYPES`` (or a further
family in :data:`FAMILIES`). Types outside :data:`SUPPORTED`, and expectations using
``row_condition`` or suite parameters, are left for the ``gx`` engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from safeload.quality.sql import checks_metrics, checks_schema, checks_unique, checks_values
from safeload.quality.sql.catalog import TableInfo
from safeload.quality.sql.names import EXISTS, ROW_COUNT
from safeload.quality.sql.plan import Check, Plan, Scan
from safeload.quality.sql.results import RawResult, error_result
from safeload.quality.suite import ExpectationSpec

#: the families of expectation types, each a module with ``TYPES``, ``type_error`` and ``compile``
FAMILIES = (checks_schema, checks_metrics, checks_values, checks_unique)
_FAMILY = {t: family for family in FAMILIES for t in family.TYPES}
#: The expectation types this engine evaluates itself.
SUPPORTED = frozenset(_FAMILY)
#: types checked on the table as a whole: compiled without looking a column up
_TABLE_LEVEL = (EXISTS, ROW_COUNT)


def compile_plan(specs: Sequence[ExpectationSpec], table: TableInfo, where: str | None = None, *,
                 sample_size: int = 5) -> Plan:
    """Compile the supported expectations into one scan. Pure: no database access.

    :param specs: the suite's expectations (their positions are the result indexes)
    :param table: the table's catalogue information (:func:`~safeload.quality.sql.catalog.read_table_info`)
    :param where: a SQL predicate selecting the partition, or None
    :param sample_size: unexpected values fetched for each failed map check (0: none)
    """
    scan = Scan(frozenset(c.name for c in table.columns if c.not_null))
    checks: list[Check] = []
    static: dict[int, RawResult] = {}
    unsupported: list[int] = []
    for i, spec in enumerate(specs):
        if unsupported_reason(spec):
            unsupported.append(i)
            continue
        family = _FAMILY[spec.type]
        if spec.type in _TABLE_LEVEL:
            compiled = family.compile(i, spec, [], scan, table, where, sample_size)
        else:
            infos = [table.find(c) for c in spec.columns]
            missing = [c for c, info in zip(spec.columns, infos) if info is None]
            if missing:
                static[i] = _missing_column(missing[0], table)
                continue
            errors = [e for e in (family.type_error(spec, info) for info in infos) if e]
            if errors:
                static[i] = error_result(errors[0])
                continue
            compiled = family.compile(i, spec, infos, scan, table, where, sample_size)
        if isinstance(compiled, Check):
            checks.append(compiled)
        else:
            static[i] = compiled
    return Plan(table=table, where=where, checks=checks, static=static, unsupported=unsupported,
                slots=dict(scan.slots))


def unsupported_reason(spec: ExpectationSpec) -> str | None:
    """Why the ``sql`` engine hands ``spec`` to GX, or None when it evaluates it.

    :param spec: the expectation
    """
    if spec.type not in SUPPORTED:
        return f"{spec.type} is not one of the sql engine's types"
    if spec.kwargs.get("row_condition"):
        return "row_condition is evaluated by GX's condition parser"
    if any(_is_param(v) for v in spec.kwargs.values()):
        return "suite parameters ($PARAMETER) are resolved by GX"
    if isinstance(spec.kwargs.get("value_set"), list) and any(_is_param(v) for v in spec.kwargs["value_set"]):
        return "suite parameters ($PARAMETER) are resolved by GX"
    return None


def _is_param(v: Any) -> bool:
    return isinstance(v, dict) and "$PARAMETER" in v


def _missing_column(name: str, table: TableInfo) -> RawResult:
    cols = ", ".join(c.name for c in table.columns[:30]) or "(none)"
    return error_result(f"column {name!r} does not exist in {table.name}; its columns are: {cols}")
