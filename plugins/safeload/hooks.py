"""Airflow connections turned into what the cores take: the warehouse's psycopg
connection, and an object in storage (:func:`stored_source`) read through Airflow's
``ObjectStoragePath``.

Secrets come only from Airflow Connections; the URI built here holds the password, so
it is passed to libraries, never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from safeload.urls import AZURE_SCHEMES

if TYPE_CHECKING:
    import psycopg
    from airflow.sdk import ObjectStoragePath

    from safeload.storage import StoredFile


def warehouse_conninfo(conn_id: str) -> str:
    """A ``postgresql://`` URI for the Airflow connection ``conn_id``."""
    from urllib.parse import quote, urlencode

    from airflow.sdk import BaseHook

    c = BaseHook.get_connection(conn_id)
    extra = c.extra_dejson or {}
    params = {k: v for k, v in extra.items() if k in ("sslmode", "sslrootcert", "sslcert", "sslkey",
                                                     "options", "application_name", "connect_timeout")}
    auth = quote(c.login or "", safe="")
    if c.password:
        auth += ":" + quote(c.password, safe="")
    query = ("?" + urlencode(params)) if params else ""
    return f"postgresql://{auth}{'@' if auth else ''}{c.host or 'localhost'}:{c.port or 5432}/{quote(c.schema or 'postgres')}{query}"


def warehouse_connect(conn_id: str) -> Callable[[], psycopg.Connection]:
    """A factory of new psycopg connections to ``conn_id`` (the loader opens its own)."""
    import psycopg

    conninfo = warehouse_conninfo(conn_id)
    return lambda: psycopg.connect(conninfo, application_name="safeload")


def stored_source(source: object, *, version: str | None = None) -> str | StoredFile:
    """A source as the cores read it: a local path as it is; a URL (``s3://aws_lake@lake/key``:
    the connection id in the user part, Airflow's convention; ``s3://lake/key``: no
    connection, the client library's own credentials) or an ``ObjectStoragePath`` as a
    :class:`~safeload.storage.StoredFile` reading through Airflow's filesystem for it.

    :param version: the version (ETag, generation) the object must be, e.g. the one the
        contract check read; another one refuses the read

    A scheme that no installed provider gives Airflow a filesystem for (``gs://`` without
    the google provider) is read through fsspec's own filesystem for it (gcsfs, with its
    own credentials) when the URL names no connection; naming one, it is refused.
    """
    import os

    from airflow.sdk import ObjectStoragePath

    from safeload.errors import SourceError
    from safeload.storage import StoredFile
    from safeload.urls import azure_account_url, display_url, hadoop_azure_hint, is_url

    if isinstance(source, StoredFile):
        return source
    if isinstance(source, ObjectStoragePath):
        return _through_airflow(source, version)
    if hasattr(source, "fs") and hasattr(source, "path"):  # any other UPath carries its filesystem
        return StoredFile(source, expect_version=version)
    text = os.fspath(source) if isinstance(source, os.PathLike) else str(source)
    if not is_url(text):
        return text
    if azure_account_url(text):
        # Azure's own form names the container in the user part; ObjectStoragePath would take
        # it for a connection id and drop the account: adlfs reads it as written
        return StoredFile(text, expect_version=version)
    try:
        path = ObjectStoragePath(text)
    except ValueError as e:  # a scheme fsspec does not know ("Unsupported filesystem")
        raise SourceError(f"{display_url(text)}: {e}{hadoop_azure_hint(text)}; give a URL of an object store fsspec "
                          "reads (s3://, gs://, abfs://, file://...) or a local path") from None
    return _through_airflow(path, version)


#: the Airflow provider that gives ObjectStoragePath a filesystem for a scheme
_PROVIDERS = {"s3": "apache-airflow-providers-amazon[s3fs]", "gs": "apache-airflow-providers-google",
              "gcs": "apache-airflow-providers-google",
              **dict.fromkeys(AZURE_SCHEMES, "apache-airflow-providers-microsoft-azure")}


def _through_airflow(path: ObjectStoragePath, version: str | None) -> StoredFile:
    """Read ``path`` through Airflow's filesystem for its scheme, or fsspec's own when no
    provider registers one and the path names no connection."""
    from airflow.sdk.io import has_fs

    from safeload.errors import SourceError
    from safeload.storage import StoredFile
    from safeload.urls import display_url

    if has_fs(path.protocol):
        return StoredFile(path, expect_version=version)
    if path.conn_id:
        provider = _PROVIDERS.get(path.protocol, "the Airflow provider of that store")
        raise SourceError(f"{display_url(str(path))}: names the Airflow connection {path.conn_id!r}, but no installed "
                          f"provider gives Airflow a filesystem for {path.protocol}://; install {provider}, or "
                          "leave the connection out to use the filesystem library's own credentials")
    return StoredFile(str(path), expect_version=version)
