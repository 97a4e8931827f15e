"""A real Azure Blob Storage API on 127.0.0.1: Azurite, the Azure Storage emulator, in a child process.

Not a mock of the client: adlfs (``abfs://``, ``az://``) talks HTTP to it as to Azure
(shared-key signed requests, ETags, ranged downloads, 404s). Azurite is a Node.js
program: ``make install`` puts the version that tests/azurite/package-lock.json pins in
``.venv/azurite`` when npm is on the PATH (.ci/run installs it). Started on a free port,
in memory, without its telemetry (which would leave 127.0.0.1); every wait is bounded
(tests/local_server.py).

adlfs declares azure-identity, whose msal caps cryptography below the version the rest of
the tested set pins; a storage account key needs neither, so the Makefile installs adlfs
without its dependencies and requirements-dev.txt the ones it uses (azure-storage-blob,
azure-core).

.. code-block:: python

    with Azurite() as azure:
        container = AzureContainer(azure, "lake")
        container.put("orders/2024-05-01.csv", path)   # abfs://lake/orders/2024-05-01.csv
        azure.storage_options()                        # for StoredFile / fsspec URLs
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from local_server import ChildServer, FsspecBucket

#: Azurite's development account: its name and key are public, fixed by the emulator
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_blob() -> Path:
    """The ``azurite-blob`` command that ``make install`` put beside the virtualenv's Python."""
    return Path(sys.prefix) / "azurite" / "node_modules" / ".bin" / "azurite-blob"


class Azurite(ChildServer):
    """Azurite's Blob service, in memory."""

    name = "azurite-blob"

    def command(self) -> list[str]:
        return [str(azurite_blob()), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--inMemoryPersistence",
                "--disableTelemetry", "--skipApiVersionCheck", "--silent"]

    def ready_url(self) -> str:
        # an unsigned request: any HTTP answer (403 here) means the service is up
        return f"{self.endpoint}/{ACCOUNT}?comp=list"

    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={self.endpoint}/{ACCOUNT};")

    def storage_options(self) -> dict[str, Any]:
        """adlfs's options for this server (what ``--storage-options`` takes)."""
        return {"connection_string": self.connection_string()}

    def filesystem(self) -> Any:
        import adlfs

        return adlfs.AzureBlobFileSystem(skip_instance_cache=True, **self.storage_options())


class AzureContainer(FsspecBucket):
    """One container of an :class:`Azurite`; a blob's version is its ETag."""

    scheme, version_key = "abfs", "etag"

    def __init__(self, server: Azurite, name: str):
        super().__init__(server, name)
        self.fs.mkdir(name)
