"""Data contracts: the declared shape of a dataset, read from YAML.

A contract is the single source of truth for a dataset: the schema check holds the
source against it, the loader creates and evolves the target from it, and the quality
gate derives expectations from its column rules.

.. code-block:: yaml

    dataset: orders
    version: 1.2.0
    owner: commerce-data
    target: {table: public.orders, partition_column: order_date}
    schema_policy: warn          # what to do with additive drift: fail | warn | evolve
    columns:
      - {name: order_id, type: bigint, nullable: false, primary_key: true}
      - {name: amount, type: "numeric(12,2)", nullable: false, min: 0}
      - {name: currency, type: "char(3)", allowed_values: [EUR, USD, GBP]}

Pure Python: no Airflow import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from safeload.contracts.rules import NotChecked, Rule, Threshold
from safeload.contracts.types import PgType, TypeSyntaxError, parse_type
from safeload.errors import ContractError
from safeload.identifiers import IdentifierError, validate_identifier, validate_table_name

POLICIES = ("fail", "warn", "evolve")
_TOP_KEYS = {
    "dataset", "version", "owner", "description", "columns", "target", "schema_policy",
    "source", "quality",
}
_COLUMN_KEYS = {
    "name", "type", "nullable", "primary_key", "unique", "description", "allowed_values",
    "min", "max", "pattern", "mostly",
}


@dataclass(frozen=True)
class Column:
    """One column of a contract.

    :param name: column name, a valid PostgreSQL identifier
    :param type: PostgreSQL type
    :param nullable: whether NULL is allowed (default true, as in SQL)
    :param primary_key: part of the primary key (implies unique, not null)
    :param unique: values are unique within a partition
    :param allowed_values: the closed set of values, or None
    :param min: inclusive lower bound, or None
    :param max: inclusive upper bound, or None
    :param pattern: a regular expression every value matches (PostgreSQL ``~`` syntax)
    :param mostly: the fraction of rows that must satisfy the column's value rules
        (None: every row)
    :param accepts: names of other source types the contract takes as its own: an ODCS
        ``integer`` or ``number`` with no format names no width, so a typed source (Parquet)
        of any integer (or number) width holds it (decision 051)
    """

    name: str
    type: PgType
    nullable: bool = True
    primary_key: bool = False
    unique: bool = False
    description: str = ""
    allowed_values: tuple[Any, ...] | None = None
    min: Any = None
    max: Any = None
    pattern: str | None = None
    mostly: float | None = None
    accepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Contract:
    """A parsed, validated data contract. Build it with :func:`safeload.contracts.files.load_contract`."""

    dataset: str
    version: str
    owner: str
    columns: tuple[Column, ...]
    table: str | None = None
    partition_column: str | None = None
    schema_policy: str = "fail"
    description: str = ""
    path: str = "<memory>"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    #: the value rules, each with its path in the contract (:mod:`safeload.contracts.rules`)
    rules: tuple[Rule, ...] = field(default=(), compare=False)
    #: what the contract declares that is not checked, with the reason
    not_checked: tuple[NotChecked, ...] = field(default=(), compare=False)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in self.columns if c.primary_key]


def parse_contract(doc: Any, source: str = "<memory>") -> Contract:
    """Validate a contract already read into Python objects (see :func:`safeload.contracts.files.load_contract`)."""

    def fail(where: str, msg: str) -> ContractError:
        return ContractError(f"{source}: {where}: {msg}")

    if not isinstance(doc, dict):
        raise fail("top level", "a contract is a YAML mapping with at least 'dataset' and 'columns'")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        # YAML keys need not be strings (``1:``, ``null:``); sort and print them as text
        raise fail(", ".join(sorted(map(str, unknown))),
                   f"unknown field; the fields are: {', '.join(sorted(_TOP_KEYS))}")
    for key in ("dataset", "columns"):
        if key not in doc:
            raise fail(key, "required field is missing")
    dataset = doc["dataset"]
    if not isinstance(dataset, str) or not dataset.strip():
        raise fail("dataset", "must be a non-empty string naming the dataset")
    policy = doc.get("schema_policy", "fail")
    if policy not in POLICIES:
        raise fail("schema_policy", f"{policy!r} is not a policy; use one of {', '.join(POLICIES)}")

    cols_doc = doc["columns"]
    if not isinstance(cols_doc, list) or not cols_doc:
        raise fail("columns", "must be a non-empty list of columns, each with 'name' and 'type'")
    columns: list[Column] = []
    seen: set[str] = set()
    for i, c in enumerate(cols_doc):
        where = f"columns[{i}]"
        if not isinstance(c, dict):
            raise fail(where, "each column is a mapping with at least 'name' and 'type'")
        if "name" in c:
            where = f"columns[{i}] ({c['name']})"
        unknown = set(c) - _COLUMN_KEYS
        if unknown:
            raise fail(f"{where}.{sorted(map(str, unknown))[0]}",
                       f"unknown column field; the fields are: {', '.join(sorted(_COLUMN_KEYS))}")
        for key in ("name", "type"):
            if key not in c:
                raise fail(where, f"'{key}' is missing")
        try:
            name = validate_identifier(str(c["name"]))
        except IdentifierError as e:
            raise fail(f"{where}.name", str(e)) from None
        if name in seen:
            raise fail(f"{where}.name", f"column {name!r} is declared twice; remove one")
        seen.add(name)
        try:
            pg_type = parse_type(str(c["type"]))
        except TypeSyntaxError as e:
            raise fail(f"{where}.type", str(e)) from None
        for flag in ("nullable", "primary_key", "unique"):
            if flag in c and not isinstance(c[flag], bool):
                raise fail(f"{where}.{flag}", f"must be true or false, not {c[flag]!r}")
        allowed = c.get("allowed_values")
        if allowed is not None and (not isinstance(allowed, list) or not allowed):
            raise fail(f"{where}.allowed_values", "must be a non-empty list of values")
        if allowed is not None and any(isinstance(v, (list, dict)) for v in allowed):
            raise fail(f"{where}.allowed_values", "must list plain values (strings, numbers, dates), not lists "
                                                  "or mappings")
        primary_key = c.get("primary_key", False)
        nullable = c.get("nullable", not primary_key)
        if primary_key and nullable:
            raise fail(f"{where}.nullable", "a primary key column cannot be nullable; drop 'nullable: true'")
        if c.get("pattern") is not None and not isinstance(c["pattern"], str):
            raise fail(f"{where}.pattern", f"must be a regular expression (a string), not {c['pattern']!r}")
        mostly = c.get("mostly")
        if mostly is not None and (isinstance(mostly, bool) or not isinstance(mostly, (int, float))
                                   or not 0 < mostly <= 1):
            raise fail(f"{where}.mostly", f"must be a fraction of rows, 0 < mostly <= 1 (e.g. 0.99), not {mostly!r}")
        lo, hi = c.get("min"), c.get("max")
        for bound, value in (("min", lo), ("max", hi)):
            if isinstance(value, (list, dict)):
                raise fail(f"{where}.{bound}", f"must be a plain value (a number, date or string), not {value!r}")
        if lo is not None and hi is not None:
            try:
                if lo > hi:
                    raise fail(f"{where}.min", f"min {lo!r} is greater than max {hi!r}")
            except TypeError:
                raise fail(f"{where}.min", "min and max must be comparable values") from None
        columns.append(Column(
            name=name, type=pg_type, nullable=nullable, primary_key=primary_key,
            unique=c.get("unique", False), description=str(c.get("description", "")),
            allowed_values=tuple(allowed) if allowed is not None else None,
            min=lo, max=hi, pattern=c.get("pattern"), mostly=mostly,
        ))

    target = doc.get("target") or {}
    if not isinstance(target, dict):
        raise fail("target", "must be a mapping with 'table' and optionally 'partition_column'")
    table = target.get("table")
    if table is not None and not isinstance(table, str):
        raise fail("target.table", f"must be a table name like 'public.orders', not {table!r}")
    if table is not None:
        try:
            validate_table_name(str(table))
        except IdentifierError as e:
            raise fail("target.table", str(e)) from None
    partition_column = target.get("partition_column")
    if partition_column is not None and (not isinstance(partition_column, str) or partition_column not in seen):
        raise fail("target.partition_column",
                   f"{partition_column!r} is not one of the contract's columns ({', '.join(seen)})")
    return Contract(
        dataset=dataset, version=str(doc.get("version", "0")), owner=str(doc.get("owner", "")),
        columns=tuple(columns), table=table, partition_column=partition_column,
        schema_policy=policy, description=str(doc.get("description", "")), path=source,
        extra={k: doc[k] for k in ("source", "quality") if k in doc},
        rules=column_rules(columns, [f"columns[{i}]" for i in range(len(columns))], native=True),
        not_checked=(NotChecked("quality", "quality", "the top-level 'quality' section is for the quality gate "
                                "(safeload gate), not checked by the contract check"),) if doc.get("quality") else (),
    )


def column_rules(columns: list[Column] | tuple[Column, ...], paths: list[str], *, native: bool) -> tuple[Rule, ...]:
    """The value rules of safeload's column fields: not null, keys, bounds, allowed values, pattern.

    :param paths: where each column is declared (``columns[3]``); a rule's path adds the field
    :param native: safeload's field names (``nullable``, ``min``); else only the key, which
        the ODCS reader does not build itself
    """
    rules: list[Rule] = []
    pk = [(c, p) for c, p in zip(columns, paths) if c.primary_key]
    for c, p in pk:
        rules.append(Rule("not_null", (c.name,), f"{p}.{'primary_key' if native else 'primaryKey'}",
                          label="primary key"))
    if pk:
        rules.append(Rule("primary_key", tuple(c.name for c, _ in pk),
                          " + ".join(f"{p}.{'primary_key' if native else 'primaryKey'}" for _, p in pk),
                          label="primary key"))
    if not native:
        return tuple(rules)
    for c, p in zip(columns, paths):
        t = Threshold("mustBeLessOrEqualTo", round((1 - c.mostly) * 100, 9), "percent") if c.mostly else Threshold()
        if not c.nullable and not c.primary_key:
            rules.append(Rule("not_null", (c.name,), f"{p}.nullable", threshold=t, label="nullable: false"))
        if c.unique and not (c.primary_key and len(pk) == 1):
            rules.append(Rule("unique", (c.name,), f"{p}.unique", threshold=t, label="unique"))
        if c.min is not None:
            rules.append(Rule("minimum", (c.name,), f"{p}.min", c.min, threshold=t, label="min"))
        if c.max is not None:
            rules.append(Rule("maximum", (c.name,), f"{p}.max", c.max, threshold=t, label="max"))
        if c.allowed_values is not None:
            rules.append(Rule("allowed_values", (c.name,), f"{p}.allowed_values", c.allowed_values, threshold=t,
                              label="allowed_values"))
        if c.pattern is not None:
            rules.append(Rule("pattern", (c.name,), f"{p}.pattern", c.pattern, threshold=t, label="pattern"))
    return tuple(rules)
