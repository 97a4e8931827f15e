"""SourceReadyTrigger: the deferrable half of SourceReadySensor, run by the triggerer."""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from safeload.loads.readiness import Readiness


def source_readiness(path: str, marker: str | None = None, min_bytes: int = 1,
                     settle_seconds: float = 30.0) -> Readiness:
    """Is the file at ``path`` ready: a local path, or an object storage URL read through
    Airflow's ``ObjectStoragePath`` (``s3://aws_lake@lake/key``: the connection id in the
    user part). ``marker`` may use ``{path}`` and ``{dir}``. A store that cannot be reached
    counts as not ready yet (the reason is logged at each poll)."""
    from safeload.errors import SourceUnavailableError
    from safeload.hooks import stored_source
    from safeload.loads.readiness import Readiness, file_ready, object_ready

    target = stored_source(path)
    if isinstance(target, str):
        return file_ready(target, marker=marker, min_bytes=min_bytes, settle_seconds=settle_seconds)
    text = str(path)
    marked = stored_source(marker.format(path=text, dir=posixpath.dirname(text))) if marker else None
    try:
        return object_ready(target, marker=marked, min_bytes=min_bytes, settle_seconds=settle_seconds)
    except SourceUnavailableError as e:
        return Readiness(False, str(e))


class SourceReadyTrigger(BaseTrigger):
    """Polls a file or an object until :func:`source_readiness` says it is complete.

    Holds only primitives, so it round-trips through :meth:`serialize`; an object's
    connection travels in its URL (``s3://aws_lake@lake/key``).
    """

    def __init__(self, path: str, marker: str | None = None, min_bytes: int = 1, settle_seconds: float = 30.0,
                 poll_interval: float = 30.0):
        super().__init__()
        self.path = path
        self.marker = marker
        self.min_bytes = min_bytes
        self.settle_seconds = settle_seconds
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "safeload.triggers.source.SourceReadyTrigger",
            {"path": self.path, "marker": self.marker, "min_bytes": self.min_bytes,
             "settle_seconds": self.settle_seconds, "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            r = await asyncio.to_thread(source_readiness, self.path, self.marker, self.min_bytes, self.settle_seconds)
            if r.ready:
                yield TriggerEvent({"status": "ready", "reason": r.reason})
                return
            self.log.info("%s", r.reason)
            await asyncio.sleep(self.poll_interval)
