"""How a source's column is matched to a contract's: by name, ignoring case and whitespace.

Below every module that matches columns (introspection, the drift diff, the value
rules), so none of them needs another for it. Pure Python.
"""

from __future__ import annotations


def normalise(name: str) -> str:
    """The name a column is matched by when case or whitespace differ."""
    return " ".join(name.split()).lower()
