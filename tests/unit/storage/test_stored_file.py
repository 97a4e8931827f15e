"""StoredFile on the local filesystem through ``file://`` URLs (fsspec's own local
filesystem: no server) and through a bare opener: streaming, gunzip, the pinned identity,
and every way a read is refused."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os

import pytest

from safeload.errors import SourceChangedError, SourceError
from safeload.storage import Identity, StoredFile, open_bytes, open_random


@pytest.mark.parametrize(("info", "version", "modified"), [
    pytest.param({"size": 3, "ETag": '"abc"', "LastModified": dt.datetime(2024, 5, 2, tzinfo=dt.timezone.utc)},
                 '"abc"', 1714608000.0, id="s3fs"),
    pytest.param({"size": 3, "generation": 17, "updated": "2024-05-02T00:00:00Z"}, "17", 1714608000.0, id="gcsfs"),
    pytest.param({"size": 3, "mtime": 1714608000.5, "ino": 42}, "mtime 1714608000.5, inode 42", 1714608000.5,
                 id="local"),
])
def test_identity_from_the_stores_info(info, version, modified):
    ident = Identity.from_info("x", info)
    assert (ident.size, ident.version, ident.modified) == (3, version, modified)


def test_a_file_url_streams_its_bytes_and_gunzips_by_name(tmp_path):
    body = b"a,b\n" + b"1,2\n" * 100_000
    (tmp_path / "x.csv").write_bytes(body)
    (tmp_path / "x.csv.gz").write_bytes(gzip.compress(body))
    for name in ("x.csv", "x.csv.gz"):
        with open_bytes((tmp_path / name).as_uri()) as fh:
            assert fh.read() == body


def test_the_first_version_read_is_pinned(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"a\n1\n")
    obj = StoredFile(p.as_uri())
    with obj.open() as fh:
        assert fh.read(2) == b"a\n"
    p.write_bytes(b"a\n1\n2\n")
    with pytest.raises(SourceChangedError, match=r"x.csv changed since it was first read \(version .* then"):
        obj.open()


def test_a_file_changed_during_the_read_is_refused_at_the_end(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"a\n" + b"1\n" * 1_000_000)
    obj = StoredFile(p.as_uri())
    fh = obj.open()
    fh.read(1 << 20)
    os.truncate(p, 1000)  # cut in place: the stream ends short, and the file is another version
    with pytest.raises(SourceChangedError, match=r"changed while it was read \((version mtime .* then mtime|\d+ bytes then \d+)"):
        fh.read()
    fh.close()


def test_another_version_than_expected_is_refused(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"a\n1\n")
    now = StoredFile(p.as_uri()).identity().version
    assert StoredFile(p.as_uri(), expect_version=now).identity().version == now
    with pytest.raises(SourceChangedError, match=r"is not the version that was checked \(version v1 checked"):
        StoredFile(p.as_uri(), expect_version="v1").open()


def test_a_bare_opener_is_held_to_the_size_it_was_given():
    class Opener:
        def open(self, mode):
            assert mode == "rb"
            return io.BytesIO(b"a\n1\n")

        def __str__(self):
            return "mem://x.csv"

    assert StoredFile(Opener(), identity=Identity("mem://x.csv", 4)).open().read() == b"a\n1\n"
    with pytest.raises(SourceChangedError, match=r"mem://x.csv: the read ended after 4 of its 9 bytes"):
        StoredFile(Opener(), identity=Identity("mem://x.csv", 9)).open().read()


@pytest.mark.parametrize(("make", "match"), [
    pytest.param(lambda p: None, r"x.csv: the object does not exist; check the URL", id="missing"),
    pytest.param(lambda p: p.mkdir(), r"x.csv: is a directory \(a prefix\), not an object", id="directory"),
])
def test_what_cannot_be_read_is_refused_clearly(tmp_path, make, match):
    p = tmp_path / "x.csv"
    make(p)
    with pytest.raises(SourceError, match=match):
        open_bytes(p.as_uri())


def test_parquet_is_read_in_ranges_and_checked_when_done(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": list(range(1000))}), p, row_group_size=100)
    obj = StoredFile(p.as_uri())
    with open_random(obj) as fh:
        assert str(fh) == p.as_uri()
        assert pq.ParquetFile(fh).read().num_rows == 1000
    with pytest.raises(SourceChangedError, match=r"changed while it was read \(version mtime"):
        with obj.open_random() as fh:
            pq.ParquetFile(fh).metadata  # noqa: B018 - reads the footer
            p.write_bytes(p.read_bytes() + b"\n")
    with pytest.raises(SourceChangedError, match=r"changed since it was first read"):
        obj.open_random()


def test_a_scheme_without_its_filesystem_says_what_to_install(monkeypatch):
    """fsspec cannot import the filesystem of abfs:// (adlfs, made unimportable here), and
    the error names the package to install."""
    import importlib

    registry = importlib.import_module("fsspec.registry")  # the module: fsspec.registry is its mapping
    monkeypatch.setitem(registry.known_implementations, "abfs",
                        {"class": "safeload_no_such_module.AzureBlobFileSystem", "err": "Install adlfs"})
    monkeypatch.delitem(registry._registry, "abfs", raising=False)
    with pytest.raises(SourceError, match=r"abfs://box/x.csv: no filesystem for this URL \(.*adlfs.*\); install the "
                                          r"one for abfs:// \(pip install \"safeload\[abfs\]\": adlfs; "
                                          r"docs/operators.md\)"):
        StoredFile("abfs://box/x.csv").open()


def test_a_client_error_of_the_stores_own_type_is_a_clear_retryable_error():
    """gcsfs raises its own HttpError (not an OSError) for a status it does not map, here
    a 400 from a local HTTP server that answers every request so: the load gets a
    retryable error naming the object, never the client's raw exception."""
    import http.server
    import json
    import threading

    from safeload.errors import SourceUnavailableError

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the handler's protocol
            body = json.dumps({"error": {"code": 400, "message": "the store says no"}}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        obj = StoredFile("gs://lake/x.csv", storage_options={
            "endpoint_url": f"http://127.0.0.1:{server.server_port}", "token": "anon", "project": "p"})
        with pytest.raises(SourceUnavailableError, match=r"gs://lake/x.csv: cannot be reached \(HttpError: the "
                                                         r"store says no, 400\); retry later") as caught:
            obj.open()
        assert caught.value.retryable
    finally:
        server.shutdown()
        server.server_close()
