"""SourceReadyTrigger: the deferrable half of SourceReadySensor, run by the triggerer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class SourceReadyTrigger(BaseTrigger):
    """Polls a file until :func:`safeload.loads.readiness.file_ready` says it is complete.

    Holds only primitives, so it round-trips through :meth:`serialize`.
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
        from safeload.loads.readiness import file_ready

        while True:
            r = await asyncio.to_thread(file_ready, self.path, marker=self.marker, min_bytes=self.min_bytes,
                                        settle_seconds=self.settle_seconds)
            if r.ready:
                yield TriggerEvent({"status": "ready", "reason": r.reason})
                return
            self.log.info("%s", r.reason)
            await asyncio.sleep(self.poll_interval)
