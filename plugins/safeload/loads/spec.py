"""One load as its steps see it (:class:`LoadSpec`).

:class:`~safeload.loads.loader.PartitionLoader` keeps its settings as plain attributes
(an operator may set ``add_columns`` after building it); each of its steps takes a
snapshot of them here and hands it to the units it composes, so that a unit reads the
settings it needs from one frozen value and never reaches back into the loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: ``parallel=`` for "as many COPY streams as pays" (docs/decisions/046-parallel-by-default.md)
AUTO_STREAMS = "auto"


@dataclass(frozen=True)
class LoadSpec:
    """The target, the partition, and the rules one load keeps.

    The fields are :class:`~safeload.loads.loader.PartitionLoader`'s parameters, which
    say what each means; ``started`` is when the loader was made (the history's
    ``started_at``); ``one_unit`` says the load is staged, audited and published by one
    call (:meth:`~safeload.loads.loader.PartitionLoader.run`), so that it may skip
    staging (:mod:`safeload.loads.publish.direct`). ``parallel`` is a number of COPY
    streams or :data:`AUTO_STREAMS` (:func:`safeload.loads.staging.stage.streams_for`).
    """

    table: str
    partition_column: str
    partition_value: str
    run_key: str
    lock_timeout: str = "30s"
    max_bad_rows: int | None = 0
    max_bad_fraction: float | None = None
    allow_empty: bool = False
    add_columns: list[tuple[str, str]] = field(default_factory=list)
    audit: Mapping[str, Any] = field(default_factory=dict)
    stale_staging_after: str = "12 hours"
    publish_strategy: str = "auto"
    started: float = 0.0
    parallel: int | str = AUTO_STREAMS
    one_unit: bool = False
