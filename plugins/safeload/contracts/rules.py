"""The value rules a contract declares, as plain data: what to check, where it is written.

A :class:`Rule` is one check of the values of a source (not null, unique, a bound, a
length, a pattern, allowed values, a row count), with the path of the contract field
that declares it (``columns[3].max``, ``schema[0].properties[3].quality[1]``), the
tolerance the contract allows (:class:`Threshold`) and its severity (``error`` breaks
the check, ``warning`` is reported). A rule a contract declares that safeload does not
check becomes a :class:`NotChecked` with the same kind of path and the reason, so that
nothing a contract says is dropped in silence.

Both contract readers (:mod:`safeload.contracts.model`, :mod:`safeload.contracts.odcs`)
build these; :mod:`safeload.contracts.values` checks them. Pure Python: no Airflow import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Rule kinds, and how a report names them.
KINDS = {
    "not_null": "not null",
    "missing_values": "missing values",
    "unique": "unique",
    "primary_key": "primary key",
    "minimum": "minimum",
    "maximum": "maximum",
    "min_length": "minimum length",
    "max_length": "maximum length",
    "pattern": "pattern",
    "allowed_values": "allowed values",
    "invalid_values": "invalid values",
    "row_count": "row count",
}
#: ODCS's comparison operators on a metric.
OPERATORS = ("mustBe", "mustNotBe", "mustBeGreaterThan", "mustBeGreaterOrEqualTo", "mustBeLessThan",
             "mustBeLessOrEqualTo", "mustBeBetween", "mustNotBeBetween")
_SYMBOLS = {"mustBe": "=", "mustNotBe": "!=", "mustBeGreaterThan": ">", "mustBeGreaterOrEqualTo": ">=",
            "mustBeLessThan": "<", "mustBeLessOrEqualTo": "<="}


@dataclass(frozen=True)
class Threshold:
    """What a rule's metric must be: ``offending rows <= 0`` unless the contract says otherwise.

    :param operator: one of :data:`OPERATORS`
    :param value: the number compared to, or ``(low, high)`` for the between operators
    :param unit: ``rows`` (a count) or ``percent`` (of the rows checked)
    """

    operator: str = "mustBeLessOrEqualTo"
    value: Any = 0
    unit: str = "rows"

    def holds(self, observed: float) -> bool:
        op, v = self.operator, self.value
        if op == "mustBe":
            return observed == v
        if op == "mustNotBe":
            return observed != v
        if op == "mustBeGreaterThan":
            return observed > v
        if op == "mustBeGreaterOrEqualTo":
            return observed >= v
        if op == "mustBeLessThan":
            return observed < v
        if op == "mustBeLessOrEqualTo":
            return observed <= v
        lo, hi = v
        inside = lo <= observed <= hi
        return inside if op == "mustBeBetween" else not inside

    def __str__(self) -> str:
        unit = "%" if self.unit == "percent" else ""
        if self.operator in _SYMBOLS:
            return f"{_SYMBOLS[self.operator]} {self.value}{unit}"
        lo, hi = self.value
        return f"{'' if self.operator == 'mustBeBetween' else 'not '}between {lo}{unit} and {hi}{unit}"

    @property
    def zero(self) -> bool:
        """True when no offending row at all is allowed."""
        return self.unit == "rows" and self.operator in ("mustBe", "mustBeLessOrEqualTo") and self.value == 0 \
            or (self.operator == "mustBeLessThan" and self.value == 1 and self.unit == "rows")


NO_OFFENDER = Threshold()


@dataclass(frozen=True)
class Rule:
    """One value rule of a contract.

    :param kind: one of :data:`KINDS`
    :param columns: the contract columns it is about (several for a composite key; none
        for a row count)
    :param path: where the contract declares it, e.g. ``columns[3].max``
    :param arg: the bound, length, pattern, allowed values (a tuple), missing spellings,
        or for ``invalid_values`` a mapping with ``values`` and/or ``pattern``
    :param exclusive: for ``minimum``/``maximum``: the bound itself is out
    :param threshold: what the metric must be; the metric is the count of offending rows
        (or their percentage), and for ``row_count`` the number of rows
    :param severity: ``error`` (a broken rule fails the check) or ``warning`` (reported)
    :param label: how the contract spells it (``nullValues``, ``min``, ``validValues``)
    """

    kind: str
    columns: tuple[str, ...]
    path: str
    arg: Any = None
    exclusive: bool = False
    threshold: Threshold = NO_OFFENDER
    severity: str = "error"
    label: str = ""

    def describe(self) -> str:
        """The rule in words: ``amount maximum 100000``, ``order_id unique``."""
        cols = ", ".join(self.columns)
        what = KINDS[self.kind]
        if self.kind in ("minimum", "maximum"):
            sign = (">" if self.kind == "minimum" else "<") + ("" if self.exclusive else "=")
            what = f"{sign} {self.arg}"
        elif self.kind in ("min_length", "max_length"):
            what = f"length {'>=' if self.kind == 'min_length' else '<='} {self.arg}"
        elif self.kind == "pattern":
            what = f"matches {self.arg!r}"
        elif self.kind == "allowed_values":
            what = f"in {list(self.arg)}"
        elif self.kind == "invalid_values":
            parts = []
            if self.arg.get("values") is not None:
                parts.append(f"in {list(self.arg['values'])}")
            if self.arg.get("pattern") is not None:
                parts.append(f"matches {self.arg['pattern']!r}")
            what = " and ".join(parts)
        elif self.kind == "missing_values":
            what = f"missing values {list(self.arg)}"
        text = f"{cols} {what}" if cols else what
        if self.kind == "row_count":
            return f"row count {self.threshold}"
        if not self.threshold.zero:
            text += f" (offending rows {self.threshold})"
        return text


@dataclass(frozen=True)
class NotChecked:
    """Something a contract declares that safeload does not check, and why.

    :param path: where the contract says it, e.g. ``schema[0].quality[0]``
    :param what: the rule or setting, in words
    :param reason: why it is not checked, and where it could be
    """

    path: str
    what: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "rule": self.what, "status": "not checked", "reason": self.reason}


def threshold_of(node: dict[str, Any]) -> Threshold | None:
    """The threshold an ODCS quality rule gives with its ``mustBe...`` operators, or None (none given).

    :raises ValueError: several operators, or a value of the wrong shape
    """
    given = [k for k in OPERATORS if k in node]
    if not given:
        return None
    if len(given) > 1:
        raise ValueError(f"gives {', '.join(given)}; keep one operator")
    op, value = given[0], node[given[0]]
    unit = node.get("unit", "rows")
    if unit not in ("rows", "percent"):
        raise ValueError(f"unit {unit!r} is not rows or percent")
    if op in ("mustBeBetween", "mustNotBeBetween"):
        if not (isinstance(value, list) and len(value) == 2 and all(_number(v) for v in value)
                and value[0] <= value[1]):
            raise ValueError(f"{op} takes [low, high], two numbers, not {value!r}")
        return Threshold(op, (value[0], value[1]), unit)
    if not _number(value):
        raise ValueError(f"{op} takes a number, not {value!r}")
    return Threshold(op, value, unit)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
