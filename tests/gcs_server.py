"""A real Google Cloud Storage JSON API on 127.0.0.1: ``gcp-storage-emulator`` in a child process.

Not a mock of the client: gcsfs talks HTTP to it as to GCS (object metadata with
``generation``, ranged media downloads, 404s). Started on a free port, in memory; every
wait is bounded (tests/local_server.py).

gcsfs's experimental zonal and hierarchical-namespace support (on by default since
2026.x) first asks the gRPC storage-control API what kind each bucket is, which no
emulator serves: it waits out its deadline on every call. Tests switch it off with
``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` (tests/conftest.py sets it before gcsfs is
imported), which leaves the JSON API path that standard buckets take anyway.

.. code-block:: python

    with GcsEmulator() as gcs:
        bucket = GcsBucket(gcs, "lake")
        bucket.put("orders/2024-05-01.csv", path)   # gs://lake/orders/2024-05-01.csv
        gcs.storage_options()                       # for StoredFile / fsspec URLs
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from local_server import ChildServer, FsspecBucket

PROJECT = "safeload-tests"


class GcsEmulator(ChildServer):
    """gcp-storage-emulator, in memory."""

    name = "gcp-storage-emulator"

    def command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "gcp-storage-emulator"), "start", "--host", "127.0.0.1",
                "--port", str(self.port), "--in-memory"]

    def ready_url(self) -> str:
        return f"{self.endpoint}/storage/v1/b?project={PROJECT}"

    def storage_options(self) -> dict[str, Any]:
        """gcsfs's options for this server (what ``--storage-options`` takes): no credentials."""
        return {"endpoint_url": self.endpoint, "token": "anon", "project": PROJECT}

    def filesystem(self) -> Any:
        import gcsfs

        return gcsfs.GCSFileSystem(skip_instance_cache=True, **self.storage_options())


class GcsBucket(FsspecBucket):
    """One bucket of a :class:`GcsEmulator`; an object's version is its generation."""

    scheme, version_key = "gs", "generation"

    def __init__(self, server: GcsEmulator, name: str):
        body = json.dumps({"name": name}).encode()
        req = urllib.request.Request(f"{server.endpoint}/storage/v1/b?project={PROJECT}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10):
            pass
        super().__init__(server, name)
