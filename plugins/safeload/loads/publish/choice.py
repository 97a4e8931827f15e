"""Which publish strategies a load tries, and in what order.

``auto`` tries every strategy in :data:`AUTO`'s order and publishes with the first that
runs on the target: a swap where the target is natively partitioned and a swap is safe,
else DELETE + INSERT. A strategy asked for by name is tried first, and gives way only to
those after it (a swap of a plain table is published by DELETE + INSERT). The stage asks
:func:`choose` which one to build staging for; the publish tries :func:`candidates`, the
strategies of that order that can publish the staging table as it was built.
"""

from __future__ import annotations

import psycopg

from safeload.loads import sql as q
from safeload.loads.publish.delete_insert import DeleteInsert
from safeload.loads.publish.strategy import PublishJob, PublishStrategy, Written
from safeload.loads.publish.swap import Swap
from safeload.loads.spec import LoadSpec

#: the strategies, by the name ``publish_strategy=`` takes
STRATEGIES: dict[str, type[PublishStrategy]] = {s.name: s for s in (Swap, DeleteInsert)}
#: ``auto``'s order: each strategy gives way to the ones after it
AUTO = ("swap", "delete_insert")
#: what ``publish_strategy=`` accepts
PUBLISH_STRATEGIES = ("auto", *STRATEGIES)


def check_strategy(name: str) -> str:
    """``name`` when it is one of :data:`PUBLISH_STRATEGIES`; else a ValueError saying which are."""
    if name not in PUBLISH_STRATEGIES:
        raise ValueError(f"publish_strategy {name!r}: use one of {', '.join(PUBLISH_STRATEGIES)}")
    return name


def order(load: LoadSpec) -> list[PublishStrategy]:
    """The strategies ``load.publish_strategy`` tries, in order."""
    names = AUTO if load.publish_strategy == "auto" else AUTO[AUTO.index(load.publish_strategy):]
    labels = [STRATEGIES[n].label for n in names] + [None]
    return [STRATEGIES[n](load, then=labels[i + 1]) for i, n in enumerate(names)]


def choose(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo) -> PublishStrategy:
    """The strategy the stage builds staging for: the first of the order that runs on the
    target as the stage sees it (the value's partition is looked at again by the publish)."""
    for strategy in order(load):
        blocker = strategy.blocker(conn, info)
        if blocker is None or not strategy.gives_way(info, blocker):
            return strategy
    raise AssertionError(f"no publish strategy runs on {info.name}; the last of every order runs anywhere")


def candidates(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, staging: str) -> list[PublishStrategy]:
    """The strategies of the order that can publish ``staging`` into ``info``, in order."""
    return [s for s in order(load) if s.accepts(conn, info, staging)]


def publish_first(conn: psycopg.Connection, strategies: list[PublishStrategy],
                  job: PublishJob) -> tuple[PublishStrategy, Written]:
    """Publish with the first of ``strategies`` that does not give way."""
    for strategy in strategies:
        written = strategy.publish(conn, job)
        if written is not None:
            return strategy, written
    raise AssertionError(f"every publish strategy gave way for {job.info.name}; the last never does")
