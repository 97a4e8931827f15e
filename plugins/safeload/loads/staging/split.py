"""A CSV source's bytes re-cut at record boundaries, so that several COPY streams can each
take whole records (:func:`record_blocks`).

A record ends at a line feed outside quotes. In CSV as PostgreSQL and Python read it
(QUOTE and ESCAPE both ``"``), a quote inside a quoted field is doubled, so a line feed
is outside quotes exactly when the number of quote characters before it is even. Each
block is counted once with ``bytes.count`` (C speed), and its tail is walked back over
its last line feeds until one is found at an even count: the cost is one pass over the
bytes, whatever the quoting. UTF-8 never puts the bytes of ``"`` or a line feed inside
another character, so the cut is never inside a character either.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

QUOTE = b'"'
NEWLINE = b"\n"


def record_end(data: bytes | bytearray, start: int = 0) -> int:
    """The offset just past the first record of ``data[start:]`` (``data[start]`` begins a
    record), or -1 when ``data`` holds no whole record from there."""
    quotes = 0
    pos = start
    while True:
        nl = data.find(NEWLINE, pos)
        if nl < 0:
            return -1
        quotes += data.count(QUOTE, pos, nl)
        if quotes % 2 == 0:
            return nl + 1
        pos = nl + 1


def last_record_end(data: bytes | bytearray, start: int = 0, stop: int | None = None) -> int:
    """The offset just past the last whole record of ``data[start:stop]`` (``data[start]``
    begins a record), or -1 when it holds none: the last line feed with an even number of
    quotes between ``start`` and it."""
    end = len(data) if stop is None else min(stop, len(data))
    after = 0  # quotes between the candidate line feed and the end
    total = data.count(QUOTE, start, end)
    while True:
        nl = data.rfind(NEWLINE, start, end)
        if nl < 0:
            return -1
        after += data.count(QUOTE, nl, end)
        if (total - after) % 2 == 0:
            return nl + 1
        end = nl


def record_blocks(blocks: Iterable[bytes], *, skip_header: bool = False, size: int | None = None) -> Iterator[bytes]:
    """``blocks`` re-cut so that each one holds whole records only (the last may lack its
    final line feed, as the file does).

    :param blocks: the source's bytes, in blocks of any size, the first beginning a record
    :param skip_header: drop the first record (the CSV header line)
    :param size: cut blocks of about this many bytes (a record longer than that makes a
        block of its own); None: as the source's blocks come
    """
    carry = bytearray()
    header = skip_header
    for block in blocks:
        carry += block
        if header:
            end = record_end(carry)
            if end < 0:
                continue  # the header goes on in the next block
            del carry[:end]
            header = False
        cut = last_record_end(carry)
        if cut <= 0:
            continue  # one record longer than the block: gather more
        yield from _pieces(memoryview(carry)[:cut], size)
        del carry[:cut]
    if carry and not header:
        yield from _pieces(memoryview(carry), size)


def _pieces(data: memoryview, size: int | None) -> Iterator[bytes]:
    """``data`` (whole records) in pieces of about ``size`` bytes, each of whole records."""
    whole = data.obj  # the buffer ``data`` begins at: the offsets below are the same in both
    try:
        start = 0
        while size is not None and len(data) - start > size:
            cut = last_record_end(whole, start, start + size)
            if cut <= start:  # one record longer than size
                cut = record_end(whole, start)
                cut = len(data) if cut < 0 or cut > len(data) else cut
            yield bytes(data[start:cut])
            start = cut
        if start < len(data):
            yield bytes(data[start:])
    finally:
        data.release()
