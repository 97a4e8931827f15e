"""What a failure blocks: the downstream tasks that will not run, the assets not updated.

Pure: no Airflow import. :mod:`safeload.alerts.context` turns a DAG into a
:class:`Node` per task; :func:`blocked` walks downstream from the failed tasks. A task
is blocked when its trigger rule needs its upstream tasks to succeed (``all_success``,
the default, ``none_failed``, ``none_failed_min_one_success``): Airflow marks it
``upstream_failed``, and so on down. Tasks that run anyway (``all_done``,
``one_failed``, teardowns ...) stop the walk. The assets are the outlets of the failed
tasks and of the blocked ones.

.. code-block:: python

    graph = {"load": Node(downstream=("publish",), outlets=("orders",)),
             "publish": Node(outlets=("orders_published",))}
    blocked(graph, ["load"])  # Impact(tasks=["publish"], assets=["orders", "orders_published"])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: Trigger rules under which a failed upstream task stops a task from running.
BLOCKING_RULES = frozenset({"all_success", "none_failed", "none_failed_min_one_success"})


@dataclass(frozen=True)
class Node:
    """One task of a DAG, as far as impact goes.

    :param downstream: the ids of its direct downstream tasks.
    :param trigger_rule: its trigger rule (``all_success`` by default).
    :param outlets: names of the assets it updates.
    """

    downstream: tuple[str, ...] = ()
    trigger_rule: str = "all_success"
    outlets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Impact:
    """The blocked tasks (downstream order) and the assets that will not be updated."""

    tasks: list[str] = field(default_factory=list)
    assets: list[str] = field(default_factory=list)


def blocked(graph: Mapping[str, Node], failed: Iterable[str]) -> Impact:
    """The tasks that will not run because ``failed`` failed, and the assets not updated."""
    failed = [t for t in dict.fromkeys(failed) if t in graph]
    seen = set(failed)
    order: list[str] = []
    queue = list(failed)
    while queue:  # bounded: every task enters the queue at most once
        task = queue.pop(0)
        for child in graph[task].downstream:
            node = graph.get(child)
            if child in seen or node is None or node.trigger_rule not in BLOCKING_RULES:
                continue
            seen.add(child)
            order.append(child)
            queue.append(child)
    assets = list(dict.fromkeys(a for t in failed + order for a in graph[t].outlets))
    return Impact(tasks=order, assets=assets)
