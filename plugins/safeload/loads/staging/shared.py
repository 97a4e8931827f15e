"""One CSV source COPYed through the caller's own session and helper sessions at once, from
one queue of pieces (:class:`SharedCopy`): a direct load in several streams
(:mod:`safeload.loads.publish.direct`).

A reader thread cuts the source into whole-record pieces
(:func:`safeload.loads.staging.split.record_blocks`) and puts them in one bounded queue;
each stream takes the next piece when it is ready for one. The caller's stream is the
publishing transaction's own COPY into the target, which starts after that
transaction's DELETE of the old rows: until then the helpers take every piece, so the
DELETE and the first part of the COPY run side by side on the server's cores. Each
helper COPYs into a side table in a transaction of its own, committed when the source
ends; the caller then copies their rows into the target (``INSERT ... SELECT``) inside
its transaction, which decides what readers see.

The first error in any stream, or in the reader, stops them all: the reader stops
reading, every helper abandons its COPY (rolled back), and the caller's COPY raises that
error. At most two pieces per stream wait in the queue: memory stays flat in the source's
size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType

import psycopg
from psycopg import sql

from safeload.loads.staging.streams import POLL_S, Stopped, hand_over


class SharedCopy:
    """COPY ``blocks`` through the caller's session (:meth:`copy_here`) and ``helpers`` at
    once; used as a context manager, which starts the reader and the helpers on entry and
    stops and joins them on exit.

    :param helpers: one open connection (autocommit) per helper stream
    :param helper_sql: the ``COPY ... FROM STDIN`` every helper runs (no header)
    :param blocks: whole records per piece, in the source's order
    :param prepare: run in each helper's transaction before its COPY (e.g. ``lock_timeout``)
    """

    def __init__(self, helpers: list[psycopg.Connection], helper_sql: sql.Composable, blocks: Iterable[bytes],
                 prepare: Callable[[psycopg.Connection], None] | None = None):
        self._helpers, self._helper_sql, self._blocks, self._prepare = helpers, helper_sql, blocks, prepare
        self._streams = len(helpers) + 1
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=2 * self._streams)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._rows = [0] * len(helpers)
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> SharedCopy:
        self._threads = [threading.Thread(target=self._help, args=(i,), name=f"safeload-copy-beside-{i}",
                                          daemon=True) for i in range(len(self._helpers))]
        self._threads.append(threading.Thread(target=self._read, name="safeload-copy-reader", daemon=True))
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._stop.set()  # the caller failed: the helpers roll back, the reader stops
        for t in self._threads:
            t.join()

    def copy_here(self, cursor: psycopg.Cursor, copy_sql: sql.Composable) -> int:
        """The caller's stream: COPY pieces from the queue until the source ends; the rows
        it loaded (not committed: the caller's transaction decides). Raises the first
        error of any stream or of the reader."""
        try:
            with cursor.copy(copy_sql) as copy:
                for piece in self._pieces():
                    copy.write(piece)
                if self._stop.is_set():
                    raise Stopped
        except Stopped:
            raise self._first_error() from None
        return cursor.rowcount

    def helper_rows(self) -> list[int]:
        """Wait for every helper to commit; the rows each loaded. Raises the first error of
        any stream or of the reader."""
        for t in self._threads:
            t.join()
        if self._errors:
            raise self._errors[0]
        return list(self._rows)

    def _first_error(self) -> BaseException:
        for t in self._threads:  # every other stream ends once it sees the stop
            t.join()
        return self._errors[0] if self._errors else RuntimeError("a COPY stream stopped without an error")

    def _pieces(self) -> Iterator[bytes]:
        while True:
            try:
                piece = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    raise Stopped from None
                continue
            if piece is None:
                return
            if self._stop.is_set():
                raise Stopped
            yield piece

    def _help(self, i: int) -> None:
        conn = self._helpers[i]
        try:
            with conn.transaction():
                if self._prepare is not None:
                    self._prepare(conn)
                cur = conn.cursor()
                with cur.copy(self._helper_sql) as copy:
                    for piece in self._pieces():
                        copy.write(piece)
                    if self._stop.is_set():
                        raise Stopped  # roll back rather than commit beside a failed stream
                self._rows[i] = cur.rowcount
        except Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            self._errors.append(e)
            self._stop.set()

    def _read(self) -> None:
        blocks = iter(self._blocks)
        try:
            for piece in blocks:
                if not hand_over(self._queue, piece, self._stop):
                    break
        except BaseException as e:  # noqa: BLE001 - the source failed (unreadable, truncated): the error to report
            self._errors.insert(0, e)
            self._stop.set()
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:
                close()  # stop reading the source now, not when garbage-collected
            for _ in range(self._streams):  # one end marker per stream
                hand_over(self._queue, None, self._stop)
