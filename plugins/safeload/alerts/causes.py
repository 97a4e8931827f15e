"""The cause chain of an exception and where it was raised, as short text.

Pure: no Airflow import. ``raise RuntimeError("load failed") from
ConnectionRefusedError("db:5432 refused")`` is two errors; the alert names both, the
outermost first and the root cause last, and the place the error was raised: the
innermost frame that is not library code (the standard library, installed packages,
Airflow, safeload), which is usually the line of the DAG author's code that called the
library that failed.

.. code-block:: python

    chain = cause_chain(error)            # [RuntimeError(...), ConnectionRefusedError(...)]
    [describe(e) for e in chain]          # ["RuntimeError: load failed", "ConnectionRefusedError: ..."]
    raising_location(chain, roots=["/opt/airflow/dags"])  # "dags/orders.py:42 in load"
"""

from __future__ import annotations

import os
import re
import sysconfig
from collections.abc import Iterable, Sequence
from types import TracebackType

#: Causes kept in a chain; deeper chains keep the first ones and the root.
MAX_CHAIN = 8
#: One cause's text in an alert.
MAX_CAUSE_TEXT = 240
#: Modules that count as library code wherever they are installed.
LIBRARY_MODULES = ("airflow", "safeload", "pluggy", "sqlalchemy", "psycopg", "psycopg2",
                   "great_expectations", "slack_sdk", "httpx", "urllib3", "requests")

_STDLIB = tuple(
    os.path.normcase(os.path.realpath(p)) + os.sep
    for p in {sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib")}
    if p
)
_PACKAGE_DIRS = re.compile(r"[\\/](site-packages|dist-packages)[\\/]")


def cause_chain(error: BaseException | None, limit: int = MAX_CHAIN) -> list[BaseException]:
    """``error`` and its causes, outermost first: ``__cause__`` (``raise ... from ...``),
    else ``__context__`` unless suppressed (``from None``). Cycle-safe; at most ``limit``
    errors: the first ``limit - 1`` and the root."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current = error
    while current is not None and id(current) not in seen and len(seen) < 100:
        seen.add(id(current))
        chain.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    if len(chain) > limit:
        chain = chain[: limit - 1] + chain[-1:]
    return chain


def describe(error: BaseException, limit: int = MAX_CAUSE_TEXT) -> str:
    """``"Type: message"`` on one line, at most ``limit`` characters (start and end kept)."""
    message = " ".join(str(error).split())
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if len(text) <= limit:
        return text
    head = (limit - 3) * 2 // 3
    return text[:head] + " … " + text[-(limit - 3 - head):]


def is_library(filename: str, module: str | None) -> bool:
    """Whether a frame is library code: the standard library, an installed package, or
    one of :data:`LIBRARY_MODULES` (safeload's own frames included)."""
    if module and module.split(".")[0] in LIBRARY_MODULES:
        return True
    if not filename or filename.startswith("<"):
        return filename.startswith("<frozen")
    if _PACKAGE_DIRS.search(filename):
        return True
    path = os.path.normcase(os.path.realpath(filename))
    return path.startswith(_STDLIB)


def _frames(tb: TracebackType | None) -> list[tuple[str, int, str, str | None]]:
    frames = []
    while tb is not None and len(frames) < 1000:
        code = tb.tb_frame.f_code
        frames.append((code.co_filename, tb.tb_lineno, code.co_name, tb.tb_frame.f_globals.get("__name__")))
        tb = tb.tb_next
    return frames


def short_path(filename: str, roots: Iterable[str] = ()) -> str:
    """``dags/orders.py`` under a root (named by the root's last part), else the last
    three parts of the path."""
    path = os.path.normpath(filename)
    for root in roots:
        if not root:
            continue
        base = os.path.normpath(root)
        if path.startswith(base + os.sep):
            return f"{os.path.basename(base)}/{os.path.relpath(path, base)}".replace(os.sep, "/")
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-3:]) if len(parts) <= 3 else "…/" + "/".join(parts[-3:])


def raising_location(chain: Sequence[BaseException], roots: Iterable[str] = ()) -> str | None:
    """``file:line in function`` of the innermost frame that is not library code.

    The root cause is searched first, then each outer error: a cause made and passed
    to ``raise ... from`` has no frames of its own. Without such a frame, the innermost
    frame there is, marked ``(library code)``; ``None`` without any traceback.
    """
    roots = list(roots)
    innermost = None
    for error in reversed(chain):
        frames = _frames(error.__traceback__)
        if innermost is None and frames:
            innermost = frames[-1]
        for filename, line, function, module in reversed(frames):
            if not is_library(filename, module):
                return f"{short_path(filename, roots)}:{line} in {function}"
    if innermost is None:
        return None
    filename, line, function, _ = innermost
    return f"{short_path(filename, roots)}:{line} in {function} (library code)"
