"""What a failure blocks: downstream tasks by trigger rule, and the assets not updated."""

from __future__ import annotations

from safeload.alerts.impact import Node, blocked

#   extract -> load -> publish (outlet orders) -> report
#                   \-> cleanup (all_done)     \-> notify (one_failed)
#   other (no relation)
GRAPH = {
    "extract": Node(downstream=("load",)),
    "load": Node(downstream=("cleanup", "publish"), outlets=("staging.orders",)),
    "publish": Node(downstream=("notify", "report"), outlets=("orders",)),
    "report": Node(trigger_rule="none_failed", outlets=("orders_report",)),
    "cleanup": Node(trigger_rule="all_done", downstream=("after_cleanup",)),
    "after_cleanup": Node(),
    "notify": Node(trigger_rule="one_failed"),
    "other": Node(outlets=("elsewhere",)),
}


def test_blocked_tasks_follow_the_trigger_rules_downstream():
    impact = blocked(GRAPH, ["extract"])
    assert impact.tasks == ["load", "publish", "report"]  # cleanup and notify run anyway
    assert impact.assets == ["staging.orders", "orders", "orders_report"]


def test_the_failed_tasks_own_outlets_count_and_failed_tasks_are_not_listed_as_blocked():
    impact = blocked(GRAPH, ["load", "publish"])
    assert impact.tasks == ["report"]
    assert impact.assets == ["staging.orders", "orders", "orders_report"]


def test_a_leaf_or_an_unknown_task_blocks_nothing():
    assert blocked(GRAPH, ["other"]).tasks == [] and blocked(GRAPH, ["other"]).assets == ["elsewhere"]
    assert blocked(GRAPH, ["not_in_the_dag"]).tasks == []


def test_a_wide_dag_is_walked_once():
    graph = {f"t{i}": Node(downstream=tuple(f"t{j}" for j in range(i + 1, min(i + 50, 2000))))
             for i in range(2000)}
    assert len(blocked(graph, ["t0"]).tasks) == 1999
