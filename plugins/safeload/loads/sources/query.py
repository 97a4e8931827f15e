"""A PostgreSQL query as the source of a load (:class:`QuerySource`).

The result streams from ``COPY (query) TO STDOUT`` on the source database into the
warehouse's ``COPY ... FROM STDIN``, with no row parsed in Python on the usual path; the
checked path re-reads it row by row in the same snapshot. The query is checked to be
one statement, and every label and error names the database without its password. See
docs/decisions/014-query-sources.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import sql

from safeload.errors import SourceError, SourceUnavailableError
from safeload.loads.sources.base import COPY_BLOCK, StraightCopy


class QuerySource:
    """A PostgreSQL query whose result is the source of a load, streamed with COPY.

    The result goes ``COPY (query) TO STDOUT`` on the source connection straight into
    ``COPY staging FROM STDIN`` on the warehouse, in 1 MiB blocks: memory stays flat
    whatever the size, and no row is parsed in Python on the usual path. Text format:
    the target's input functions cast the result's values, exactly as for a CSV file
    (binary COPY measured no faster here and would need the result's types to match the
    target's exactly; see docs/decisions/002).

    The source session is one ``REPEATABLE READ READ ONLY`` transaction, so the column
    look-up, the COPY and (when a value does not fit the target) the checked re-read all
    see the same snapshot of the source.

    .. code-block:: python

        src = QuerySource.from_conninfo("postgresql://reader@shop-db/shop",
                                        "select * from shop.orders where order_date = '2024-05-01'")
        PartitionLoader(connect, table="public.orders", ...).run(src)

    :param connect: returns a new psycopg connection to the source database
    :param query: one SELECT (or VALUES, TABLE, WITH ... SELECT) statement, without parameters;
        trailing ``;`` and comments are ignored, a second statement is refused
    :param label: names the source in the history, quarantine and errors; must not hold a
        secret (:meth:`from_conninfo` builds one without the password)
    """

    place = "row"
    empty_is_null = False  # a query result tells NULL from '' itself

    def __init__(self, connect: Callable[[], psycopg.Connection], query: str, *, label: str | None = None,
                 secrets: tuple[str, ...] = ()):
        text = _strip_tail((query or "").strip())
        if not text:
            raise SourceError("the source query is empty; give one SELECT statement")
        self.connect = connect
        self.query = text
        self.label = label or f"query: {_abbreviate(text)}"
        self._secrets = tuple(s for s in secrets if s)
        self._conn: psycopg.Connection | None = None
        self._one_statement = False  # columns() has seen the query parse as one statement

    @classmethod
    def from_conninfo(cls, conninfo: str, query: str) -> QuerySource:
        """A query on the database at ``conninfo`` (URI or ``key=value``); the label
        and every error name host, port, database and user, never the password."""
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError:
            raise SourceError("the source connection string is malformed; expected "
                              "postgresql://user@host:port/database") from None
        where = (f"postgresql://{params.get('user') or ''}{'@' if params.get('user') else ''}"
                 f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}/{params.get('dbname') or ''}")
        password = str(params.get("password") or "")
        return cls(lambda: psycopg.connect(conninfo, application_name="safeload-source"), query,
                   label=f"{where} query: {_abbreviate(query)}", secrets=(password,))

    def __str__(self) -> str:
        return self.label

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _fail(self, e: psycopg.Error, doing: str) -> SourceError:
        primary = (e.diag.message_primary if getattr(e, "diag", None) and e.diag.message_primary
                   else str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        state = getattr(e, "sqlstate", None) or ""
        # a refused or dropped connection, a server shutting down, a serialisation
        # conflict: another try may succeed. A bad query or missing grant will not.
        transient = (state == "" and isinstance(e, psycopg.OperationalError)) or state.startswith(("08", "57P", "40"))
        cls = SourceUnavailableError if transient else SourceError
        return cls(self._scrub(f"{self.label}: {doing} failed: {primary}"))

    def open(self) -> QuerySource:
        conn = None
        try:
            conn = self.connect()
            conn.autocommit = True
            # the result travels as text: print it in the forms every server reads back the
            # same (a database set to DateStyle 'SQL, DMY' prints 03/05/2024, which a
            # warehouse in MDY reads as March 5th; extra_float_digits < 1 rounds doubles)
            conn.execute("select set_config('datestyle', 'ISO, YMD', false), "
                         "set_config('intervalstyle', 'postgres', false), "
                         "set_config('extra_float_digits', '1', false)")
            conn.autocommit = False
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
        except psycopg.Error as e:
            if conn is not None:
                conn.close()
            raise self._fail(e, "connecting to the source database") from None
        self._conn = conn
        self._one_statement = False
        return self

    @property
    def connection(self) -> psycopg.Connection:
        """The open source connection (its read-only snapshot), for reading the result's types."""
        assert self._conn is not None, "open() the source first"
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # rolls the read-only transaction back
            self._conn = None

    def __enter__(self) -> QuerySource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def columns(self) -> list[str]:
        """The result's column names, from a ``LIMIT 0`` run of the query (no rows read)."""
        assert self._conn is not None, "open() the source first"
        try:
            # prepare=True: the extended protocol, which refuses a string of several statements.
            # The simple one would run them all, and a COMMIT among them would end the read-only
            # transaction, letting the next statement write (or drop) on the source. (Not
            # binary=True: a type without a binary output function would fail.)
            cur = self._conn.cursor()
            cur.execute(sql.SQL("select * from (\n{}\n) as safeload_source limit 0").format(sql.SQL(self.query)),
                        prepare=True)
        except psycopg.errors.SyntaxError as e:
            if "multiple commands" in (e.diag.message_primary or ""):
                raise SourceError(f"{self.label}: the query holds more than one statement; give one SELECT "
                                  "(a ';' may only end it)") from None
            raise self._fail(e, "the query") from None
        except psycopg.Error as e:
            raise self._fail(e, "the query") from None
        names = [d.name for d in cur.description or []]
        seen: set[str] = set()
        for n in names:
            if n == "?column?":
                raise SourceError(f"{self.label}: a result column has no name; name it with AS")
            if n in seen:
                raise SourceError(f"{self.label}: the result has two columns named {n!r}; alias one of them with AS")
            seen.add(n)
        self._one_statement = True
        return names

    def blocks(self, size: int = COPY_BLOCK) -> Iterator[bytes]:
        """The result in COPY text format, in blocks of about ``size`` bytes."""
        assert self._conn is not None, "open() the source first"
        if not self._one_statement:
            self.columns()  # COPY goes through the simple protocol: one statement, checked first
        stmt = sql.SQL("copy (\n{}\n) to stdout").format(sql.SQL(self.query))
        try:
            # a savepoint: when the reader stops early (the target refused a value), the
            # interrupted COPY is rolled back to it and the snapshot stays usable for rows()
            with self._conn.transaction(), self._conn.cursor().copy(stmt) as out:
                buf = bytearray()
                # one COPY message per row: gather them, so the target gets few large writes
                for data in out:
                    buf += data
                    if len(buf) >= size:
                        yield bytes(buf)
                        buf.clear()
                if buf:
                    yield bytes(buf)
        except psycopg.Error as e:
            raise self._fail(e, "the query") from None

    def straight(self) -> StraightCopy:
        """The result for one COPY into staging: the source server's COPY text as it comes."""
        return StraightCopy(self.blocks(), sql.SQL(""), f"{self} returned no rows", "an empty result",
                            "straight COPY of the query result")

    def rows(self, header: list[str]) -> Iterator[tuple[int, list[Any], str]]:
        """(result row number, values as text, the row as JSON) for the checked path."""
        assert self._conn is not None, "open() the source first"
        if not self._one_statement:
            self.columns()
        stmt = sql.SQL("copy (\n{}\n) to stdout").format(sql.SQL(self.query))
        try:
            with self._conn.cursor().copy(stmt) as out:
                for n, row in enumerate(out.rows(), 1):
                    values = list(row)
                    yield n, values, json.dumps(dict(zip(header, values)), ensure_ascii=False)
        except psycopg.Error as e:
            raise self._fail(e, "the query") from None


_DOLLAR_QUOTE = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z_0-9\x80-\U0010ffff]*)?\$")


def _strip_tail(text: str) -> str:
    """``text`` without the semicolons, comments and white space after its last token.

    The query is wrapped in ``copy (\\n...\\n) to stdout``: a ``;`` there is a syntax error,
    and a templated .sql file often ends in ``; -- comment``. Quotes (``'...'``, ``E'...'``,
    ``"..."``, dollar quotes) and comments are followed so that a ``--`` inside a string
    is not taken for a comment. Semicolons before the last token stay (and are refused:
    one statement only).
    """
    n, i, end = len(text), 0, 0
    while i < n:
        c = text[i]
        if c.isspace() or c == ";":
            i += 1
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif text.startswith("/*", i):  # comments nest in PostgreSQL
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            if depth:
                end = n  # unterminated: left for PostgreSQL to report
        elif c in "'\"":
            escapes = c == "'" and i > 0 and text[i - 1] in "eE" and (i < 2 or not (text[i - 2].isalnum()
                                                                                   or text[i - 2] == "_"))
            j = i + 1
            while j < n:
                if escapes and text[j] == "\\":
                    j += 2
                    continue
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:  # '' inside '...'
                        j += 2
                        continue
                    break
                j += 1
            i = end = min(j + 1, n)
        elif c == "$" and (m := _DOLLAR_QUOTE.match(text, i)) and not (i and (text[i - 1].isalnum()
                                                                             or text[i - 1] in "_$")):
            close = text.find(m.group(0), m.end())
            i = end = n if close < 0 else close + len(m.group(0))
        else:
            i = end = i + 1
    return text[:end]


def _abbreviate(query: str, limit: int = 160) -> str:
    """A query on one line, shortened: enough to recognise it in the history."""
    one = " ".join(query.split())
    return one if len(one) <= limit else one[: limit - 3] + "..."
