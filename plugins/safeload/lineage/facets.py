"""safeload's custom OpenLineage facets: what the standard facets have no shape for.

Named as the spec's custom facets are (``{prefix}{Name}{Entity}Facet``, key
``{prefix}_{name}``), each with ``_producer`` and a ``_schemaURL`` pointing at its JSON
schema, shipped beside this module in ``schemas/`` and published at :data:`SCHEMA_BASE`.

``safeload_partition`` (output dataset)
    the partition(s) a load staged, published or was refused: column, value, how it was
    published (``swap``/``delete_insert``), checksum, rows read, written, quarantined, replaced
``safeload_contract`` (input dataset)
    a contract check of the source: contract, version, owner, policy, decision, drift changes
``safeload_qualityGate`` (run)
    a quality gate's verdict: suite, engine, success, counts by severity, target partition;
    the checks themselves are the standard ``dataQualityAssertions``

Imports openlineage-python: only :mod:`safeload.lineage` modules import this one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attr
from openlineage.client.facet_v2 import InputDatasetFacet, OutputDatasetFacet, RunFacet

from safeload import __version__

#: the project's repository: ``_producer`` of every custom facet, and the home of its schemas
PROJECT_URL = "https://github.com/safeload/safeload"
PRODUCER = f"{PROJECT_URL}/tree/v{__version__}"
#: where a release's facet schemas are published (a tag: immutable, as the spec asks)
SCHEMA_BASE = f"{PROJECT_URL}/blob/v{__version__}/plugins/safeload/lineage/schemas"
SCHEMA_DIR = Path(__file__).with_name("schemas")


def schema_url(name: str) -> str:
    """The ``_schemaURL`` of the custom facet class ``name``."""
    return f"{SCHEMA_BASE}/{name}.json#/$defs/{name}"


@attr.define
class SafeloadPartitionOutputDatasetFacet(OutputDatasetFacet):
    """The partitions of the output a load staged, published or was refused.

    Each partition: ``value``, ``state`` (``staged``, ``published`` or ``refused``) and, as
    known, ``publishedBy``, ``checksum``, ``rowsSource``, ``rowsWritten``,
    ``rowsQuarantined``, ``rowsReplaced``, ``addedColumns``, ``stagingTable``,
    ``loadHistoryId``.
    """

    partitionColumn: str  # noqa: N815 - the spec's camelCase
    partitions: list[dict[str, Any]]

    def __attrs_post_init__(self) -> None:
        self._producer = self._producer or PRODUCER
        self._schemaURL = self._get_schema()

    @staticmethod
    def _get_schema() -> str:
        return schema_url("SafeloadPartitionOutputDatasetFacet")


@attr.define
class SafeloadContractInputDatasetFacet(InputDatasetFacet):
    """A contract check of the source: the contract's identity and the check's decision."""

    contract: str
    dataset: str
    version: str
    policy: str
    decision: str
    passed: bool
    changes: list[dict[str, Any]]
    owner: str | None = attr.field(default=None)
    rowsScanned: int | None = attr.field(default=None)  # noqa: N815

    def __attrs_post_init__(self) -> None:
        self._producer = self._producer or PRODUCER
        self._schemaURL = self._get_schema()

    @staticmethod
    def _get_schema() -> str:
        return schema_url("SafeloadContractInputDatasetFacet")


@attr.define
class SafeloadQualityGateRunFacet(RunFacet):
    """A quality gate's verdict; ``success`` is false when a critical check failed (the
    partition is then not published)."""

    success: bool
    engine: str
    evaluated: int
    failedCritical: int  # noqa: N815
    failedWarning: int  # noqa: N815
    failedInfo: int  # noqa: N815
    suite: str | None = attr.field(default=None)
    target: str | None = attr.field(default=None)
    partitionValue: str | None = attr.field(default=None)  # noqa: N815
    resultLocation: str | None = attr.field(default=None)  # noqa: N815

    def __attrs_post_init__(self) -> None:
        self._producer = self._producer or PRODUCER
        self._schemaURL = self._get_schema()

    @staticmethod
    def _get_schema() -> str:
        return schema_url("SafeloadQualityGateRunFacet")


CUSTOM_FACETS = (SafeloadPartitionOutputDatasetFacet, SafeloadContractInputDatasetFacet, SafeloadQualityGateRunFacet)
