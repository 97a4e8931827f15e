"""Validation of SQL identifiers before they reach :class:`psycopg.sql.Identifier`.

``sql.Identifier`` quotes anything safely, so injection is not the risk here; the risk is
a table nobody asked for (``"orders; drop"``) or a name PostgreSQL silently truncates at
63 bytes, making two names collide. So names are checked for shape, not escaped by hand.
"""

from __future__ import annotations

import re

from safeload.errors import SafeloadError

MAX_IDENTIFIER_BYTES = 63
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


class IdentifierError(SafeloadError, ValueError):
    """A table, schema or column name that safeload refuses.

    A :class:`SafeloadError` (not retryable: the name must change), so the operators
    fail the task instead of retrying it.
    """


def validate_identifier(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise :class:`IdentifierError`.

    Plain means letters, digits, ``_`` and ``$``, not starting with a digit, at most 63
    bytes. Upper case is allowed and kept (it is quoted downstream).
    """
    if not isinstance(name, str) or not name:
        raise IdentifierError(f"{what} is empty; give a name like 'orders'")
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise IdentifierError(
            f"{what} {name!r} is {len(name.encode('utf-8'))} bytes; PostgreSQL truncates names at "
            f"{MAX_IDENTIFIER_BYTES} bytes, so shorten it"
        )
    if not _IDENT_RE.match(name):
        raise IdentifierError(
            f"{what} {name!r} has characters outside [A-Za-z0-9_$] or starts with a digit; "
            "rename it to a plain identifier such as 'order_lines'"
        )
    return name


def validate_table_name(name: str) -> tuple[str, str]:
    """Split ``schema.table`` (schema defaults to ``public``) and validate both parts."""
    parts = name.split(".") if isinstance(name, str) else []
    if len(parts) == 1:
        parts = ["public", parts[0]]
    if len(parts) != 2:
        raise IdentifierError(f"table {name!r} must be 'table' or 'schema.table'")
    schema, table = parts
    return validate_identifier(schema, "schema"), validate_identifier(table, "table")
