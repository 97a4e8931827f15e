"""Dataset identifiers as the OpenLineage naming spec gives them. Pure: no Airflow.

.. code-block:: python

    source_dataset("/data/orders/2024-05-01.csv")   # ("file", "/data/orders/2024-05-01.csv")
    source_dataset("file://etl-1/data/o.csv")       # ("file://etl-1", "/data/o.csv")
    source_dataset("s3://landing/orders/o.csv")     # ("s3://landing", "orders/o.csv")
    source_dataset("abfs://lake@acct.dfs.core.windows.net/o.csv")
    # ("abfss://lake@acct.dfs.core.windows.net", "o.csv")
    table_name("warehouse", "public", "orders")     # "warehouse.public.orders"

A local path names the file in the ``file`` namespace, as the spec's local file system
and Airflow's own file assets (``Asset("file:///data/...")``) do, so a producer DAG's
event and safeload's meet on the same dataset. PostgreSQL tables are named by the
provider's own naming function (:mod:`safeload.lineage.provider`); :func:`table_name` is
the spec's ``{database}.{schema}.{table}`` for the parts it is given.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from safeload.urls import AZURE_SCHEMES, azure_account_url

#: object stores whose namespace is ``scheme://bucket`` and name the key (no leading slash)
OBJECT_STORES = ("s3", "s3a", "gs", "gcs", *AZURE_SCHEMES)


def source_dataset(source: object) -> tuple[str, str]:
    """``(namespace, name)`` of a file or object source.

    :param source: a local path, a ``file://host/path`` URI, or an object store URI
        (``s3://bucket/key``, ``gs://bucket/key``, or an ``ObjectStoragePath``; Airflow's
        connection id in the user part, ``s3://aws_lake@bucket/key``, is not part of the
        name; Azure's ``abfs[s]://container@account.dfs.core.windows.net/key`` is the spec's
        ABFSS; other ``scheme://host/path`` URIs keep their scheme and host as the namespace,
        without a user part)
    """
    source = str(source)
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if len(scheme) <= 1:  # a local path (a one-letter scheme is a Windows drive)
        return "file", os.path.abspath(source)
    if scheme == "file":
        return (f"file://{parts.netloc}" if parts.netloc else "file"), parts.path
    azure = azure_account_url(source)
    if azure:  # the spec's ABFSS: the container and the storage account's dfs host
        return (f"abfss://{azure.container}@{azure.account}.dfs.{azure.endpoint_suffix}",
                parts.path.lstrip("/"))
    host = parts.netloc.rpartition("@")[2]  # never a connection id or a password in a name
    if scheme in OBJECT_STORES:
        return f"{'gs' if scheme == 'gcs' else scheme}://{host}", parts.path.lstrip("/")
    return f"{scheme}://{host}", parts.path


def table_name(database: str | None, schema: str, table: str) -> str:
    """``database.schema.table`` (``schema.table`` when the database is unknown)."""
    return ".".join(p for p in (database, schema, table) if p)


def split_table(table: str) -> tuple[str, str]:
    """``schema.table`` (or ``table``, in ``public``) as ``(schema, table)``."""
    schema, _, name = table.rpartition(".")
    return schema or "public", name
