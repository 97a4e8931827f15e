"""The OpenLineage provider's operator interface, for safeload's operators.

An operator takes a mixin below; the provider's listener (when the provider is installed
and configured) calls ``get_openlineage_facets_on_start`` before ``execute`` and
``_on_complete`` or ``_on_failure`` after it. This module imports nothing: the event
builders (and the provider, openlineage-python, psycopg) are imported by those calls,
so a DAG file that imports an operator pays nothing for lineage when it is parsed.

Operators keep what their run did for these calls with :func:`remember` (the staging and
publish results, the gate's report): the calls run in the task's process, or a fork of
it, right after ``execute``, so no XCom or database round trip is needed to find it.
"""

from __future__ import annotations

from typing import Any

_FACTS = "_safeload_lineage_facts"


def remember(op: Any, **facts: Any) -> None:
    """Keep ``facts`` of this run on the operator for its lineage calls."""
    op.__dict__.setdefault(_FACTS, {}).update(facts)


def forget(op: Any) -> None:
    """Start a run with nothing remembered (a task object may run more than once in a process)."""
    op.__dict__[_FACTS] = {}


def facts(op: Any) -> dict[str, Any]:
    """What :func:`remember` kept for this run."""
    return op.__dict__.get(_FACTS, {})


class _Lineage:
    """Routes the provider's three calls to ``safeload.lineage.<module>.<function>(op, moment, ti)``."""

    _lineage_module = ""
    _lineage_function = ""

    def _lineage(self, moment: str, task_instance: Any) -> Any:
        import importlib

        module = importlib.import_module(f"safeload.lineage.{self._lineage_module}")
        return getattr(module, self._lineage_function)(self, moment, task_instance)

    def pre_execute(self, context: Any) -> Any:
        forget(self)
        return super().pre_execute(context)  # type: ignore[misc]

    def get_openlineage_facets_on_start(self) -> Any:
        return self._lineage("start", None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return self._lineage("complete", task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self._lineage("failure", task_instance)


class ContractCheckLineage(_Lineage):
    """The source (file, table or query tables) with the contract's schema, owner and the
    check's decision and drift (``safeload_contract``)."""

    _lineage_module, _lineage_function = "checks", "contract_check"


class QualityGateLineage(_Lineage):
    """The checked table with ``dataQualityAssertions`` and ``dataQualityMetrics``."""

    _lineage_module, _lineage_function = "checks", "quality_gate"


class PartitionLoadLineage(_Lineage):
    """Source → staging (stage), staging → target (publish), source → target (overwrite)."""

    _lineage_module, _lineage_function = "loads", "partition_load"


class ReloadLineage(_Lineage):
    """An incremental reload: the source query's tables → the target's republished partitions."""

    _lineage_module, _lineage_function = "loads", "reload"


class PlanLineage(_Lineage):
    """An incremental plan: what it compared (the source query's tables and the target)."""

    _lineage_module, _lineage_function = "loads", "plan"


class SCD2Lineage(_Lineage):
    """Snapshots → the SCD2 dimension."""

    _lineage_module, _lineage_function = "loads", "scd2"
