"""Is today's source ready? Pure checks shared by the sensor (poke) and its trigger.

A file is ready when it exists, is at least ``min_bytes`` long, and is complete: either
its marker file exists (``orders.csv.done``, ``_SUCCESS``: the producer's promise), or,
without a marker, it has not been modified for ``settle_seconds`` (a writer still
appending keeps touching it). An object in object storage (:func:`object_ready`) is
held to the same rules, asked of the store (its size, marker and last-modified time). A
SQL source is ready when a query says so, typically
``select max(updated_at) >= %(interval_end)s from ...``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from safeload.storage import StoredFile


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str


def file_ready(path: str, *, marker: str | None = None, min_bytes: int = 1, settle_seconds: float = 30.0,
               now: float | None = None) -> Readiness:
    """Check a file; ``marker`` may use ``{path}`` (e.g. ``"{path}.done"``)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Readiness(False, f"{path} does not exist yet")
    marker_path = marker.format(path=path, dir=os.path.dirname(path)) if marker else None
    return _judge(path, st.st_size, st.st_mtime, marker_path,
                  marker_path is not None and os.path.exists(marker_path), min_bytes, settle_seconds, now)


def object_ready(obj: StoredFile, *, marker: StoredFile | None = None, min_bytes: int = 1,
                 settle_seconds: float = 30.0, now: float | None = None) -> Readiness:
    """Check an object in storage, and its marker object when given (a file the producer
    writes last, e.g. ``s3://lake/orders/2024-05-01.csv.done``)."""
    ident = obj.stat()
    if ident is None:
        return Readiness(False, f"{obj} does not exist yet")
    return _judge(str(obj), ident.size or 0, ident.modified, None if marker is None else str(marker),
                  marker is not None and marker.stat() is not None, min_bytes, settle_seconds, now)


def _judge(name: str, size: int, modified: float | None, marker: str | None, marker_exists: bool,
           min_bytes: int, settle_seconds: float, now: float | None) -> Readiness:
    if size < min_bytes:
        return Readiness(False, f"{name} has {size} bytes, fewer than min_bytes={min_bytes}")
    if marker:
        if not marker_exists:
            return Readiness(False, f"{name} exists but its marker {marker} does not (still being written?)")
        return Readiness(True, f"{name} ({size} bytes) and its marker {marker} exist")
    if modified is None:  # a store that does not say when: its objects appear whole
        return Readiness(True, f"{name} ({size} bytes) exists (the store gives no modification time to wait on)")
    age = (time.time() if now is None else now) - modified
    if age < settle_seconds:
        return Readiness(False, f"{name} was modified {age:.0f}s ago; waiting until it is {settle_seconds:.0f}s old "
                                "(set a marker to skip the wait)")
    return Readiness(True, f"{name} ({size} bytes) unchanged for {age:.0f}s")


def sql_ready(conn, query: str, params: dict | None = None) -> Readiness:
    """Run ``query`` (one row, one column, truthy when ready) on an open connection."""
    row = conn.execute(query, params or {}).fetchone()
    ok = bool(row and row[0])
    return Readiness(ok, f"readiness query returned {row[0] if row else None!r}")
