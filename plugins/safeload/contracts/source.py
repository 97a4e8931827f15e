"""What a scan found in a source: its columns, their types, nulls, values that do not fit.

Plain data, filled by the readers of :mod:`safeload.contracts.introspect` and read by
the drift diff (:mod:`safeload.contracts.diff`). No Airflow, no pyarrow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from safeload.contracts.types import PgType

#: offending values kept per column or rule, the first by line
MAX_EXAMPLES = 5


@dataclass
class ColumnScan:
    """What a scan saw in one column."""

    nulls: int = 0
    invalid: int = 0
    examples: list[tuple[int, str, str]] = field(default_factory=list)  # (line, value, reason)


@dataclass
class SourceColumn:
    name: str
    type: PgType | None = None  # None: the format has no types (CSV, JSON lines)
    nullable: bool | None = None


@dataclass
class SourceSchema:
    """The shape of a source, and what a typed scan found in it."""

    location: str
    format: str
    columns: list[SourceColumn]
    rows: int | None = None
    scans: dict[str, ColumnScan] = field(default_factory=dict)
    ragged: list[tuple[int, int]] = field(default_factory=list)  # (line, field count)
    ragged_count: int = 0
    scan_engine: str | None = field(default=None, compare=False)  # which engine scanned a CSV
    scan_blocks: dict[str, int] = field(default_factory=dict, compare=False)  # Arrow engine: blocks per path
    #: the contract's value rules as checked on the source (:mod:`safeload.contracts.values`)
    rule_results: list[Any] = field(default_factory=list)
    #: what ``rule_results`` number rows by: ``line`` of a text file, ``row`` of Parquet or a query
    row_unit: str = "line"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]
