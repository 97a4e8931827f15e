"""A real S3 API on 127.0.0.1: moto's server mode (``moto_server``), in a child process.

Not a mock of the client: boto3, s3fs and Airflow's ``ObjectStoragePath`` talk HTTP to
it exactly as to S3 (range GETs, ``If-Match``, 404s). Started on a free port; every wait
is bounded; :meth:`MotoS3.stop` ends the process it started and nothing else.

.. code-block:: python

    with MotoS3() as s3:
        s3.client().create_bucket(Bucket="lake")
        s3.storage_options()   # for StoredFile / fsspec URLs
        s3.airflow_conn()      # the value of an AIRFLOW_CONN_* variable: an aws connection
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from local_server import ChildServer

KEY, SECRET, REGION = "testing", "testing", "us-east-1"


class MotoS3(ChildServer):
    """moto's S3 server."""

    name = "moto_server"
    start_seconds = 30.0  # moto imports most of botocore's service models on start

    def command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]

    def ready_url(self) -> str:
        return f"{self.endpoint}/moto-api/"

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                            region_name=REGION)

    def storage_options(self) -> dict[str, Any]:
        """s3fs's options for this server (what ``--storage-options`` takes)."""
        return {"endpoint_url": self.endpoint, "key": KEY, "secret": SECRET, "client_kwargs": {"region_name": REGION}}

    def airflow_conn(self) -> str:
        """An ``aws`` Airflow connection to this server, as an ``AIRFLOW_CONN_*`` value."""
        return json.dumps({"conn_type": "aws", "login": KEY, "password": SECRET,
                           "extra": {"endpoint_url": self.endpoint, "region_name": REGION}})


class Bucket:
    """One bucket of a :class:`MotoS3`, and the URLs of its objects.

    :param conn_id: the Airflow connection (``AIRFLOW_CONN_<ID>``) that reaches the server
    """

    def __init__(self, server: MotoS3, name: str, conn_id: str):
        self.server, self.name, self.conn_id = server, name, conn_id
        self.client = server.client()
        self.client.create_bucket(Bucket=name)

    def put(self, key: str, data: bytes | str | Path) -> str:
        """Upload bytes, or the file at a path; returns the object's plain URL."""
        if isinstance(data, (str, Path)):
            self.client.upload_file(str(data), self.name, key)
        else:
            self.client.put_object(Bucket=self.name, Key=key, Body=data)
        return self.url(key)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.name, Key=key)

    def version(self, key: str) -> str:
        """The object's ETag: what a load pins and ``source_version`` names."""
        return self.client.head_object(Bucket=self.name, Key=key)["ETag"]

    def url(self, key: str) -> str:
        """``s3://bucket/key``: for fsspec with :meth:`MotoS3.storage_options`."""
        return f"s3://{self.name}/{key}"

    def airflow_url(self, key: str) -> str:
        """``s3://conn_id@bucket/key``: Airflow's ``ObjectStoragePath`` with the connection in it."""
        return f"s3://{self.conn_id}@{self.name}/{key}"
