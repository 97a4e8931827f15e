"""Dataset names of sources, as the OpenLineage naming spec (openlineage-python's naming module) gives them."""

from __future__ import annotations

import os

import pytest
from openlineage.client.naming.dataset import ABFSS, GCS, S3, LocalFileSystem, RemoteFileSystem

from safeload.lineage.naming import source_dataset, split_table, table_name


@pytest.mark.parametrize(
    ("source", "spec"),
    [
        pytest.param("/data/orders/2024-05-01.csv", LocalFileSystem(path="/data/orders/2024-05-01.csv"), id="local"),
        pytest.param("file:///data/o.csv.gz", LocalFileSystem(path="/data/o.csv.gz"), id="file-uri"),
        pytest.param("file://etl-1/data/o.csv", RemoteFileSystem(host="etl-1", path="/data/o.csv"), id="remote"),
        pytest.param("s3://landing/orders/o.parquet", S3(bucket_name="landing", object_key="orders/o.parquet"),
                     id="s3"),
        pytest.param("gs://landing/orders/o.jsonl", GCS(bucket_name="landing", object_key="orders/o.jsonl"), id="gcs"),
        pytest.param("s3://aws_lake@landing/orders/o.csv", S3(bucket_name="landing", object_key="orders/o.csv"),
                     id="s3-with-airflow-connection"),
        pytest.param("abfss://lake@acct.dfs.core.windows.net/orders/o.csv",
                     ABFSS(container="lake", service="acct", path="orders/o.csv"), id="azure-dfs"),
        pytest.param("abfs://lake@acct.blob.core.windows.net/orders/o.csv",
                     ABFSS(container="lake", service="acct", path="orders/o.csv"), id="azure-blob-host"),
    ],
)
def test_sources_are_named_as_the_spec_names_them(source, spec):
    assert source_dataset(source) == (spec.get_namespace(), spec.get_name())


def test_no_user_part_is_in_a_name():
    assert source_dataset("abfs://wasb_lake@lake/orders/o.csv") == ("abfs://lake", "orders/o.csv")
    assert source_dataset("sftp://etl:s3cret@files.example.com/out/o.csv") == ("sftp://files.example.com", "/out/o.csv")
    assert source_dataset("abfss://lake@acct.dfs.core.usgovcloudapi.net/o.csv") == (
        "abfss://lake@acct.dfs.core.usgovcloudapi.net", "o.csv")


def test_a_relative_path_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert source_dataset("orders/o.csv") == ("file", os.path.join(str(tmp_path), "orders", "o.csv"))


def test_table_names():
    assert table_name("warehouse", *split_table("public.orders")) == "warehouse.public.orders"
    assert split_table("orders") == ("public", "orders")
    assert table_name(None, "app", "payments") == "app.payments"
