"""The interface every publish strategy keeps (:class:`PublishStrategy`), and the values
it trades with the stage and the publishing transaction.

A strategy says three things: what the stage must build for it (:attr:`~PublishStrategy.staging`),
why it cannot run on a target (:meth:`~PublishStrategy.blocker`), and how it replaces
the partition inside the publishing transaction (:meth:`~PublishStrategy.publish`), where
it may give way to the next strategy in :mod:`safeload.loads.publish.choice`'s order. A
new strategy is a new module with a subclass, and a name in that order.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import psycopg

from safeload.errors import LoadRefusedError
from safeload.loads import sql as q
from safeload.loads.partitions import LOOK_UP
from safeload.loads.results import StageResult
from safeload.loads.spec import LoadSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Staging:
    """What the stage builds for a strategy.

    :param as_partition: the staging table becomes the partition: permanent (ATTACH wants
        the parent's persistence), with the parent's indexes and statistics. Otherwise it
        is read once, by the publish, and UNLOGGED (no WAL)
    """

    as_partition: bool = False


@dataclass(frozen=True)
class Blocker:
    """Why a strategy will not publish a partition of a target.

    :param reason: in words, for the log or the refusal
    :param unsafe: running there would replace more than the partition: refused even when
        the strategy is asked for by name
    :param inapplicable: the target is not of the kind the strategy is for (a swap of a
        table that is not natively partitioned): the next strategy runs, even when this
        one is asked for by name, and nothing is logged
    """

    reason: str
    unsafe: bool = False
    inapplicable: bool = False


@dataclass(frozen=True)
class PublishJob:
    """What the publishing transaction hands a strategy: the partition's advisory lock is
    held, the staging table's registry row claimed, and the target re-read.

    :param info: the target as read before the lock (its name, key and partitioning)
    :param now: the target as it is under the lock, evolved columns added
    :param staging: the staging table's name (in ``safeload_staging``)
    :param staged_columns: its columns and their types, in order
    :param rows_loaded: the rows the stage loaded and the gate audited
    :param prepared_by: the name of the strategy whose :meth:`~PublishStrategy.prepare`
        ran before the transaction (the first one tried)
    """

    info: q.TargetInfo
    now: q.TargetInfo
    staging: str
    staged_columns: dict[str, str]
    rows_loaded: int
    prepared_by: str


@dataclass(frozen=True)
class Written:
    """What a strategy wrote: rows replaced and published, and whether the staging table
    is gone (it became the partition) or is left for the transaction to drop."""

    replaced: int
    inserted: int
    staging_consumed: bool = False


class PublishStrategy(ABC):
    """One way of replacing a partition with the staged rows, in the publishing transaction.

    :param load: the load
    :param then: the label of the strategy tried after this one (None: the last), for the
        log line saying why this one gave way
    """

    #: what ``publish_strategy=`` calls it
    name: ClassVar[str]
    #: what the history and the log call it (``replaced 12 row(s) by swap``)
    label: ClassVar[str]
    #: what the stage builds for it
    staging: ClassVar[Staging] = Staging()

    def __init__(self, load: LoadSpec, *, then: str | None = None):
        self.load = load
        self.then = then
        #: asked for by name: it gives way only where it does not apply, and refuses where it is unsafe
        self.insisted = load.publish_strategy == self.name

    @abstractmethod
    def blocker(self, conn: psycopg.Connection, info: q.TargetInfo, *, partition: bool = False,
                old: Any = LOOK_UP) -> Blocker | None:
        """Why this strategy will not publish the load's partition of ``info``; None when it will.

        :param partition: also look at the value's current partition (only under the
            publish's advisory lock, where no other load can change it)
        :param old: that partition (None: there is none), when the caller has looked it up
        """

    def accepts(self, conn: psycopg.Connection, info: q.TargetInfo, staging: str) -> bool:
        """Whether it can publish the staging table ``staging`` (as the stage built it) into ``info``."""
        return True

    def prepare(self, conn: psycopg.Connection, info: q.TargetInfo, staged: StageResult) -> None:
        """Work before the publishing transaction, while no lock on the target is held
        (called for the first strategy tried only)."""

    @abstractmethod
    def publish(self, conn: psycopg.Connection, job: PublishJob) -> Written | None:
        """Replace the partition with the staged rows, in the publishing transaction.

        :returns: what was written, or None when this strategy gave way (``auto`` only:
            the next one runs); a refusal raises :class:`~safeload.errors.LoadRefusedError`
        """

    def gives_way(self, info: q.TargetInfo, blocker: Blocker) -> bool:
        """Whether ``blocker`` makes this strategy give way to the next: always where it does
        not apply, and under ``auto`` (logged); asked for by name, it runs anyway (slower,
        or needs grants), unless running would be unsafe, which is refused."""
        if blocker.inapplicable:
            return True
        if self.insisted:
            if blocker.unsafe:
                raise LoadRefusedError(
                    f"{info.name} partition {self.load.partition_value}: publish_strategy={self.name!r} cannot be "
                    f"used: {blocker.reason}. Use publish_strategy='auto' or 'delete_insert'")
            return False
        log.info("%s partition %s: publishing by %s, not by %s: %s", info.name, self.load.partition_value,
                 self.then, self.label, blocker.reason)
        return True
