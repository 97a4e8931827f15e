"""A test server in a child process on a free port of 127.0.0.1 (moto's S3, the GCS
emulator, Azurite): started and waited for within a bound, stopped by the test session, and
nothing else stopped.

A subclass names its :meth:`command` and the URL that answers once it is up
(:meth:`ready_url`; any HTTP status counts). :class:`FsspecBucket` is one bucket of such a
server written through its fsspec filesystem (a producer's upload).
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChildServer:
    """A server started by :meth:`start` (or ``with``) and stopped by :meth:`stop`."""

    #: what errors call it
    name = "the server"
    #: how long it may take to answer after its start
    start_seconds = 30.0

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready_url(self) -> str:
        raise NotImplementedError

    def start(self):
        self._proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_seconds
        while True:
            try:
                with urllib.request.urlopen(self.ready_url(), timeout=1):
                    return self
            except urllib.error.HTTPError:  # it answered: up, whatever it thinks of the request
                return self
            except OSError:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self._proc.returncode} on start") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.name} did not answer within {self.start_seconds:.0f}s") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FsspecBucket:
    """One bucket (container) of a server, and the URLs of its objects; written through the
    server's fsspec filesystem, read by the code under test through its own.

    A subclass names its URL ``scheme`` and the ``info()`` key of an object's ``version``.
    """

    scheme = ""
    version_key = ""

    def __init__(self, server: Any, name: str):
        self.server, self.name = server, name
        self.fs = server.filesystem()

    def put(self, key: str, data: bytes | str | Path) -> str:
        """Upload bytes, or the file at a path; returns the object's URL."""
        if isinstance(data, (str, Path)):
            data = Path(data).read_bytes()
        self.fs.pipe_file(f"{self.name}/{key}", data)
        return self.url(key)

    def delete(self, key: str) -> None:
        self.fs.rm_file(f"{self.name}/{key}")

    def version(self, key: str) -> str:
        """What a load pins and ``source_version`` names."""
        path = f"{self.name}/{key}"
        self.fs.invalidate_cache(path)
        return str(self.fs.info(path)[self.version_key])

    def url(self, key: str) -> str:
        """``scheme://bucket/key``: for fsspec with the server's ``storage_options()``."""
        return f"{self.scheme}://{self.name}/{key}"
