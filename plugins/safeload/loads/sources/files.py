"""A file as the source of a load: CSV (gzipped or not), JSON lines, Parquet; local, or
an object in object storage (:class:`~safeload.storage.StoredFile`).

A CSV file's bytes go straight to ``COPY`` (the usual, fast path); every format can also
be read row by row, with each row's line and raw text, for the checked path that
quarantines what does not fit the target. Everything is streamed: memory stays flat
whatever the file's size. An object is read in ranges and held to the version first
read: one that changes, vanishes or ends short raises before the COPY ends, so the
stage's transaction rolls back and nothing is loaded.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

from psycopg import sql

from safeload.contracts.introspect import CsvReader, detect_format, open_text
from safeload.errors import SourceError
from safeload.loads.sources.base import COPY_BLOCK, StraightCopy
from safeload.storage import StoredFile, open_bytes, source_file


class FileSource:
    """A file to load.

    :param path: the file (``.csv``, ``.csv.gz``, ``.jsonl``, ``.jsonl.gz``, ``.ndjson``, ``.parquet``):
        a local path, an fsspec URL (``s3://bucket/key``) or a :class:`~safeload.storage.StoredFile`
    :param fmt: ``csv``, ``jsonl`` or ``parquet``; None: told from the name
    """

    place = "line"
    empty_is_null = True  # a file has no NULL but the empty field

    def __init__(self, path: str | os.PathLike | StoredFile, fmt: str | None = None):
        self.path: str | StoredFile = source_file(path)  # a URL: one StoredFile, so every read sees one version
        self.fmt = fmt or detect_format(str(self.path))

    def __str__(self) -> str:
        return str(self.path)

    def open(self) -> FileSource:
        return self  # each read opens the file itself

    def close(self) -> None:
        pass

    def columns(self) -> list[str]:
        source, fmt = self.path, self.fmt
        if fmt == "csv":
            with CsvReader(source) as r:
                return list(r.header)
        if fmt == "jsonl":
            with open_text(source) as fh:
                for line_no, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            return list(json.loads(line))
                        except (json.JSONDecodeError, TypeError, AttributeError):
                            raise SourceError(f"{source} line {line_no}: not a JSON object") from None
            raise SourceError(f"{source}: the file is empty; expected one JSON object per line")
        if fmt == "parquet":
            from safeload.contracts.introspect import introspect_parquet

            return introspect_parquet(source).column_names
        raise SourceError(f"format {fmt!r} is not supported; use csv, parquet or jsonl")

    def straight(self) -> StraightCopy | None:
        if self.fmt != "csv":
            return None

        def blocks() -> Iterator[bytes]:
            with open_bytes(self.path) as fh:
                try:
                    while block := fh.read(COPY_BLOCK):
                        yield block
                except (EOFError, gzip.BadGzipFile, zlib.error) as e:
                    raise SourceError(f"{self}: the compressed file is truncated or corrupt ({e}); nothing was "
                                      "loaded from it. Deliver the complete file again") from None

        return StraightCopy(blocks(), sql.SQL(" (format csv, header true)"), f"{self} has a header but no rows",
                            "an empty delivery", f"straight COPY of {self}", format="csv", header=True,
                            size=self.size())

    def size(self) -> int | None:
        """The file's bytes (compressed, for a gzipped one); None when the store does not say."""
        if isinstance(self.path, StoredFile):
            return self.path.identity().size
        try:
            return os.path.getsize(self.path)
        except OSError:
            return None  # opening it says what is wrong, in the words every read uses

    def rows(self, header: list[str]) -> Iterator[tuple[int, list[Any], str]]:
        """(line, values as text, raw text) for each row of the file, streamed."""
        source, fmt = self.path, self.fmt
        if fmt == "csv":
            with CsvReader(source) as reader:
                for line, row in reader:
                    buf = io.StringIO()
                    csv.writer(buf).writerow(row)
                    yield line, row, buf.getvalue().rstrip("\r\n")
        elif fmt == "jsonl":
            with open_text(source) as fh:
                for line_no, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        yield line_no, [None] * (len(header) + 1), line.rstrip("\n")  # width mismatch -> quarantined
                        del e
                        continue
                    if not isinstance(obj, dict):
                        yield line_no, [], line.rstrip("\n")
                        continue
                    yield line_no, [_json_text(obj.get(h)) for h in header], line.rstrip("\n")
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            # an object: ranges of it (footer, then each row group's column chunks), checked
            # at the end to be the version first read
            with source.open_random() if isinstance(source, StoredFile) else nullcontext(source) as fh:
                pf = pq.ParquetFile(fh)
                line = 0
                for batch in pf.iter_batches(batch_size=65536, columns=header):
                    for rec in batch.to_pylist():
                        line += 1
                        vals = [_json_text(rec.get(h)) for h in header]
                        yield line, vals, json.dumps(rec, default=str)
        else:
            raise SourceError(f"format {fmt!r} is not supported")


def _json_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)
