"""Is today's source ready? Pure checks shared by the sensor (poke) and its trigger.

A file is ready when it exists, is at least ``min_bytes`` long, and is complete: either
its marker file exists (``orders.csv.done``, ``_SUCCESS``: the producer's promise), or,
without a marker, it has not been modified for ``settle_seconds`` (a writer still
appending keeps touching it). A SQL source is ready when a query says so, typically
``select max(updated_at) >= %(interval_end)s from ...``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str


def file_ready(path: str, *, marker: str | None = None, min_bytes: int = 1, settle_seconds: float = 30.0,
               now: float | None = None) -> Readiness:
    """Check a file; ``marker`` may use ``{path}`` (e.g. ``"{path}.done"``)."""
    now = time.time() if now is None else now
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Readiness(False, f"{path} does not exist yet")
    if st.st_size < min_bytes:
        return Readiness(False, f"{path} has {st.st_size} bytes, fewer than min_bytes={min_bytes}")
    if marker:
        marker_path = marker.format(path=path, dir=os.path.dirname(path))
        if not os.path.exists(marker_path):
            return Readiness(False, f"{path} exists but its marker {marker_path} does not (still being written?)")
        return Readiness(True, f"{path} ({st.st_size} bytes) and its marker {marker_path} exist")
    age = now - st.st_mtime
    if age < settle_seconds:
        return Readiness(False, f"{path} was modified {age:.0f}s ago; waiting until it is {settle_seconds:.0f}s old "
                                "(set a marker to skip the wait)")
    return Readiness(True, f"{path} ({st.st_size} bytes) unchanged for {age:.0f}s")


def sql_ready(conn, query: str, params: dict | None = None) -> Readiness:
    """Run ``query`` (one row, one column, truthy when ready) on an open connection."""
    row = conn.execute(query, params or {}).fetchone()
    ok = bool(row and row[0])
    return Readiness(ok, f"readiness query returned {row[0] if row else None!r}")
