"""Several COPY streams into one table at once (:func:`copy_streams`).

One reader (the calling thread) hands whole-record blocks
(:func:`safeload.loads.staging.split.record_blocks`) to N writer threads in turn (block
``i`` to stream ``i % N``: every stream gets its share, whatever the timing), each through
a bounded queue of its own; each writer sends them into ``COPY ... FROM STDIN`` on its own
connection, in its own transaction, committed when its stream ends. At most two blocks
wait per stream, so memory grows by a few blocks per stream, not with the source.

The first error in any stream stops them all: the reader stops reading, every other
writer abandons its COPY (rolled back), and the error is raised. Streams that had
already committed leave their rows in the table: the caller treats the table as
unfinished (its registry row says so) and drops it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

#: how long a blocked hand-over waits before looking again whether a stream failed
POLL_S = 0.2


class Stopped(Exception):
    """Another stream failed: this one abandons its COPY (rolled back)."""


def copy_streams(connections: list[psycopg.Connection], copy_sql: sql.Composable, blocks: Iterable[bytes],
                 prepare: Callable[[psycopg.Connection], None] | None = None) -> list[int]:
    """COPY ``blocks`` into one table through ``connections`` at once; the rows each loaded.

    :param connections: one open connection (autocommit) per stream
    :param copy_sql: the ``COPY ... FROM STDIN`` statement every stream runs (no header)
    :param blocks: whole records per block, in the source's order
    :param prepare: run in each stream's transaction before its COPY (e.g. ``lock_timeout``)
    :raises: the first stream's error (a data error, a lost connection), after every
        stream has ended
    """
    n = len(connections)
    queues: list[queue.Queue[bytes | None]] = [queue.Queue(maxsize=2) for _ in range(n)]
    stop = threading.Event()
    errors: list[BaseException] = []
    rows = [0] * n

    def write(i: int) -> None:
        conn, todo = connections[i], queues[i]
        try:
            with conn.transaction():
                if prepare is not None:
                    prepare(conn)
                cur = conn.cursor()
                with cur.copy(copy_sql) as copy:
                    while True:
                        try:
                            block = todo.get(timeout=POLL_S)
                        except queue.Empty:
                            if stop.is_set():
                                raise Stopped from None
                            continue
                        if block is None:
                            break
                        if stop.is_set():
                            raise Stopped
                        copy.write(block)
                    if stop.is_set():
                        raise Stopped  # roll back rather than commit beside a failed stream
                rows[i] = cur.rowcount
        except Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller's thread
            errors.append(e)
            stop.set()

    writers = [threading.Thread(target=write, args=(i,), name=f"safeload-copy-{i}", daemon=True) for i in range(n)]
    for w in writers:
        w.start()
    try:
        for k, block in enumerate(blocks):
            if not hand_over(queues[k % n], block, stop):
                break
    except BaseException as e:
        errors.insert(0, e)  # the source failed (unreadable, truncated): that is the error to report
        stop.set()
    finally:
        for todo in queues:  # one end marker per stream (after a failure, the streams stop by themselves)
            hand_over(todo, None, stop)
        for w in writers:
            w.join()
    if errors:
        raise errors[0]
    return rows


def open_sessions(connect: Callable[[], psycopg.Connection], n: int, label: str) -> list[psycopg.Connection] | None:
    """``n`` new sessions for COPY streams; None (and a warning) when the server refuses
    one (``max_connections`` reached, a pool exhausted): the caller then loads in one
    stream, as it would have without them."""
    conns: list[psycopg.Connection] = []
    try:
        for _ in range(n):
            conns.append(connect())
    except psycopg.OperationalError as e:
        for c in conns:
            c.close()
        log.warning("%s: could not open %s more session(s) for parallel COPY streams (%s); loading it in one "
                    "stream", label, n, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        return None
    return conns


def hand_over(todo: queue.Queue, block: bytes | None, stop: threading.Event) -> bool:
    """Put ``block`` in the queue, waiting while it is full; False once a stream has failed."""
    while not stop.is_set():
        try:
            todo.put(block, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False
