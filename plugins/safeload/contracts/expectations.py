"""Great Expectations expectations generated from a contract's column rules.

The contract is the one source of truth for what a column may hold; the quality gate
checks the data against it without anyone restating the rules in a suite. A suite file
can add checks the contract cannot express (row counts, means, cross-column rules):
:func:`merge` puts the two together.

.. code-block:: python

    contract = load_contract("include/contracts/orders.yaml")
    exps = expectations_from_contract(contract)
    # [{"type": "expect_column_to_exist", "kwargs": {"column": "order_id"}, ...},
    #  {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}, ...},
    #  {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "order_id"}, ...},
    #  {"type": "expect_column_values_to_be_between",
    #   "kwargs": {"column": "amount", "min_value": 0, "max_value": 100000}, ...}, ...]

Pure Python: no Airflow, no Great Expectations import.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from typing import Any

from safeload.contracts.model import Contract
from safeload.gx_types import gx_type_name


def _jsonable(value: Any) -> Any:
    """Bounds and allowed values as JSON values (YAML may have given dates or decimals)."""
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def expectations_from_contract(contract: Contract, *, include_types: bool = True,
                               type_severity: str = "warning") -> list[dict[str, Any]]:
    """GX expectations (dicts in GX's suite JSON format) for a contract's column rules.

    Per column, in contract order:

    - ``expect_column_to_exist`` for every column;
    - ``expect_column_values_to_be_of_type`` with GX's name of the contract type
      (``NUMERIC(12, 2)``), at ``type_severity`` (the schema check is the gate for
      types; this records drift of the table itself);
    - ``expect_column_values_to_not_be_null`` when ``nullable: false`` (primary keys too);
    - ``expect_column_values_to_be_unique`` for ``unique: true`` and a one-column primary key;
    - ``expect_column_values_to_be_between`` for ``min``/``max`` (inclusive, as in the contract);
    - ``expect_column_values_to_be_in_set`` for ``allowed_values``;
    - ``expect_column_values_to_match_regex`` for ``pattern``;

    then ``expect_compound_columns_to_be_unique`` for a primary key of several columns.
    Every expectation is ``critical`` unless said otherwise, and carries
    ``meta.source = "contract"`` with the contract's path and version.

    :param contract: the parsed contract
    :param include_types: also generate the type expectations
    :param type_severity: severity of the type expectations
    """
    meta = {"source": "contract", "contract": contract.path, "dataset": contract.dataset,
            "version": contract.version}

    def exp(etype: str, severity: str = "critical", **kwargs: Any) -> dict[str, Any]:
        return {"type": etype, "kwargs": kwargs, "meta": dict(meta), "severity": severity}

    out: list[dict[str, Any]] = []
    pk = contract.primary_key
    for col in contract.columns:
        out.append(exp("expect_column_to_exist", column=col.name))
        if include_types:
            out.append(exp("expect_column_values_to_be_of_type", type_severity, column=col.name,
                           type_=gx_type_name(str(col.type))))
        if not col.nullable or col.primary_key:
            out.append(exp("expect_column_values_to_not_be_null", column=col.name))
        if col.unique or (col.primary_key and len(pk) == 1):
            out.append(exp("expect_column_values_to_be_unique", column=col.name))
        if col.min is not None or col.max is not None:
            bounds = {}
            if col.min is not None:
                bounds["min_value"] = _jsonable(col.min)
            if col.max is not None:
                bounds["max_value"] = _jsonable(col.max)
            out.append(exp("expect_column_values_to_be_between", column=col.name, **bounds))
        if col.allowed_values is not None:
            out.append(exp("expect_column_values_to_be_in_set", column=col.name,
                           value_set=_jsonable(list(col.allowed_values))))
        if col.pattern is not None:
            out.append(exp("expect_column_values_to_match_regex", column=col.name, regex=col.pattern))
    if len(pk) > 1:
        out.append(exp("expect_compound_columns_to_be_unique", column_list=list(pk)))
    return out


def _identity(e: dict[str, Any]) -> str:
    return json.dumps({"type": e.get("type"), "kwargs": e.get("kwargs") or {}}, sort_keys=True, default=str)


def merge(contract_exps: list[dict[str, Any]], suite_exps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The contract's expectations, then the suite's.

    The contract is the source of truth, so a suite can add checks and tighten them, but
    never remove or relax one: a suite expectation with the same type and arguments as
    a contract one is a duplicate and dropped (the contract's copy, with its severity,
    stays); one on the same column with other arguments (say ``mostly: 0.99``) is kept
    *as well*, and both must pass. Exact duplicates within the suite are dropped too.

    :param contract_exps: from :func:`expectations_from_contract`
    :param suite_exps: GX expectation dicts from a suite
    """
    out = [copy.deepcopy(e) for e in contract_exps]
    seen = {_identity(e) for e in out}
    for e in suite_exps:
        key = _identity(e)
        if key in seen:
            continue
        seen.add(key)
        out.append(copy.deepcopy(e))
    return out
