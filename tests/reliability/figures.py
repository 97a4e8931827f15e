"""The reliability suite's figures: each test records what it tried and what held.

``make reliability`` runs the suite at full strength (``SAFELOAD_RELIABILITY=full``) and
prints one table at the end; ``make test`` runs the same tests with fewer trials
(the fast part). A test calls :func:`trials` for its count and :func:`record` once::

    n = trials(fast=3, full=30)
    ...
    record("client crash (SIGKILL)", trials=n, faults=n, held="old or new partition, never a mix; no lock left")
"""

from __future__ import annotations

import os
from dataclasses import dataclass

FULL = os.environ.get("SAFELOAD_RELIABILITY", "fast") == "full"

#: Seed of the suite's random choices (crash points, kill delays). A fresh one per run, so
#: repeated runs cover more points; printed with the table and in every failure message.
#: ``SAFELOAD_RELIABILITY_SEED=N`` replays a run.
SEED = int(os.environ.get("SAFELOAD_RELIABILITY_SEED") or int.from_bytes(os.urandom(4), "big"))


@dataclass(frozen=True)
class Figure:
    area: str
    trials: int
    faults: int
    held: str


FIGURES: list[Figure] = []


def trials(*, fast: int, full: int) -> int:
    """How many trials to run: ``full`` under ``make reliability``, else ``fast``."""
    return full if FULL else fast


def record(area: str, *, trials: int, faults: int, held: str) -> None:
    """Note one line of the table. Call it only after the test's assertions passed."""
    FIGURES.append(Figure(area, trials, faults, held))


def table() -> str:
    rows = [("area", "trials", "faults", "what held")]
    rows += [(f.area, str(f.trials), str(f.faults), f.held) for f in FIGURES]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for n, r in enumerate(rows):
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
        if n == 0:
            lines.append("-" * (sum(widths) + 4 + 2 + max(len(r[3]) for r in rows)))
    return "\n".join(lines)
