"""Finding repeated keys in a stream of any size, in bounded memory.

The keys of each block are appended to a spill file (Arrow IPC) with their line numbers.
At the end:

- integer keys that arrived strictly increasing cannot repeat: nothing more is read;
- a spill of at most :data:`IN_MEMORY_ROWS` rows is grouped in memory;
- a larger one is split by a hash of the key into :data:`PARTITIONS` files, and each
  file is grouped on its own: equal keys always land in the same file, so the
  duplicates are found exactly, with a partition's rows (about 1/64 of the keys) in memory.

Decision 025 says why (a set of a 1 GB file's keys does not fit the check's memory).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

#: spills up to this many rows are grouped in memory
IN_MEMORY_ROWS = 2_000_000
#: files a larger spill is split into
PARTITIONS = 64
_MIX = 0x9E3779B97F4A7C15


def _powers(n: int) -> Any:
    import numpy as np

    w = np.empty(max(n, 1), dtype=np.uint64)
    w[0] = 1
    base = np.uint64(1099511628211)
    with np.errstate(over="ignore"):
        for i in range(1, len(w)):
            w[i] = w[i - 1] * base
    return w


_POWERS: list[Any] = []


def string_hash(arr: Any) -> Any:
    """A 64-bit hash of each string of an Arrow string array (vectorised over its buffers)."""
    import numpy as np
    import pyarrow as pa

    arr = arr.cast(pa.large_string()) if arr.type != pa.large_string() else arr
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + n + 1]
    data = arr.buffers()[2]
    lengths = np.diff(offsets)
    h = np.zeros(n, dtype=np.uint64)
    start, end = int(offsets[0]), int(offsets[-1])
    if end > start:
        seg = np.frombuffer(data, dtype=np.uint8)[start:end].astype(np.uint64)
        longest = int(lengths.max())
        if not _POWERS or len(_POWERS[0]) < longest:
            _POWERS[:] = [_powers(max(longest, 64))]
        pos = np.arange(end - start, dtype=np.int64) - np.repeat(offsets[:-1] - start, lengths)
        nonempty = lengths > 0
        with np.errstate(over="ignore"):
            h[nonempty] = np.add.reduceat((seg + np.uint64(1)) * _POWERS[0][pos], (offsets[:-1] - start)[nonempty])
    with np.errstate(over="ignore"):
        return h ^ (lengths.astype(np.uint64) * np.uint64(_MIX))


class DuplicateFinder:
    """Counts the rows whose key repeats an earlier row's, and names the first few.

    :param integer: keys are int64 (else strings)
    :param examples: how many repeats to name
    """

    def __init__(self, integer: bool, examples: int = 5):
        import pyarrow as pa

        self.integer = integer
        self.examples = examples
        self.rows = 0
        self.increasing = integer
        self._last: int | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="safeload-unique-"))
        self._schema = pa.schema([("k", pa.int64() if integer else pa.large_string()), ("line", pa.int64())])
        self._sink = pa.OSFile(str(self._dir / "all.arrow"), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self._schema)

    def add(self, keys: Any, lines: Any) -> None:
        """Append a block's keys (no nulls) and their line numbers."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if len(keys) == 0:
            return
        if self.increasing:
            first, last = pc.min_max(keys).values()
            ordered = len(keys) == 1 or pc.all(pc.greater(keys[1:], keys[:-1])).as_py()
            if not ordered or (self._last is not None and first.as_py() <= self._last):
                self.increasing = False
            self._last = last.as_py()
        if not self.integer and keys.type != pa.large_string():
            keys = keys.cast(pa.large_string())
        self._writer.write_table(pa.table([keys, lines], schema=self._schema))
        self.rows += len(keys)

    def finish(self) -> tuple[int, list[tuple[int, Any, int]]]:
        """``(repeated rows, [(line, key, line of its first occurrence), ...])``, the first by line."""
        import pyarrow as pa

        self._writer.close()
        self._sink.close()
        if self.increasing or self.rows == 0:
            return 0, []
        path = str(self._dir / "all.arrow")
        if self.rows <= IN_MEMORY_ROWS:
            with pa.memory_map(path) as source:
                return self._group(pa.ipc.open_stream(source).read_all())
        count, found = 0, []
        for part in self._partition(path):
            with pa.memory_map(part) as source:
                n, ex = self._group(pa.ipc.open_stream(source).read_all())
            count += n
            found = sorted(found + ex)[:self.examples]
        return count, found

    def _partition(self, path: str) -> list[str]:
        import numpy as np
        import pyarrow as pa

        parts = [str(self._dir / f"p{i}.arrow") for i in range(PARTITIONS)]
        sinks = [pa.OSFile(p, "wb") for p in parts]
        writers = [pa.ipc.new_stream(s, self._schema) for s in sinks]
        try:
            with pa.memory_map(path) as source:
                for batch in pa.ipc.open_stream(source):
                    keys = batch.column(0)
                    h = keys.to_numpy().view(np.uint64) if self.integer else string_hash(keys)
                    with np.errstate(over="ignore"):
                        p = ((h * np.uint64(_MIX)) >> np.uint64(58)).astype(np.int64)
                    order = np.argsort(p, kind="stable")
                    bounds = np.searchsorted(p[order], np.arange(PARTITIONS + 1))
                    table = pa.Table.from_batches([batch]).take(pa.array(order))
                    for i in range(PARTITIONS):
                        if bounds[i + 1] > bounds[i]:
                            writers[i].write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]))
        finally:
            for w, s in zip(writers, sinks):
                w.close()
                s.close()
        Path(path).unlink()
        return parts

    def _group(self, table: Any) -> tuple[int, list[tuple[int, Any, int]]]:
        import pyarrow.compute as pc

        if table.num_rows == 0:
            return 0, []
        firsts = table.group_by("k").aggregate([("line", "min")])
        repeated = table.num_rows - firsts.num_rows
        if not repeated:
            return 0, []
        joined = table.join(firsts, "k")
        dup = joined.filter(pc.not_equal(joined["line"], joined["line_min"]))
        dup = dup.sort_by("line").slice(0, self.examples)
        return repeated, list(zip(dup["line"].to_pylist(), dup["k"].to_pylist(), dup["line_min"].to_pylist()))

    def close(self) -> None:
        """Remove the spill files (also after an error)."""
        try:
            self._writer.close()
            self._sink.close()
        except Exception:  # noqa: BLE001 - already closed
            pass
        shutil.rmtree(self._dir, ignore_errors=True)
