"""What a source's URL says: whether it is one, the URL as messages and the history may
show it (no secrets), and Azure's own form with the storage account in it.

.. code-block:: python

    display_url("https://acct.blob.core.windows.net/lake/o.csv?sv=2024&sig=SECRET")
    # 'https://acct.blob.core.windows.net/lake/o.csv?sv=2024&sig=***'
    azure_account_url("abfss://lake@acct.dfs.core.windows.net/orders/o.csv")
    # AzureAccount(container='lake', account='acct', endpoint_suffix='core.windows.net')

Pure Python: no Airflow, no fsspec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from safeload.errors import SourceError

#: query parameters that carry a secret: signed URLs' signatures and tokens (Azure SAS,
#: S3 and GCS pre-signed URLs); shown as *** wherever a URL is shown
SECRET_PARAMETERS = frozenset({"sig", "signature", "x-amz-signature", "x-amz-security-token", "x-goog-signature",
                               "token", "access_token", "code"})
#: fsspec's schemes of Azure Blob Storage and ADLS Gen2 (adlfs)
AZURE_SCHEMES = ("abfs", "abfss", "az")
#: Hadoop's Azure Blob driver's schemes: fsspec has no filesystem for them; adlfs reads the same blob
HADOOP_AZURE = ("wasb", "wasbs")


def is_url(source: Any) -> bool:
    """True for a ``scheme://...`` string (a one-letter scheme is a Windows drive, not a URL)."""
    return isinstance(source, str) and "://" in source and len(urlsplit(source).scheme) > 1


def display_url(url: str) -> str:
    """``url`` without its secrets: a password in its user part (``https://user:***@host/...``)
    and a signature or token in its query (``...?sv=2024&sig=***``)."""
    parts = urlsplit(url)
    if parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1))
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAMETERS for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() in SECRET_PARAMETERS else v) for k, v in pairs], safe="*/:")
            parts = parts._replace(query=query)
    return urlunsplit(parts)


@dataclass(frozen=True)
class AzureAccount:
    """The container and storage account an Azure-form URL names.

    :param endpoint_suffix: the cloud's storage domain after ``dfs.`` / ``blob.``:
        ``core.windows.net``, ``core.usgovcloudapi.net``, ``core.chinacloudapi.cn``
    """

    container: str
    account: str
    endpoint_suffix: str

    @property
    def blob_host(self) -> str:
        return f"{self.account}.blob.{self.endpoint_suffix}"


def azure_account_url(url: str) -> AzureAccount | None:
    """The container and account of a URL in Azure's own form,
    ``abfs[s]://container@account.dfs.core.windows.net/key`` (or ``az://``, a ``.blob.``
    host, another cloud's suffix), where the user part is the container, not an Airflow
    connection id; None for any other URL."""
    parts = urlsplit(url)
    labels = (parts.hostname or "").split(".")
    if parts.scheme.lower() in AZURE_SCHEMES and parts.username and len(labels) >= 4 \
            and labels[1] in ("dfs", "blob") and labels[2] == "core":
        return AzureAccount(parts.username, labels[0], ".".join(labels[2:]))
    return None


def azure_storage_options(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """adlfs's options for an Azure-form URL: the account and its cloud's host from the URL
    (adlfs itself knows only the public cloud's), and a refusal where the connection string
    in use is another account's (adlfs would use it and read that account's blob of the
    same name). Any other URL's options are returned as they are.

    :param options: the storage options given (``connection_string`` in them, else the
        environment's ``AZURE_STORAGE_CONNECTION_STRING``, is what adlfs uses first)
    """
    azure = azure_account_url(url)
    if azure is None:
        return options
    given = options.get("connection_string")
    connection_string = given or os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection_string:
        fields = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
        named = fields.get("AccountName")
        if named and named.lower() != azure.account.lower():
            where = "the connection_string storage option" if given else "AZURE_STORAGE_CONNECTION_STRING"
            raise SourceError(f"{display_url(url)}: names the storage account {azure.account!r}, but {where} is "
                              f"for the account {named!r}, whose blob of that name would be read instead; give "
                              f"the URL of {named!r}'s blob, or credentials of {azure.account!r} (its connection "
                              "string, or AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY)")
        return options
    out = {"account_name": azure.account, **options}
    if azure.endpoint_suffix != "core.windows.net":
        out.setdefault("account_host", azure.blob_host)
    return out


def hadoop_azure_hint(url: str) -> str:
    """For a ``wasb[s]://container@account.blob.core.windows.net/key`` URL, the same blob as
    adlfs reads it, to put in an error; "" for any other URL."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in HADOOP_AZURE:
        return ""
    same = urlunsplit(parts._replace(scheme="abfss", netloc=parts.netloc.replace(".blob.", ".dfs.", 1)))
    return f"; fsspec reads Azure Blob Storage as abfss:// (adlfs), e.g. {display_url(same)}"
