"""What every source gives the stage (:class:`Source`), and the size of its COPY writes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from psycopg import sql

COPY_BLOCK = 1 << 20  # bytes per COPY write: large enough to amortise calls, small enough to stay flat


@dataclass
class StraightCopy:
    """A source's bytes as ``COPY ... FROM STDIN`` takes them, and what to call them.

    :param blocks: the bytes, in blocks of about :data:`COPY_BLOCK`
    :param options: appended to the ``COPY`` statement (e.g. ``(format csv, header true)``)
    :param empty: what a source without rows is called in the refusal (``... has a header but no rows``)
    :param empty_name: what ``allow_empty=True`` accepts (``an empty delivery``)
    :param what: the COPY, in the log line saying it fell back to the checked path
    :param format: COPY's format of the bytes (``csv``, ``text``), which ``options`` spell;
        None: only ``options`` say. Known, the loader can add options of its own (FREEZE,
        ON_ERROR) and, for ``csv``, split the bytes at record boundaries into parallel streams
    :param header: the bytes begin with a header line (``options`` say ``header true``)
    :param size: how many bytes the source holds, where known before reading (a file's
        size on disk, an object's in the store; compressed, for a gzipped file)
    """

    blocks: Iterator[bytes]
    options: sql.Composable
    empty: str
    empty_name: str
    what: str
    format: str | None = None
    header: bool = False
    size: int | None = None


class Source(Protocol):
    """A source of one load, as the stage reads it.

    ``str(source)`` names it in the history, the quarantine and every error (never a
    secret). ``place`` is the word for a row's position in it (``line`` of a file, ``row``
    of a query result); ``empty_is_null`` says whether an empty field is NULL (in a file;
    a query result tells NULL from ``''`` itself).
    """

    place: str
    empty_is_null: bool

    def open(self) -> Source: ...

    def close(self) -> None: ...

    def columns(self) -> list[str]:
        """The source's column names, in order."""

    def straight(self) -> StraightCopy | None:
        """The whole source for one COPY, or None when its format has no such path."""

    def rows(self, header: list[str]) -> Iterator[tuple[int, list[Any], str]]:
        """(line or row number, values as text, the row's raw text) for each row, streamed."""
