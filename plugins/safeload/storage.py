"""Source files wherever they are stored: a local path, or an object read as a stream.

A local path is opened as it always was. Anything else is a :class:`StoredFile`: an
fsspec URL (``s3://bucket/key``, ``gs://``, ``abfs://``, ``file://``) with its storage
options, a path object that carries its own filesystem (Airflow's ``ObjectStoragePath``,
any ``UPath``: ``.fs`` and ``.path``), or any opener with ``open('rb')`` and a known
:class:`Identity`. It is read in blocks, never copied whole to local disk or memory:

- :meth:`StoredFile.open` gives a sequential stream (gunzipped when the name ends in
  ``.gz``) fetched in :data:`STREAM_BLOCK` ranges, for CSV and JSON lines;
- :meth:`StoredFile.open_random` gives a seekable file for Parquet, which reads the
  footer and then only the column chunks it needs, each a range request.

Every read is held to the object's identity (size and ETag, generation or version id;
a local file's modification time and inode), taken at the first open and *pinned*: a
later open that finds another version, a stream that ends short of the size, an object
that vanished or changed by the end of the read raise
:class:`~safeload.errors.SourceChangedError` before the last byte is handed on, so a
load that is still inside its transaction loads nothing. See
docs/decisions/045-object-storage-sources.md.

Pure Python: no Airflow import; fsspec is imported only for URL strings.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from safeload.errors import SafeloadError, SourceChangedError, SourceError, SourceUnavailableError
from safeload.urls import AZURE_SCHEMES, azure_storage_options, display_url, hadoop_azure_hint, is_url

#: bytes fetched per range request while streaming (fsspec's read-ahead): memory stays a
#: small multiple of this whatever the object's size, and a 100 MB object takes 13 requests
STREAM_BLOCK = 8 << 20
#: what to install for a URL scheme whose fsspec filesystem is missing
_FILESYSTEMS = {"s3": 'pip install "safeload[s3]": s3fs', "gs": 'pip install "safeload[gcs]": gcsfs',
                "gcs": 'pip install "safeload[gcs]": gcsfs',
                **dict.fromkeys(AZURE_SCHEMES, 'pip install "safeload[abfs]": adlfs')}
#: bytes handed from the range cache to a reader per call
_READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class Identity:
    """Which bytes a stored file holds: its size and version, and when it was last written.

    :param name: what errors call it
    :param size: bytes, or None when the store does not say
    :param version: ETag, generation or version id (a local file: modification time and inode)
    :param modified: when it was last written, in epoch seconds (the sensor's settle time)
    """

    name: str
    size: int | None
    version: str | None = None
    modified: float | None = None

    def change_to(self, now: Identity) -> str | None:
        """How ``now`` differs from this identity, in words; None when it is the same object."""
        if self.version is not None and now.version is not None and self.version != now.version:
            return f"version {self.version} then {now.version}"
        if self.size is not None and now.size is not None and self.size != now.size:
            return f"{self.size} bytes then {now.size}"
        return None

    @classmethod
    def from_info(cls, name: str, info: dict[str, Any]) -> Identity:
        """From an fsspec ``info()`` dict (s3fs, gcsfs, adlfs and the local filesystem's keys)."""
        # GCS: the generation, which only a new upload changes (its etag also changes with metadata)
        version = next((str(info[k]) for k in ("generation", "ETag", "etag", "VersionId", "version_id")
                        if info.get(k) not in (None, "", "null")), None)
        if version is None and info.get("mtime") is not None:  # a local file: rewritten in place or replaced
            version = f"mtime {info['mtime']}, inode {info.get('ino')}"
        modified = next((info[k] for k in ("LastModified", "last_modified", "mtime", "updated", "modified")
                         if info.get(k) is not None), None)
        return cls(name, info.get("size"), version, _epoch(modified))


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).timestamp()
    return None


def _failed(e: Exception) -> str:
    """What a store's client raised, for a message. s3fs and the local filesystem raise
    ``OSError``; others raise types of their own (gcsfs: ``HttpError`` for a 5xx after its
    retries or a 401, ``ValueError`` for a request the store called invalid), which are
    caught alike so a load never fails on a raw client exception."""
    return str(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"


class StoredFile:
    """One source file in object storage (or anywhere fsspec reaches), read in blocks.

    .. code-block:: python

        StoredFile("s3://lake/orders/2024-05-01.csv", storage_options={"endpoint_url": "http://minio:9000"})
        StoredFile(ObjectStoragePath("s3://aws_lake@lake/orders/2024-05-01.csv"))   # Airflow's connection

    :param target: an fsspec URL, a path object with ``.fs`` and ``.path`` (``ObjectStoragePath``,
        ``UPath``), or any object with ``open('rb')`` (then give ``identity``)
    :param storage_options: for a URL: the filesystem's options (credentials, ``endpoint_url``, ...)
    :param identity: the object's identity, for an opener that cannot be asked (its size is
        then still checked against the bytes read)
    :param expect_version: the version (ETag, generation) a reader must find, e.g. the one the
        contract check read; another one refuses the read
    """

    def __init__(self, target: Any, *, storage_options: dict[str, Any] | None = None,
                 identity: Identity | None = None, expect_version: str | None = None):
        self.target = target
        self.storage_options = dict(storage_options or {})
        self.expect_version = expect_version or None
        self._fs: Any = None
        self._path: str | None = None
        if isinstance(target, str):
            if not is_url(target):
                raise SourceError(f"{target}: not a URL; a local file is read by its path")
            scheme, rest = target.split("://", 1)
            self.target = target = f"{scheme.lower()}://{rest}"  # fsspec knows schemes in lower case
            self.name = display_url(target)
        else:
            self.name = display_url(str(target))
            if not (hasattr(target, "fs") and hasattr(target, "path")):
                if not hasattr(target, "open"):
                    raise SourceError(f"{self.name}: cannot be opened; give a URL, a path with .fs and .path "
                                      "(ObjectStoragePath) or an object with open('rb')")
                identity = identity or Identity(self.name, None)  # a bare opener cannot be asked
        self._pinned = identity

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"StoredFile({self.name!r})"

    # -- where it is ----------------------------------------------------------------------

    def _filesystem(self) -> tuple[Any, str] | None:
        """``(fsspec filesystem, path in it)``, or None for a bare opener."""
        if self._fs is None:
            if isinstance(self.target, str):
                from fsspec.core import url_to_fs

                scheme = urlsplit(self.target).scheme
                try:
                    self._fs, self._path = url_to_fs(self.target, **azure_storage_options(self.target,
                                                                                          self.storage_options))
                except ImportError as e:
                    raise SourceError(f"{self.name}: no filesystem for this URL ({e}); install the one for "
                                      f"{scheme}:// ({_FILESYSTEMS.get(scheme, 'the fsspec filesystem of its scheme')}"
                                      "; docs/operators.md)") from None
                except ValueError as e:
                    if str(e).startswith("Protocol not known"):
                        raise SourceError(f"{self.name}: fsspec knows no filesystem for {scheme}://"
                                          f"{hadoop_azure_hint(self.target)}; give a URL of an object store fsspec "
                                          "reads (s3://, gs://, abfs://, file://...) or a local path") from None
                    raise SourceError(f"{self.name}: the {scheme}:// filesystem could not be set up ({e}); check "
                                      "its credentials and storage options (docs/operators.md)") from None
            elif hasattr(self.target, "fs") and hasattr(self.target, "path"):
                self._fs, self._path = self.target.fs, str(self.target.path)
            else:
                return None
        return self._fs, self._path

    def stat(self) -> Identity | None:
        """The object's identity now, asked of the store (not from a cache); None when it
        does not exist. Does not pin."""
        where = self._filesystem()
        if where is None:
            return self._pinned
        fs, path = where
        try:
            fs.invalidate_cache(path)
            info = fs.info(path)
        except FileNotFoundError:
            return None
        except Exception as e:  # noqa: BLE001 - see _failed()
            raise SourceUnavailableError(f"{self.name}: cannot be reached ({_failed(e)}); retry later") from None
        if info.get("type") == "directory":
            raise SourceError(f"{self.name}: is a directory (a prefix), not an object; give the URL of one "
                              "source file")
        return Identity.from_info(self.name, info)

    def identity(self) -> Identity:
        """The identity every read is held to: taken at the first call, then kept."""
        if self._pinned is None:
            now = self.stat()
            if now is None:
                raise SourceError(f"{self.name}: the object does not exist; check the URL and that the upstream "
                                  "job delivered it")
            if self.expect_version and now.version != self.expect_version:
                raise SourceChangedError(f"{self.name} is not the version that was checked (version "
                                         f"{self.expect_version} checked, {now.version} now); nothing was loaded "
                                         "from it. Check the new version before loading it")
            self._pinned = now
        return self._pinned

    def verify(self, when: str = "since it was first read") -> Identity:
        """Raise :class:`SourceChangedError` unless the object is still the pinned one."""
        pinned = self.identity()
        if self._filesystem() is None:
            return pinned
        now = self.stat()
        if now is None:
            raise SourceChangedError(f"{self.name} disappeared {when}; nothing was loaded from it. Deliver it "
                                     "again; a retry reads it when it is back")
        change = pinned.change_to(now)
        if change:
            raise SourceChangedError(f"{self.name} changed {when} ({change}); nothing was loaded from it, so "
                                     "no mix of two versions can be. A retry reads the new version")
        return pinned

    # -- reading --------------------------------------------------------------------------

    def _open_raw(self, **kwargs: Any) -> Any:
        first = self._pinned is None
        ident = self.identity() if first else self.verify()
        where = self._filesystem()
        try:
            if where is None:
                return self.target.open("rb"), ident
            fs, path = where
            return fs.open(path, "rb", **kwargs), ident
        except FileNotFoundError:
            raise SourceChangedError(f"{self.name} disappeared before it could be opened; nothing was loaded "
                                     "from it") from None
        except SafeloadError:
            raise
        except Exception as e:  # noqa: BLE001 - see _failed()
            raise SourceUnavailableError(f"{self.name}: cannot be opened ({_failed(e)}); retry later") from None

    def open(self) -> BinaryIO:
        """A sequential stream of the object's bytes (gunzipped for a ``.gz`` name), checked
        against its identity: the read that reaches the end raises if the object is short,
        gone or another version by then."""
        raw, ident = self._open_raw(block_size=STREAM_BLOCK, cache_type="readahead")
        stream: BinaryIO = io.BufferedReader(_CheckedStream(self, raw, ident), buffer_size=_READ_BLOCK)
        if self.name.lower().endswith(".gz"):
            stream = _Gunzip(stream)
        return stream

    def open_random(self) -> _RandomAccess:
        """A seekable file (Parquet): ranges fetched as they are read. Leaving its ``with``
        block without an error checks that the object did not change meanwhile."""
        raw, _ident = self._open_raw(block_size=STREAM_BLOCK, cache_type="readahead")
        return _RandomAccess(self, raw)

    def read_failure(self, e: Exception, done: int) -> SourceError:
        """The error for a read that failed after ``done`` bytes: gone, changed, or cut off."""
        try:
            now = self.stat()
        except SafeloadError:
            now = self._pinned
        if now is None or isinstance(e, FileNotFoundError):
            return SourceChangedError(f"{self.name} disappeared while it was read (after {done} bytes); nothing "
                                      "was loaded from it. Deliver it again; a retry reads it when it is back")
        change = self._pinned.change_to(now) if self._pinned else None
        if change:
            return SourceChangedError(f"{self.name} changed while it was read ({change}); nothing was loaded from "
                                      "it. A retry reads the new version")
        return SourceUnavailableError(f"{self.name}: reading failed after {done} bytes ({_failed(e)}); nothing was "
                                      "loaded from it; retry later")


class _CheckedStream(io.RawIOBase):
    """The object's bytes, counted; the read that finds the end checks the identity first."""

    def __init__(self, stored: StoredFile, raw: Any, ident: Identity):
        super().__init__()
        self._stored, self._raw, self._ident = stored, raw, ident
        self._done = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            if hasattr(self._raw, "readinto"):
                n = self._raw.readinto(b)
            else:
                data = self._raw.read(len(b))
                n = len(data)
                memoryview(b).cast("B")[:n] = data
        except SafeloadError:
            raise
        except Exception as e:  # noqa: BLE001 - see _failed()
            raise self._stored.read_failure(e, self._done) from None
        if not n and len(b) and not self._ended:
            self._ended = True
            size = self._ident.size
            if size is not None and self._done != size:
                # a store that reads ranges of whatever is there now (GCS) ends short when the
                # object was replaced by a shorter one: say so, rather than "cut short"
                self._stored.verify("while it was read")
                raise SourceChangedError(
                    f"{self._stored.name}: the read ended after {self._done} of its {size} bytes (the object was cut "
                    "short, or the transfer was); nothing was loaded from it. Retry, or deliver it again")
            self._stored.verify("while it was read")
        self._done += n or 0
        return n or 0

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class _Gunzip(gzip.GzipFile):
    """A gzip stream over a checked stream, closing both."""

    def __init__(self, inner: BinaryIO):
        super().__init__(fileobj=inner, mode="rb")
        self._inner = inner

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._inner.close()


class _RandomAccess(io.RawIOBase):
    """A seekable view of a stored file for Parquet readers; ``str()`` is the object's name."""

    def __init__(self, stored: StoredFile, raw: Any):
        super().__init__()
        self._stored, self._raw = stored, raw

    def __str__(self) -> str:
        return self._stored.name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, b: Any) -> int:
        try:
            data = self._raw.read(len(b))
        except Exception as e:  # noqa: BLE001 - see _failed()
            raise self._stored.read_failure(e, self._raw.tell()) from None
        memoryview(b).cast("B")[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        try:
            return self._raw.read(size)
        except Exception as e:  # noqa: BLE001 - see _failed()
            raise self._stored.read_failure(e, self._raw.tell()) from None

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.close()
        if exc_type is None:
            self._stored.verify("while it was read")


def source_file(source: Any) -> str | StoredFile:
    """A local path as a string; a URL (default storage options) or a :class:`StoredFile`
    as a :class:`StoredFile`."""
    if isinstance(source, StoredFile):
        return source
    if is_url(source):
        return StoredFile(source)
    return os.fspath(source)


def _opened(path: str | Path | StoredFile) -> Path | StoredFile:
    """A stored file as it is; a local path checked to be an existing file."""
    source = source_file(path)
    if isinstance(source, StoredFile):
        return source
    p = Path(source)
    if not p.exists():
        raise SourceError(f"{p}: source file does not exist; check the path and that the upstream job delivered it")
    if p.is_dir():
        raise SourceError(f"{p}: is a directory, not a file; give the path of one source file")
    return p


def open_bytes(path: str | Path | StoredFile) -> BinaryIO:
    """The bytes of a source file, gunzipped for a ``.gz`` name: a local file as it is, a
    stored one as a checked stream (:meth:`StoredFile.open`)."""
    source = _opened(path)
    if isinstance(source, StoredFile):
        return source.open()
    return gzip.open(source, "rb") if source.suffix == ".gz" else open(source, "rb")


def open_random(path: str | Path | StoredFile) -> Path | _RandomAccess:
    """What a Parquet reader opens: a local file's path (checked to exist), or a seekable
    view of a stored one; ``str()`` of either names the file."""
    source = _opened(path)
    return source.open_random() if isinstance(source, StoredFile) else source
