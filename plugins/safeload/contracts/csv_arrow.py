"""The Arrow CSV engine: the typed scan of decision 013, split and checked a block at a time.

The file is read in blocks of :data:`ARROW_BLOCK_BYTES` cut after a line end outside
quotes. A thread of its own reads the next block and has Arrow split it into string
columns while the caller checks the current one (:class:`BlockReader`): Arrow's parser
and kernels leave Python's lock, so the two cores of a small machine both work.

A block Arrow can split exactly as Python's csv module would (no quote character, NUL
or lone carriage return, one row per line of the header's width) is checked column by
column (:meth:`safeload.contracts.csv_scan.CsvScanState.check_table`): row ``k`` is
line ``first_line + k``. Any other block (quoted fields, ragged or blank lines) is split
by Python's csv module into rows with their lines, then checked in bulk the same way.
When the file itself is in doubt (a header Arrow cannot place, bytes that are not UTF-8,
broken quoting, a corrupt gzip stream), :func:`scan_csv_arrow` returns ``False``: the
caller scans with Python, whose error messages name the line.
"""

from __future__ import annotations

import csv
import io
import queue
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safeload.contracts.csv_scan import BATCH_ROWS, CsvScanState
from safeload.contracts.source import MAX_EXAMPLES, SourceSchema
from safeload.storage import open_bytes

if TYPE_CHECKING:
    from safeload.contracts.model import Contract

#: bytes read per block (memory stays a few times this, whatever the file)
ARROW_BLOCK_BYTES = 8 << 20
#: a block that must grow past this to end outside a quoted field sends the scan to Python
ARROW_MAX_BLOCK_BYTES = 64 << 20
#: blocks read ahead of the check (each holds its Arrow table)
READ_AHEAD = 2


class UsePython(Exception):
    """The Arrow engine cannot vouch for this file: scan it again with the Python engine."""


def line_ends(buf: bytes | bytearray, end: int) -> tuple[int, bool]:
    r"""``(line ends, any lone CR)`` in ``buf[:end]``, counting line ends as Python's
    ``newline=''`` reading does: ``\n``, ``\r\n`` and a lone ``\r``. Counted by numpy,
    which leaves Python's lock to the checking thread."""
    import numpy as np

    data = np.frombuffer(buf, dtype=np.uint8, count=end)
    lf = int(np.count_nonzero(data == 10))
    if buf.find(b"\r", 0, end) < 0:  # memchr: far cheaper than counting
        return lf, False
    cr = data == 13
    crlf = int(np.count_nonzero(cr[:-1] & (data[1:] == 10)))
    crs = int(np.count_nonzero(cr))
    return lf + crs - crlf, crs != crlf


class BlockReader:
    """The blocks of a CSV file, read and split in a thread of their own.

    Iterating gives ``("arrow", table, lines)`` for a block Arrow split (string columns;
    ``lines`` is the first row's line when each row is one line, else an Arrow array of
    the line of each row) and ``("python", text_bytes, first_line)`` for a block Python's
    csv module must read; an error of the reading thread is raised by the
    iteration. Leaving the ``with`` block stops the thread.

    :param path: the CSV or CSV.gz file
    :param header: the column names the first line must hold (else :class:`UsePython`)
    """

    def __init__(self, path: str | Path, header: list[str]):
        self.path = path
        self.header = header
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=READ_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="safeload-csv-blocks", daemon=True)

    def __enter__(self) -> BlockReader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():  # let a waiting put() see the stop
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def __iter__(self) -> Iterator[tuple[str, Any, Any]]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._blocks():
                if not self._put(item):
                    return
            self._put(None)
        except BaseException as e:  # noqa: BLE001 - handed to the reading side, which raises it
            self._put(e)

    def _blocks(self) -> Iterator[tuple[str, Any, Any]]:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        names = [f"c{i}" for i in range(len(self.header))]
        # one chunk per column (no copy to join chunks), parsed on this thread while the
        # caller checks the previous block on the other core
        self._read_options = pacsv.ReadOptions(column_names=names, use_threads=False,
                                               block_size=ARROW_MAX_BLOCK_BYTES + 1)
        # (check UTF-8?) -> options: a block of ASCII bytes is valid UTF-8, no need to check
        self._convert_options = {utf8: pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, null_values=[], strings_can_be_null=False,
            quoted_strings_can_be_null=False, check_utf8=utf8) for utf8 in (False, True)}
        # (quoted?) -> options: without a quote in the block, the parser need not look for one
        self._parse_options = {False: pacsv.ParseOptions(quote_char=False),
                               True: pacsv.ParseOptions(newlines_in_values=True)}
        with open_bytes(self.path) as raw:
            first = raw.readline()
            if first.startswith(b"\xef\xbb\xbf"):
                first = first[3:]
            # a header Python reads otherwise (a quoted line break, a NUL, a lone CR) is not ours
            if first.count(b'"') % 2 or b"\x00" in first or line_ends(first, len(first))[1]:
                raise UsePython
            try:
                if next(csv.reader([first.decode("utf-8").rstrip("\r\n")], strict=True), None) != self.header:
                    raise UsePython
            except csv.Error:
                raise UsePython from None
            line, carry, eof = 2, b"", False
            buf = bytearray(ARROW_BLOCK_BYTES)
            while not eof:
                if len(buf) < len(carry) + ARROW_BLOCK_BYTES:
                    buf = bytearray(len(carry) + ARROW_BLOCK_BYTES)
                with memoryview(buf) as view:
                    view[:len(carry)] = carry
                    got = raw.readinto(view[len(carry):len(carry) + ARROW_BLOCK_BYTES])
                    eof = not got
                    total = len(carry) + got
                    cut = total if eof else buf.rfind(b"\n", 0, total) + 1
                    if not eof and cut and buf.find(b'"', 0, cut) >= 0:
                        cut = cut_outside_quotes(buf, cut)
                    if not eof and cut == 0:  # no line end outside a quoted field yet: read on
                        if total > ARROW_MAX_BLOCK_BYTES:
                            raise UsePython
                        carry = bytes(view[:total])
                        continue
                    carry = bytes(view[cut:total])
                    if not cut:
                        continue
                    breaks, lone = line_ends(buf, cut)
                    split = None if lone else self._split(buf, cut, breaks)
                    if split is None:
                        yield "python", bytes(view[:cut]), line
                    else:
                        table, rows = split
                        yield "arrow", table, line if rows is None else pa.array(rows + line, pa.int64())
                    line += breaks

    def _split(self, buf: bytearray, cut: int, breaks: int) -> tuple[Any, Any] | None:
        """The block ``buf[:cut]`` (``breaks`` line ends, no lone CR) as Arrow string columns
        and the lines of its rows (None: row ``k`` is on line ``k``; else a numpy array of
        lines counted from the block's first), or None when Arrow cannot vouch for its
        rows and lines (quotes Python reads otherwise, NUL, ragged or blank lines)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.csv as pacsv

        if buf.find(b"\x00", 0, cut) >= 0:
            return None
        quotes = None
        if buf.find(b'"', 0, cut) >= 0:
            quotes = plain_quotes(buf, cut)
            if quotes is None:
                return None
        ascii_only = int(np.frombuffer(buf, dtype=np.uint8, count=cut).max()) < 0x80
        with memoryview(buf) as view:
            try:
                table = pacsv.read_csv(pa.BufferReader(pa.py_buffer(view[:cut])), read_options=self._read_options,
                                       convert_options=self._convert_options[not ascii_only],
                                       parse_options=self._parse_options[quotes is not None])
            except pa.ArrowInvalid:  # ragged rows, bytes that are not UTF-8: Python says where
                return None
        lines = breaks + (0 if buf[cut - 1] in (10, 13) else 1)
        if table.num_rows == lines:  # one row per line
            return table, None
        if quotes is None:  # blank lines: line numbers would shift
            return None
        rows = quoted_row_lines(buf, cut, quotes)  # line breaks inside quoted fields
        return (table, rows) if table.num_rows == len(rows) else None


def cut_outside_quotes(buf: bytes | bytearray, end: int) -> int:
    """Where to end a block of ``buf[:end]``: after its last line end preceded by an even
    number of quotes (outside a quoted field), or 0 when there is none."""
    import numpy as np

    data = np.frombuffer(buf, dtype=np.uint8, count=end)
    is_quote = data == 34
    if np.count_nonzero(is_quote) % 2 == 0:  # the last line end (at end - 1) is outside
        return end
    quotes = np.flatnonzero(is_quote)
    newlines = np.flatnonzero(data[:quotes[-1]] == 10)  # before the last, unclosed quote
    outside = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
    return int(outside[-1]) + 1 if len(outside) else 0


def plain_quotes(buf: bytes | bytearray, end: int) -> Any:
    """The positions of the quotes in ``buf[:end]`` when each is plainly a field's opening,
    closing or doubled quote, else None.

    Python's csv module (strict) and Arrow read a quoted field alike, except after a
    closing quote that is followed by something other than a delimiter or a line end,
    which Python refuses and Arrow reads on. So every quote is tested in place: counted
    from the block's start, an opening quote (even) follows a delimiter, a line end or
    the doubled quote of an escape; a closing quote (odd) precedes a delimiter, a line
    end, the end of the file or the second quote of an escape. When all pass, no quote
    stands anywhere else, and the count of quotes before a line end says whether it is
    inside a quoted field (odd) or ends a row (even).
    """
    import numpy as np

    data = np.frombuffer(buf, dtype=np.uint8, count=end)
    quotes = np.flatnonzero(data == 34)
    if len(quotes) % 2:  # a quoted field left open at the end of the file
        return None
    opening, closing = quotes[0::2], quotes[1::2]
    before = data[np.maximum(opening - 1, 0)]
    after = data[np.minimum(closing + 1, end - 1)]
    ok_open = (opening == 0) | (before == 44) | (before == 10) | (before == 13) | (before == 34)
    ok_close = (closing + 1 == end) | (after == 44) | (after == 10) | (after == 13) | (after == 34)
    return quotes if ok_open.all() and ok_close.all() else None


def quoted_row_lines(buf: bytes | bytearray, end: int, quotes: Any) -> Any:
    """The line (counted from 0) on which each row of ``buf[:end]`` ends, given its
    :func:`plain_quotes`: the line ends preceded by an even number of quotes."""
    import numpy as np

    data = np.frombuffer(buf, dtype=np.uint8, count=end)
    newlines = np.flatnonzero(data == 10)
    ends = np.flatnonzero(np.searchsorted(quotes, newlines) % 2 == 0)  # newlines outside quotes
    if data[end - 1] not in (10, 13):  # the last row has no line end (the end of the file)
        ends = np.append(ends, len(newlines))
    return ends.astype(np.int64)


def _python_block(state: CsvScanState, block: bytes, first_line: int) -> None:
    """A block Arrow cannot split (quoted fields, ragged or blank lines): Python's csv module
    splits it, with the line of each row, and the columns are checked in bulk as Arrow's are."""
    import pyarrow as pa

    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise UsePython from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    schema, width = state.schema, state.width
    rows: list[list[str]] = []
    lines: list[int] = []

    def check() -> None:
        columns = list(zip(*rows)) if rows else [()] * width
        table = pa.table({f"c{i}": pa.array(columns[i], pa.string()) for i in range(width)})
        state.check_table(table, pa.array(lines, pa.int64()))
        rows.clear()
        lines.clear()

    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:  # broken quoting, or a block cut inside a quoted field
            raise UsePython from None
        if not row:  # a blank line
            continue
        line = first_line - 1 + reader.line_num
        if len(row) != width:
            schema.ragged_count += 1
            if len(schema.ragged) < MAX_EXAMPLES:
                schema.ragged.append((line, len(row)))
            continue
        rows.append(row)
        lines.append(line)
        if len(rows) >= BATCH_ROWS:
            check()
    if rows:
        check()


def scan_csv_arrow(schema: SourceSchema, contract: Contract | None, path: str | Path) -> bool:
    """Typed scan with Arrow: the same findings as the Python engine, several times faster.

    Returns ``False`` (the schema reset) when the Python engine must scan the file.
    Decision 013 explains the design, 027 the speed; tests/unit/contracts/test_scan_engines.py
    holds both engines to the same findings on faulty files.
    """
    try:
        import pyarrow  # noqa: F401
    except ImportError:  # pragma: no cover - pyarrow is a dependency, but the scan must not need it
        return False

    state = CsvScanState(schema, contract)
    blocks = {"arrow": 0, "python": 0}
    try:
        with BlockReader(path, schema.column_names) as reader:
            for kind, payload, line in reader:
                if kind == "arrow":
                    state.check_table(payload, line, nul_free=True)
                else:
                    _python_block(state, payload, line)
                blocks[kind] += 1
    except (UsePython, UnicodeDecodeError, EOFError, OSError, zlib.error):
        schema.ragged.clear()
        schema.ragged_count = 0
        state.values.close()
        return False
    except BaseException:
        state.values.close()
        raise
    state.finish("arrow")
    schema.scan_blocks = blocks
    return True
