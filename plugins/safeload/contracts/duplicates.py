"""Finding repeated keys in a stream of any size, in bounded memory.

The keys of each block are appended to a spill file (Arrow IPC) with their line numbers,
except while integer keys arrive strictly increasing: those are held in memory as runs
(first key, first line, length) of keys and lines that both step by one, the shape of
ids written in order, so a file of such ids spills nothing. When the order breaks, or
the runs grow past :data:`MAX_RUNS`, the runs are written out as rows and every later
block is spilled. At the end:

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
#: runs of increasing keys held in memory (24 bytes each) before they are spilled as rows
MAX_RUNS = 1 << 20
#: rows per batch when runs are written out
_RUN_BATCH = 1 << 20
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
        self._runs: list[Any] | None = [] if integer else None  # (first keys, first lines, lengths)
        self._run_count = 0
        self._dir = Path(tempfile.mkdtemp(prefix="safeload-unique-"))
        self._schema = pa.schema([("k", pa.int64() if integer else pa.large_string()), ("line", pa.int64())])
        self._sink = pa.OSFile(str(self._dir / "all.arrow"), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self._schema)

    def add(self, keys: Any, lines: Any) -> None:
        """Append a block's keys (no nulls) and their line numbers."""
        import pyarrow as pa

        if len(keys) == 0:
            return
        self.rows += len(keys)
        if self.increasing:
            import numpy as np

            k = keys.to_numpy(zero_copy_only=False)
            ordered = len(k) == 1 or bool((k[1:] > k[:-1]).all())
            if not ordered or (self._last is not None and int(k[0]) <= self._last):
                self.increasing = False
            self._last = int(k[-1])
            if self.increasing and self._runs is not None:
                self._hold(k, np.asarray(lines.to_numpy(zero_copy_only=False), dtype=np.int64))
                return
        if self._runs is not None:
            self._spill_runs()
        if not self.integer and keys.type != pa.large_string():
            keys = keys.cast(pa.large_string())
        self._writer.write_table(pa.table([keys, lines], schema=self._schema))

    def _hold(self, keys: Any, lines: Any) -> None:
        """Keep increasing keys as runs; spill them when there are too many."""
        import numpy as np

        step = (np.diff(keys) != 1) | (np.diff(lines) != 1)
        starts = np.concatenate(([0], np.flatnonzero(step) + 1))
        lengths = np.diff(np.concatenate((starts, [len(keys)])))
        first_keys, first_lines = keys[starts], lines[starts]
        runs = self._runs
        if runs:  # continues the last run of the previous block?
            k0, l0, n0 = runs[-1]
            if int(k0[-1]) + int(n0[-1]) == int(keys[0]) and int(l0[-1]) + int(n0[-1]) == int(lines[0]):
                n0[-1] += lengths[0]
                first_keys, first_lines, lengths = first_keys[1:], first_lines[1:], lengths[1:]
        if len(lengths):
            runs.append((first_keys, first_lines, lengths.astype(np.int64)))
            self._run_count += len(lengths)
        if self._run_count > MAX_RUNS:
            self._spill_runs()

    def _spill_runs(self) -> None:
        """Write the runs held in memory to the spill as rows, a batch at a time."""
        import numpy as np
        import pyarrow as pa

        runs, self._runs = self._runs or [], None
        for first_keys, first_lines, lengths in runs:
            ends = np.cumsum(lengths)
            starts = ends - lengths
            for a in range(0, int(ends[-1]), _RUN_BATCH):
                pos = np.arange(a, min(a + _RUN_BATCH, int(ends[-1])), dtype=np.int64)
                run = np.searchsorted(ends, pos, side="right")
                step = pos - starts[run]
                self._writer.write_table(pa.table([pa.array(first_keys[run] + step),
                                                   pa.array(first_lines[run] + step)], schema=self._schema))

    def finish(self) -> tuple[int, list[tuple[int, Any, int]]]:
        """``(repeated rows, [(line, key, line of its first occurrence), ...])``, the first by line."""
        import pyarrow as pa

        self._runs = None
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
