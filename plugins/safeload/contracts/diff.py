"""Schema drift: every difference between a contract and a live source, classified.

Classes:

``additive``
    The source has something new that the contract does not (a column). Harmless to
    today's load; the policy decides whether to fail, warn, or evolve the target.
``compatible``
    The source differs but every value still loads correctly: a widened type,
    reordered columns, a name differing only in case or whitespace.
``breaking``
    Loading would lose or corrupt data: a removed or renamed column, a narrowed type,
    nulls in a NOT NULL column, values that do not fit the declared type, a value rule
    of the contract broken beyond its threshold (duplicate keys, a value out of bounds or
    not allowed...).
``warning``
    A value rule whose severity is ``warning`` is broken: reported, never failing.

Every value rule the contract declares is in the report (``rules``), checked (passed,
broken, warning) or not checked with the reason, each with its path in the contract.

Policy (per contract, overridable per task): ``fail`` fails on additive and breaking
drift; ``warn`` fails on breaking and warns on additive; ``evolve`` fails on breaking and
adds additive columns to the target (nullable) inside the publish transaction.
Compatible drift never fails. Pure Python: no Airflow, no database.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from safeload.contracts.naming import normalise
from safeload.contracts.types import TEXT_CARRIES, compare

if TYPE_CHECKING:
    from safeload.contracts.introspect import SourceSchema
    from safeload.contracts.model import Contract

ADDITIVE, COMPATIBLE, BREAKING, WARNING = "additive", "compatible", "breaking", "warning"
#: rules listed one by one in the text summary; the JSON report lists all
SUMMARY_RULES = 60
_FIX = {
    "not_null": "fill the column upstream, or declare it nullable in the contract",
    "missing_values": "fill the values upstream, or relax the rule's threshold",
    "unique": "remove the repeated rows upstream (or fix the key); a load would duplicate them",
    "primary_key": "remove the repeated rows upstream (or fix the key); a load would duplicate them",
    "row_count": "check that the delivery is complete, or change the rule's bounds",
}


@dataclass(frozen=True)
class Change:
    """One difference between contract and source.

    :param kind: ``added``, ``removed``, ``renamed``, ``type_widened``, ``type_narrowed``,
        ``nullability_relaxed``, ``invalid_values``, ``ragged_rows``, ``reordered``, ``name_case``,
        ``rule_broken``
    :param column: the column concerned (the contract's name where there is one)
    :param klass: ``additive``, ``compatible``, ``breaking`` or ``warning``
    :param detail: what was seen, in words
    :param action: what to do about it
    :param rule: for a broken value rule: its kind (``unique``, ``maximum``...)
    :param path: for a broken value rule: where the contract declares it
    :param count: for a broken value rule: the offending rows
    :param examples: for a broken value rule: the first offending rows (line or row, value)
    """

    kind: str
    column: str | None
    klass: str
    detail: str
    action: str
    source_type: str | None = None
    rule: str | None = None
    path: str | None = None
    count: int | None = None
    examples: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items()
             if v is not None or k not in ("rule", "path", "count", "examples")}
        d["class"] = d.pop("klass")
        return d


@dataclass
class DriftReport:
    """The result of holding a source against a contract."""

    contract: str
    source: str
    policy: str
    changes: list[Change] = field(default_factory=list)
    rows_scanned: int | None = None
    #: every value rule of the contract: checked (:class:`~safeload.contracts.values.RuleResult`) ...
    rule_results: list[Any] = field(default_factory=list)
    #: ... or not checked (:class:`~safeload.contracts.rules.NotChecked`), with the reason
    not_checked: list[Any] = field(default_factory=list)
    row_unit: str = "line"

    def of_class(self, klass: str) -> list[Change]:
        return [c for c in self.changes if c.klass == klass]

    @property
    def breaking(self) -> list[Change]:
        return self.of_class(BREAKING)

    @property
    def additive(self) -> list[Change]:
        return self.of_class(ADDITIVE)

    @property
    def passed(self) -> bool:
        """True when the policy lets the load go on."""
        if self.breaking:
            return False
        return not (self.additive and self.policy == "fail")

    @property
    def decision(self) -> str:
        """``ok``, ``warn``, ``evolve`` or ``fail``: what the policy makes of this report."""
        if not self.passed:
            return "fail"
        if self.additive and self.policy == "evolve":
            return "evolve"
        if self.changes:
            return "warn"
        return "ok"

    @property
    def columns_to_add(self) -> list[Change]:
        """Additive columns the target gains under ``evolve`` (when the shape itself is not
        broken: broken value rules do not change which columns a load needs)."""
        shape_broken = any(c.rule is None for c in self.breaking)
        if self.policy != "evolve" or shape_broken:
            return []
        return [c for c in self.additive if c.kind == "added"]

    def rules(self) -> list[dict[str, Any]]:
        """Every rule of the contract with its status (passed, broken, warning, not checked) and path."""
        return ([r.to_dict(self.row_unit) for r in self.rule_results] + [n.to_dict() for n in self.not_checked])

    def rules_count(self) -> dict[str, int]:
        counts = {"passed": 0, "broken": 0, "warning": 0, "not checked": len(self.not_checked)}
        for r in self.rule_results:
            counts[r.status] += 1
        return counts

    def summary(self, limit: int = 20) -> str:
        """A human report: one line per change, with its class and the fix, then every rule."""
        head = (f"{self.source} against contract {self.contract} (policy {self.policy}): "
                f"{self.decision.upper()}, {len(self.breaking)} breaking, {len(self.additive)} additive, "
                f"{len(self.of_class(COMPATIBLE))} compatible change(s)"
                + (f", {len(self.of_class(WARNING))} warning(s)" if self.of_class(WARNING) else ""))
        lines = [head]
        for c in self.changes[:limit]:
            col = f" {c.column!r}" if c.column else ""
            lines.append(f"  - [{c.klass}] {c.kind}{col}: {c.detail}. Fix: {c.action}")
        if len(self.changes) > limit:
            lines.append(f"  ... and {len(self.changes) - limit} more (see the JSON report)")
        n = self.rules_count()
        if self.rule_results or self.not_checked:
            lines.append(f"Rules: {n['passed']} passed, {n['broken']} broken, {n['warning']} warning, "
                         f"{n['not checked']} not checked")
            listed = sorted(self.rule_results, key=lambda r: r.status == "passed")
            for r in listed[:SUMMARY_RULES]:
                seen = "" if r.status == "not checked" else f", {r.offending} offending of {r.rows} rows"
                why = f": {r.reason}" if r.reason else ""
                lines.append(f"  {r.status:<11} {r.rule.path}: {r.rule.describe()}{seen}{why}")
            if len(listed) > SUMMARY_RULES:
                lines.append(f"  ... and {len(listed) - SUMMARY_RULES} more checked rules (see the JSON report)")
            for nc in self.not_checked:
                lines.append(f"  not checked {nc.path}: {nc.reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "contract": self.contract, "source": self.source, "policy": self.policy,
            "decision": self.decision, "passed": self.passed, "rows_scanned": self.rows_scanned,
            "changes": [c.to_dict() for c in self.changes],
            "rules_count": self.rules_count(), "rules": self.rules(),
        }


def diff(contract: Contract, source: SourceSchema, policy: str | None = None, rule_policy: str = "fail"
         ) -> DriftReport:
    """Classify every difference between ``contract`` and ``source``.

    :param policy: overrides the contract's ``schema_policy``
    :param rule_policy: ``fail`` (a broken value rule of severity ``error`` is breaking) or
        ``warn`` (every broken value rule is a warning: reported, the check passes)
    """
    if rule_policy not in ("fail", "warn"):
        raise ValueError(f"rule_policy {rule_policy!r}: use 'fail' or 'warn'")
    report = DriftReport(contract.path, source.location, policy or contract.schema_policy,
                         rows_scanned=source.rows, rule_results=list(source.rule_results),
                         not_checked=list(contract.not_checked), row_unit=source.row_unit)
    changes = report.changes
    _rule_changes(report, source, demote=rule_policy == "warn")
    checked_not_null = {r.rule.columns[0] for r in source.rule_results
                        if r.rule.kind == "not_null" and r.status != "not checked"}
    contract_cols = {c.name: c for c in contract.columns}
    src_by_name = {c.name: c for c in source.columns}
    src_by_norm = {normalise(c.name): c for c in source.columns}

    matched: dict[str, str] = {}  # contract name -> source name
    for name in contract_cols:
        if name in src_by_name:
            matched[name] = name
        elif normalise(name) in src_by_norm:
            src_name = src_by_norm[normalise(name)].name
            matched[name] = src_name
            changes.append(Change("name_case", name, COMPATIBLE,
                                  f"the source calls it {src_name!r}",
                                  "none needed, columns are matched ignoring case and spaces; "
                                  f"ask the producer to restore {name!r}"))

    removed = [n for n in contract_cols if n not in matched]
    added = [c for c in source.columns if c.name not in matched.values()]

    # a removed and an added column of the same type: probably a rename
    typed = all(c.type is not None for c in source.columns)
    for name in list(removed):
        want = contract_cols[name].type
        candidates = [a for a in added if typed and a.type == want]
        if not typed:
            # untyped source: pair by position when exactly one column moved out and one in
            pos = contract.column_names.index(name)
            if len(removed) == 1 and len(added) == 1 and pos < len(source.columns) \
                    and source.columns[pos].name == added[0].name:
                candidates = added[:]
        if len(candidates) == 1:
            new = candidates[0]
            removed.remove(name)
            added.remove(new)
            changes.append(Change("renamed", name, BREAKING,
                                  f"{name!r} is gone and {new.name!r} ({new.type or 'untyped'}) appeared in its place",
                                  f"if it is a rename, rename the column in the contract and target to {new.name!r} "
                                  "(a new contract version), or ask the producer to restore it"))
    for name in removed:
        changes.append(Change("removed", name, BREAKING, "column is missing from the source",
                              "restore it upstream, or remove it from the contract (a new major version)"))
    if not contract.columns:  # the contract declares no columns: nothing to compare them to
        added = []
    for col in added:
        changes.append(Change("added", col.name, ADDITIVE,
                              f"new column ({col.type or 'untyped'}) not in the contract",
                              "add it to the contract, or set schema_policy: evolve to add it to the target "
                              "as a nullable column",
                              source_type=str(col.type) if col.type else None))

    for name, src_name in matched.items():
        want = contract_cols[name]
        src = src_by_name[src_name]
        # Parquet strings carry no length: text against varchar(n) is the normal case, and
        # over-long values are caught row by row by the load (quarantine), not here
        lengthless = source.format == "parquet" and src.type is not None and src.type.name == "text" \
            and want.type.name in ("varchar", "char")
        # a Parquet string carrying UUIDs: each value was checked by the scan (invalid_values below)
        carried = source.format == "parquet" and src.type is not None and src.type.name == "text" \
            and want.type.name in TEXT_CARRIES
        # an ODCS integer/number with no format names no width: a source of any width holds it;
        # an unbounded numeric holds every decimal (Parquet cannot declare an unbounded one)
        taken = src.type is not None and (src.type.name in want.accepts or (
            want.type.name == "numeric" and want.type.length is None and src.type.name == "numeric"))
        if src.type is not None and not lengthless and not carried and not taken:
            how = compare(want.type, src.type)
            if how == "widened":
                changes.append(Change("type_widened", name, COMPATIBLE,
                                      f"type is {src.type} in the source, {want.type} in the contract",
                                      f"values still load while they fit {want.type}; widen the contract and "
                                      "target before larger values arrive", source_type=str(src.type)))
            elif how == "narrowed":
                changes.append(Change("type_narrowed", name, BREAKING,
                                      f"type is {src.type} in the source, {want.type} in the contract",
                                      f"cast it back to {want.type} upstream, or change the contract (new major version)",
                                      source_type=str(src.type)))
        scan = source.scans.get(src_name)
        if name in checked_not_null:
            pass  # the not-null rule reported its nulls, with their lines
        elif not want.nullable and scan is not None and scan.nulls:
            changes.append(Change("nullability_relaxed", name, BREAKING,
                                  f"{scan.nulls} null value(s), but the contract says NOT NULL",
                                  "fill the column upstream, or declare it nullable: true in the contract"))
        elif not want.nullable and src.nullable and source.format == "postgres":
            changes.append(Change("nullability_relaxed", name, COMPATIBLE,
                                  "the source column allows NULL (none seen yet), the contract says NOT NULL",
                                  "add NOT NULL to the source column; a NULL arriving would break the contract"))
        if scan is not None and scan.invalid:
            where = "; ".join(f"{source.row_unit} {ln}: {reason}" for ln, _value, reason in scan.examples)
            changes.append(Change("invalid_values", name, BREAKING,
                                  f"{scan.invalid} value(s) do not fit {want.type} ({where})",
                                  "fix the values upstream; rows like these are quarantined by the load"))

    if source.ragged_count:
        where = ", ".join(f"line {ln} has {n} fields" for ln, n in source.ragged)
        changes.append(Change("ragged_rows", None, BREAKING,
                              f"{source.ragged_count} row(s) do not have {len(source.columns)} fields ({where})",
                              "fix the delimiters or quoting upstream"))

    order_src = [c for c in (src.name for src in source.columns) if c in matched.values()]
    order_contract = [matched[n] for n in contract.column_names if n in matched]
    if order_src != order_contract:
        changes.append(Change("reordered", None, COMPATIBLE,
                              f"columns arrive in the order {', '.join(order_src)}",
                              "none needed: columns are loaded by name, not position"))
    rank = {BREAKING: 0, WARNING: 1, ADDITIVE: 2, COMPATIBLE: 3}
    changes.sort(key=lambda c: rank[c.klass])
    return report


def _rule_changes(report: DriftReport, source: SourceSchema, demote: bool = False) -> None:
    """A change for each value rule broken beyond its threshold (``warning`` for a warning rule)."""
    unit = source.row_unit
    for r in report.rule_results:
        if r.status not in ("broken", "warning"):
            continue
        rule = r.rule
        where = "; ".join(f"{unit} {ln}: {v!r}{' ' + note if note else ''}" for ln, v, note in r.examples)
        if rule.kind == "row_count":
            detail = f"{r.rows} rows, the contract ({rule.path}) wants {rule.threshold}"
        else:
            share = f" ({r.observed}%)" if rule.threshold.unit == "percent" else ""
            allowed = "" if rule.threshold.zero else f", at most {rule.threshold} allowed"
            detail = (f"{r.offending} of {r.rows} rows{share} break {rule.describe()} ({rule.path}{allowed})"
                      + (f": {where}" if where else ""))
        action = _FIX.get(rule.kind, "fix the values upstream, or change the rule in the contract "
                                     "(a new contract version)")
        report.changes.append(Change(
            "nullability_relaxed" if rule.kind == "not_null" else "rule_broken",
            ", ".join(rule.columns) or None, BREAKING if r.status == "broken" and not demote else WARNING, detail, action,
            rule=rule.kind, path=rule.path, count=r.offending,
            examples=[{unit: ln, "value": v} for ln, v, _ in r.examples]))
