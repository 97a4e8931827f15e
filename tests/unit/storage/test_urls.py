"""What a source's URL says (safeload.urls): URL or path, the URL without its secrets,
Azure's own form and the adlfs options it takes; and what a StoredFile says of a URL
whose filesystem cannot be set up."""

from __future__ import annotations

import pytest

from safeload.errors import SourceError
from safeload.storage import StoredFile
from safeload.urls import AzureAccount, azure_account_url, azure_storage_options, display_url, is_url

#: a storage account key's shape (base64), not a real account's
KEY = "a2V5IG9mIG5vIGFjY291bnQ="
#: a new filesystem, not fsspec's cached one of the same arguments (made under another environment)
FRESH = {"skip_instance_cache": True}


@pytest.mark.parametrize(("text", "url"), [
    pytest.param("s3://lake/x.csv", True, id="s3"),
    pytest.param("file:///data/x.csv", True, id="file-url"),
    pytest.param("/data/x.csv", False, id="posix-path"),
    pytest.param("C:\\data\\x.csv", False, id="windows-drive"),
    pytest.param("c:/data/x.csv", False, id="windows-drive-slash"),
])
def test_is_url(text, url):
    assert is_url(text) is url


def test_a_password_in_the_url_is_never_shown():
    assert display_url("https://me:s3cret@host/x.csv") == "https://me:***@host/x.csv"
    assert str(StoredFile("https://me:s3cret@host/x.csv")) == "https://me:***@host/x.csv"
    assert display_url("s3://aws_lake@lake/x.csv") == "s3://aws_lake@lake/x.csv"


@pytest.mark.parametrize(("url", "shown"), [
    pytest.param("https://acct.blob.core.windows.net/lake/o.csv?sv=2024-08-04&sr=b&sig=c2VjcmV0%2B",
                 "https://acct.blob.core.windows.net/lake/o.csv?sv=2024-08-04&sr=b&sig=***", id="azure-sas"),
    pytest.param("https://lake.s3.amazonaws.com/o.csv?X-Amz-Expires=600&X-Amz-Signature=abc123",
                 "https://lake.s3.amazonaws.com/o.csv?X-Amz-Expires=600&X-Amz-Signature=***", id="s3-presigned"),
    pytest.param("https://storage.googleapis.com/lake/o.csv?X-Goog-Signature=abc",
                 "https://storage.googleapis.com/lake/o.csv?X-Goog-Signature=***", id="gcs-signed"),
    pytest.param("https://host/o.csv?version=3", "https://host/o.csv?version=3", id="no-secret"),
])
def test_a_signature_or_token_in_the_query_is_never_shown(url, shown):
    assert display_url(url) == shown
    assert str(StoredFile(url)) == shown


@pytest.mark.parametrize(("url", "account"), [
    ("abfss://lake@acct.dfs.core.windows.net/orders/o.csv", AzureAccount("lake", "acct", "core.windows.net")),
    ("az://lake@acct.blob.core.windows.net/o.csv", AzureAccount("lake", "acct", "core.windows.net")),
    ("ABFSS://lake@Acct.dfs.core.windows.net/o.csv", AzureAccount("lake", "acct", "core.windows.net")),
    ("abfs://lake@acct.dfs.core.usgovcloudapi.net/o.csv", AzureAccount("lake", "acct", "core.usgovcloudapi.net")),
    ("abfs://lake@acct.dfs.core.chinacloudapi.cn/o.csv", AzureAccount("lake", "acct", "core.chinacloudapi.cn")),
    ("abfs://wasb_lake@lake/orders/o.csv", None),  # Airflow's connection id in the user part
    ("abfs://lake/orders/o.csv", None),
    ("s3://lake@acct.dfs.core.windows.net/o.csv", None),
])
def test_azures_own_url_form_is_told_from_an_airflow_connection_id(url, account):
    assert azure_account_url(url) == account


def test_an_azure_url_gives_adlfs_its_account_and_its_clouds_host(monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    assert azure_storage_options("abfss://lake@acct.dfs.core.windows.net/o.csv", {}) == {"account_name": "acct"}
    assert azure_storage_options("abfss://lake@acct.dfs.core.usgovcloudapi.net/o.csv", {"account_key": KEY}) == {
        "account_name": "acct", "account_host": "acct.blob.core.usgovcloudapi.net", "account_key": KEY}
    assert azure_storage_options("abfs://lake/o.csv", {"anon": True}) == {"anon": True}  # not Azure's form
    assert azure_storage_options("s3://lake/o.csv", {}) == {}


def test_a_government_cloud_url_is_read_from_that_clouds_endpoint(monkeypatch):
    """adlfs alone would send the request to the public cloud's host (it knows only
    ``.core.windows.net``); no request is made here, the client's address is read."""
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", KEY)
    fs, path = StoredFile("abfss://lake@acct.dfs.core.usgovcloudapi.net/orders/o.csv",
                          storage_options=FRESH)._filesystem()
    assert (fs.account_url, path) == ("https://acct.blob.core.usgovcloudapi.net", "lake/orders/o.csv")


@pytest.mark.parametrize("given", ["option", "environment"])
def test_a_connection_string_of_another_account_is_refused(monkeypatch, given):
    """adlfs uses a connection string before the URL's account: it would read that
    account's blob of the same name."""
    other = f"DefaultEndpointsProtocol=https;AccountName=other;AccountKey={KEY};EndpointSuffix=core.windows.net"
    options = {"connection_string": other} if given == "option" else {}
    if given == "environment":
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", other)
    where = "the connection_string storage option" if given == "option" else "AZURE_STORAGE_CONNECTION_STRING"
    with pytest.raises(SourceError, match=rf"abfss://lake@acct.dfs.core.windows.net/o.csv: names the storage account "
                                          rf"'acct', but {where} is for the account 'other'"):
        StoredFile("abfss://lake@acct.dfs.core.windows.net/o.csv", storage_options=options).open()


def test_a_filesystem_that_cannot_be_set_up_names_its_credentials_not_a_package(monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "garbage")
    with pytest.raises(SourceError, match=r"az://lake/o.csv: the az:// filesystem could not be set up \(.*\); check "
                                          r"its credentials and storage options"):
        StoredFile("az://lake/o.csv", storage_options=FRESH).open()


def test_an_unknown_scheme_says_so_and_hadoops_azure_scheme_names_the_same_blob():
    with pytest.raises(SourceError, match=r"nowhere://lake/o.csv: fsspec knows no filesystem for nowhere://; give a "
                                          r"URL of an object store"):
        StoredFile("nowhere://lake/o.csv").open()
    with pytest.raises(SourceError, match=r"fsspec knows no filesystem for wasbs://; fsspec reads Azure Blob Storage "
                                          r"as abfss:// \(adlfs\), e.g. abfss://lake@acct.dfs.core.windows.net/o.csv"):
        StoredFile("wasbs://lake@acct.blob.core.windows.net/o.csv").open()


def test_a_scheme_in_capitals_is_read_as_its_lower_case():
    assert StoredFile("S3://lake/o.csv").target == "s3://lake/o.csv"
