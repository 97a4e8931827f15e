"""ODCS v3 quality rules as safeload value rules, and the reader both ODCS modules share.

ODCS writes value rules in two places: the property's own fields (``required``,
``unique``, ``logicalTypeOptions``) and ``quality`` lists on a property or a schema
object. This module maps the ``quality`` lists: each ``library`` metric (``nullValues``,
``missingValues``, ``invalidValues``, ``duplicateValues``, ``rowCount``, and the v3.0
spellings ``rule: validValues``, ``nullCheck``, ``duplicateCount``) becomes a
:class:`~safeload.contracts.rules.Rule` with its ``mustBe...`` threshold, unit and
severity; ``text``, ``sql`` and ``custom`` rules become
:class:`~safeload.contracts.rules.NotChecked` entries with their path. Pure Python.
"""

from __future__ import annotations

import difflib
from typing import Any

from safeload.contracts.rules import OPERATORS, NotChecked, Rule, Threshold, threshold_of
from safeload.errors import ContractError

_QUALITY_KEYS = {
    "id", "name", "description", "type", "rule", "metric", "arguments", "validValues", "unit", "dimension",
    "method", "severity", "businessImpact", "schedule", "scheduler", "tags", "customProperties",
    "authoritativeDefinitions", "query", "engine", "implementation", "scheduleCronExpression", "toolName",
    "toolRuleName", *OPERATORS,
}
#: severities that report without failing the check (anything else breaks it)
WARNING_SEVERITIES = ("warning", "warn", "info", "information", "low", "minor")
_METRICS = {"nullValues": "not_null", "nullCheck": "not_null", "missingValues": "missing_values",
            "invalidValues": "invalid_values", "validValues": "invalid_values", "duplicateValues": "unique",
            "duplicateCount": "unique", "rowCount": "row_count"}


class OdcsReader:
    """One pass over one ODCS document: knows the file for messages and collects what is not checked."""

    def __init__(self, source: str):
        self.source = source
        self.not_checked: list[NotChecked] = []
        self.load_problems: list[str] = []

    def fail(self, where: str, msg: str) -> ContractError:
        return ContractError(f"{self.source}: {where}: {msg}")

    def skip(self, where: str, what: str, reason: str) -> None:
        """Something the contract declares that the check does not hold the source to."""
        self.not_checked.append(NotChecked(where, what, reason))

    def load_only(self, where: str, what: str, reason: str) -> None:
        """A setting only a load needs, that a load cannot use as written: reported, not fatal."""
        self.load_problems.append(f"{where}: {reason}")
        self.not_checked.append(NotChecked(where, what, reason))

    @property
    def warnings(self) -> list[str]:
        return [f"{n.path}: {n.reason}" for n in self.not_checked]

    def keys(self, node: dict[str, Any], allowed: set[str], where: str, what: str) -> None:
        unknown = sorted((k for k in node if k not in allowed), key=str)
        if unknown:
            key = str(unknown[0])
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"the {what} fields are: {', '.join(sorted(allowed))}"
            raise self.fail(f"{where}.{key}", f"not an ODCS v3 {what} field; {hint} (an unknown field "
                                              "could hide a rule, so it is refused)")

    def mapping(self, node: Any, where: str, what: str) -> dict[str, Any]:
        if not isinstance(node, dict):
            raise self.fail(where, f"must be a mapping ({what}), not {type(node).__name__}")
        return node

    def boolean(self, node: dict[str, Any], key: str, where: str) -> bool | None:
        value = node.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail(f"{where}.{key}", f"must be true or false, not {value!r}")
        return value


def quality_list(r: OdcsReader, node: Any, where: str) -> list[dict[str, Any]]:
    if node is None:
        return []
    if not isinstance(node, list):
        raise r.fail(where, "must be a list of quality rules")
    rules = [r.mapping(rule, f"{where}[{i}]", "a quality rule") for i, rule in enumerate(node)]
    for i, rule in enumerate(rules):
        r.keys(rule, _QUALITY_KEYS, f"{where}[{i}]", "quality rule")
    return rules


def rule_label(rule: dict[str, Any]) -> str:
    kind = rule.get("type") or ("library" if rule.get("metric") or rule.get("rule") else "?")
    name = rule.get("metric") or rule.get("rule") or rule.get("engine") or rule.get("name") or ""
    return f"{kind}{' ' + repr(name) if name else ''}"


def _severity(r: OdcsReader, rule: dict[str, Any], where: str) -> str:
    severity = rule.get("severity")
    if severity is None:
        return "error"
    if not isinstance(severity, str):
        raise r.fail(f"{where}.severity", f"must be a word such as error or warning, not {severity!r}")
    return "warning" if severity.strip().lower() in WARNING_SEVERITIES else "error"


def _threshold(r: OdcsReader, rule: dict[str, Any], where: str) -> Threshold | None:
    try:
        return threshold_of(rule)
    except ValueError as e:
        raise r.fail(where, f"{e}; e.g. 'mustBe: 0' or 'mustBeLessThan: 5' with 'unit: rows' or 'percent'") from None


def _library(r: OdcsReader, rule: dict[str, Any], where: str, path: str, level: str) -> tuple[str, str] | None:
    """``(kind, metric)`` of a library rule, or None after reporting it as not checked."""
    kind = rule.get("type", "library")
    if kind not in ("library", "text", "sql", "custom"):
        raise r.fail(f"{where}.type", f"{kind!r} is not an ODCS quality type; use library, text, sql or custom")
    if kind != "library":
        r.skip(path, rule_label(rule), f"{rule_label(rule)} rule is not checked by safeload (it runs no "
                                        f"{'SQL' if kind == 'sql' else 'engine of another tool' if kind == 'custom' else 'free text'}); "
                                        "express it in a quality suite (safeload gate) if it must hold")
        return None
    metric = rule.get("metric") or rule.get("rule")
    if metric not in _METRICS:
        r.skip(path, rule_label(rule), f"{rule_label(rule)} is not a library metric safeload checks "
                                        f"(it checks {', '.join(sorted(set(_METRICS)))})")
        return None
    mapped = _METRICS[metric]
    if (level == "property" and mapped == "row_count") or (level == "schema" and mapped not in ("row_count", "unique")):
        r.skip(path, rule_label(rule), f"{metric} is a {'schema' if level == 'property' else 'property'}-level "
                                        f"metric; at the {level} level it is not checked")
        return None
    return mapped, metric


def property_rules(r: OdcsReader, quality: list[dict[str, Any]], column: str, where: str,
                   path: str) -> list[Rule]:
    """The value rules of a property's ``quality`` list (those that are not, reported).

    :param where: the property for messages (``schema[0].properties[3] (amount)``)
    :param path: the property's path (``schema[0].properties[3]``)
    """
    out: list[Rule] = []
    for q, rule in enumerate(quality):
        qwhere = f"{where}.quality[{q}]"
        found = _library(r, rule, qwhere, f"{path}.quality[{q}]", "property")
        if found is None:
            continue
        kind, metric = found
        args = r.mapping(rule.get("arguments") or {}, f"{qwhere}.arguments", "arguments of the metric")
        threshold = _threshold(r, rule, qwhere) or Threshold()
        common = {"path": f"{path}.quality[{q}]", "threshold": threshold, "severity": _severity(r, rule, qwhere), "label": metric}
        if kind == "invalid_values":
            values = rule.get("validValues", args.get("validValues"))
            pattern = args.get("pattern", rule.get("pattern"))
            if values is not None and (not isinstance(values, list) or not values
                                       or any(isinstance(v, (list, dict)) for v in values)):
                raise r.fail(f"{qwhere}.validValues", "must be a non-empty list of the allowed values")
            if pattern is not None and not isinstance(pattern, str):
                raise r.fail(f"{qwhere}.arguments.pattern", "must be a regular expression string")
            if values is None and pattern is None:
                raise r.fail(qwhere, f"{metric} needs the allowed values: 'validValues: [...]' (v3.0) or "
                                     "'arguments: {validValues: [...]}' / 'arguments: {pattern: ...}' (v3.1)")
            out.append(Rule("invalid_values", (column,), arg={"values": tuple(values) if values else None,
                                                               "pattern": pattern}, **common))
        elif kind == "missing_values":
            missing = args.get("missingValues")
            if not isinstance(missing, list) or not missing:
                raise r.fail(f"{qwhere}.arguments.missingValues", "must list the values that count as missing, "
                                                                  "e.g. [null, '', 'N/A']")
            out.append(Rule("missing_values", (column,), arg=tuple(missing), **common))
        else:  # not_null, unique
            out.append(Rule(kind, (column,), **common))
    return out


def schema_rules(r: OdcsReader, quality: list[dict[str, Any]], columns: dict[str, str], where: str) -> list[Rule]:
    """The value rules of a schema object's ``quality`` list: row counts and composite uniqueness.

    :param columns: property name -> column name (physicalName, else name)
    """
    out: list[Rule] = []
    for q, rule in enumerate(quality):
        qwhere = f"{where}.quality[{q}]"
        found = _library(r, rule, qwhere, qwhere, "schema")
        if found is None:
            continue
        kind, metric = found
        args = r.mapping(rule.get("arguments") or {}, f"{qwhere}.arguments", "arguments of the metric")
        severity = _severity(r, rule, qwhere)
        threshold = _threshold(r, rule, qwhere)
        if kind == "row_count":
            if threshold is None:
                raise r.fail(qwhere, "rowCount needs an operator, e.g. 'mustBeGreaterThan: 0' or "
                                     "'mustBeBetween: [100, 120]'")
            if threshold.unit != "rows":
                raise r.fail(f"{qwhere}.unit", "a row count is in rows, not percent")
            out.append(Rule("row_count", (), qwhere, threshold=threshold, severity=severity, label=metric))
            continue
        props = args.get("properties")
        if not isinstance(props, list) or not props or not all(isinstance(p, str) for p in props):
            raise r.fail(f"{qwhere}.arguments.properties", "a schema-level duplicateValues names the properties "
                                                           "that must be unique together: 'properties: [a, b]'")
        unknown = [p for p in props if p not in columns and p not in columns.values()]
        if unknown:
            raise r.fail(f"{qwhere}.arguments.properties", f"{unknown[0]!r} is not a property of this object; "
                                                           f"it has: {', '.join(columns)}")
        out.append(Rule("unique", tuple(columns.get(p, p) for p in props), qwhere,
                        threshold=threshold or Threshold(), severity=severity, label=metric))
    return out
