"""Rows that PostgreSQL 17+ skips itself during the straight COPY, quarantined with their
line and reason (:class:`SkippedRows`).

``COPY ... (ON_ERROR ignore, LOG_VERBOSITY verbose)`` loads every row whose values its
input functions accept and, for each one they refuse, sends a NOTICE naming the line,
the column and the value. The good rows are then loaded at COPY speed; only the skipped
ones are looked up again in the source (its rows read once, in order, until the last
skipped line), so that the quarantine keeps their raw text and a reason in the words of
the checked path (``column 'amount': '12,5O' is not a numeric(12,2)``).

What ``ON_ERROR`` does not cover (a row with too many or too few fields, an empty NOT NULL
value, a broken CHECK constraint, another partition's row) still fails the COPY, and the
checked path takes over as on older servers. The line numbers are trusted only when the
source's own reading agrees: each skipped row's refused value must be the value the
source has in that line and column; otherwise (a CRLF file with line feeds inside
quoted fields, where COPY counts lines differently) the checked path runs instead.
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Iterator

import psycopg
from psycopg import sql

from safeload.contracts.types import check_value, parse_type
from safeload.loads import sql as q
from safeload.loads.sources.base import Source

#: the first PostgreSQL with ``ON_ERROR`` and ``LOG_VERBOSITY`` for COPY
SINCE = 170000

_NOTICE = re.compile(r'skipping row due to data type incompatibility at line (\d+) for column "(.*)": "(.*)"\Z',
                     re.S)
#: PostgreSQL shortens a value it prints in a COPY message to this many bytes and "..."
_SHOWN = 100


def supported(conn: psycopg.Connection) -> bool:
    """Whether the server can skip and name refused rows itself (PostgreSQL 17 or later)."""
    return conn.info.server_version >= SINCE


def options() -> sql.Composable:
    """The COPY options that make the server skip refused rows and name each one."""
    return sql.SQL("on_error ignore, log_verbosity verbose")


class Misaligned(Exception):
    """A skipped row the source's reading does not find as COPY named it: the checked path
    must run instead."""


class SkippedRows:
    """The NOTICEs of one COPY's skipped rows, spooled to a temporary file (memory stays flat
    however many there are), then resolved to the source's lines and raw text.

    :param conn: the connection the COPY runs on (its notices are collected while this
        object is in use as a context manager)
    """

    def __init__(self, conn: psycopg.Connection):
        self._conn = conn
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file)
        self.count = 0
        self.unreadable = 0  # notices of this kind that did not parse (a server in another language)

    def __enter__(self) -> SkippedRows:
        self._conn.add_notice_handler(self._notice)
        # the per-row notices are NOTICEs: make sure the session sends them
        self._conn.execute("select set_config('client_min_messages', 'notice', true)")
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.remove_notice_handler(self._notice)

    def close(self) -> None:
        self._file.close()

    def _notice(self, diag: psycopg.errors.Diagnostic) -> None:
        text = diag.message_primary or ""
        m = _NOTICE.match(text)
        if m is None:
            if text.startswith("skipping row"):
                self.unreadable += 1
            return
        self.count += 1
        self._writer.writerow((m.group(1), m.group(2), m.group(3)))

    def _noticed(self) -> Iterator[tuple[int, str, str]]:
        self._file.flush()
        self._file.seek(0)
        for line, column, value in csv.reader(self._file):
            yield int(line), column, value

    def resolve(self, source: Source, header: list[str], mapping: dict[str, str | None],
                info: q.TargetInfo) -> Iterator[tuple[int, str, str]]:
        """``(line, raw text, reason)`` of every skipped row, read again from ``source``.

        :raises Misaligned: when a skipped row is not where COPY said (the caller then
            loads the source by the checked path)
        """
        if self.unreadable:
            raise Misaligned(f"{self.unreadable} skipped row(s) were reported in a form not understood")
        if not self.count:
            return
        by_column = {mapping[h] or h: i for i, h in enumerate(header)}
        noticed = self._noticed()
        want = next(noticed, None)
        for line, values, raw in source.rows(header):
            if want is None:
                return
            if line < want[0]:
                continue
            wanted_line, column, shown = want
            i = by_column.get(column)
            if line > wanted_line or i is None or i >= len(values) or not _same(values[i], shown):
                raise Misaligned(f"COPY skipped line {wanted_line} (column {column!r}), which the source does not "
                                 "have as COPY read it")
            yield line, raw, _reason(header[i], values[i], info.column(column))
            want = next(noticed, None)
        if want is not None:
            raise Misaligned(f"COPY skipped line {want[0]}, past the source's last row")


def _same(value: str | None, shown: str) -> bool:
    """Whether the source's value is the one COPY printed (which shortens long values)."""
    if value is None:
        return False
    if value == shown:
        return True
    return shown.endswith("...") and len(shown.encode()) > _SHOWN and value.startswith(shown[:-3])


def _reason(name: str, value: str, column: q.TargetColumn | None) -> str:
    """Why the row was skipped, as the checked path says it."""
    type_name = column.type if column is not None else "its column's type"
    try:
        why = check_value(value, parse_type(type_name)) if column is not None else None
    except ValueError:
        why = None  # a type safeload does not check
    return f"column {name!r}: {why or f'{value!r} is not a valid {type_name} (refused by PostgreSQL)'}"
