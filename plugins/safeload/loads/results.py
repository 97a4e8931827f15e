"""What a stage and a publish did (:class:`StageResult`, :class:`PublishResult`): plain,
JSON-serialisable records, so that they can travel through XCom between the tasks of a
write-audit-publish DAG."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StageResult:
    """What ``stage()`` did; JSON-serialisable, so it can travel through XCom."""

    target: str
    partition_value: str
    staging_table: str
    run_key: str
    source: str
    rows_source: int
    rows_loaded: int
    rows_quarantined: int
    checksum: str
    add_columns: list[list[str]] = field(default_factory=list)
    path: str = "copy"  # 'copy' (straight COPY) or 'checked' (row by row, with quarantine)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageResult:
        return cls(**d)


@dataclass
class PublishResult:
    """What ``publish()`` did; JSON-serialisable, as :class:`StageResult`."""

    target: str
    partition_value: str
    rows: int
    rows_replaced: int
    rows_quarantined: int
    rows_source: int
    checksum: str
    history_id: int
    added_columns: list[str]
    seconds: float
    #: how the partition was replaced: ``swap`` or ``delete_insert`` (what ``auto`` chose)
    published_by: str = "delete_insert"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
