"""Strings that match a regular expression, for test data: :func:`sample`.

Walks the parse tree of Python's ``re`` (literals, classes, ranges, ``\\d \\w \\s``,
repeats, groups, alternatives, back references) and makes one random choice per node, so
that different seeds give different strings. Look-arounds are not generated: a caller
checks every sample with ``re.search`` and takes another seed (or the contract's
examples) when one does not match.
"""

from __future__ import annotations

import random
import re
import string

try:  # Python 3.11 moved the parser
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

_CATEGORIES = {
    sre_constants.CATEGORY_DIGIT: string.digits,
    sre_constants.CATEGORY_WORD: string.ascii_letters + string.digits + "_",
    sre_constants.CATEGORY_SPACE: " ",
    sre_constants.CATEGORY_NOT_DIGIT: string.ascii_letters,
    sre_constants.CATEGORY_NOT_WORD: "-.:/ ",
    sre_constants.CATEGORY_NOT_SPACE: string.ascii_letters + string.digits,
}
_PRINTABLE = string.ascii_letters + string.digits + "-_.:/@ "
#: how far past its minimum an open repeat (``+``, ``*``, ``{2,}``) goes
_OPEN_REPEAT = 4


class _Unsupported(Exception):
    pass


class _Draw:
    """The random choices of one sample, and how far an open repeat may go."""

    def __init__(self, rng: random.Random, reach: int) -> None:
        self.reach = reach
        self.choice = rng.choice
        self.randint = rng.randint


def sample(pattern: str, seed: int, lengths: tuple[int, int | None] = (0, None)) -> str | None:
    """A string of ``lengths`` (min, max or None) that ``re.search(pattern, ...)`` finds,
    or None when this seed does not make one (try another)."""
    try:
        tree = sre_parse.parse(pattern)
    except re.error:
        return None
    rng = random.Random(seed)
    groups: dict[int, str] = {}
    lo, hi = lengths
    # an open repeat goes as far as the longest string allowed (at least _OPEN_REPEAT), so
    # that a minimum length above _OPEN_REPEAT is reachable
    reach = max(_OPEN_REPEAT, hi if hi is not None else lo)
    try:
        text = _walk(tree, _Draw(rng, reach), groups)
    except _Unsupported:
        return None
    if len(text) < lo or (hi is not None and len(text) > hi) or re.search(pattern, text) is None:
        return None
    return text


def _walk(tree: object, rng: _Draw, groups: dict[int, str]) -> str:
    out = []
    for op, arg in tree:
        out.append(_node(op, arg, rng, groups))
    return "".join(out)


def _node(op: object, arg: object, rng: _Draw, groups: dict[int, str]) -> str:
    if op is sre_constants.LITERAL:
        return chr(arg)
    if op is sre_constants.NOT_LITERAL:
        return rng.choice([c for c in _PRINTABLE if ord(c) != arg])
    if op is sre_constants.ANY:
        return rng.choice(string.ascii_letters + string.digits)
    if op is sre_constants.IN:
        return _in(arg, rng)
    if op is sre_constants.CATEGORY:
        return rng.choice(_CATEGORIES.get(arg, string.ascii_letters))
    if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT,
              getattr(sre_constants, "POSSESSIVE_REPEAT", sre_constants.MAX_REPEAT)):
        lo, hi, sub = arg
        top = lo + rng.reach if hi == sre_constants.MAXREPEAT else hi
        return "".join(_walk(sub, rng, groups) for _ in range(rng.randint(lo, max(lo, top))))
    if op is sre_constants.SUBPATTERN:
        group, _add, _del, sub = arg
        text = _walk(sub, rng, groups)
        if group is not None:
            groups[group] = text
        return text
    if op is getattr(sre_constants, "ATOMIC_GROUP", None):
        return _walk(arg, rng, groups)
    if op is sre_constants.BRANCH:
        return _walk(rng.choice(arg[1]), rng, groups)
    if op is sre_constants.GROUPREF:
        return groups.get(arg, "")
    if op is sre_constants.AT:
        return ""
    raise _Unsupported(str(op))


def _in(items: list, rng: _Draw) -> str:
    chars: list[str] = []
    negate = False
    for op, arg in items:
        if op is sre_constants.NEGATE:
            negate = True
        elif op is sre_constants.LITERAL:
            chars.append(chr(arg))
        elif op is sre_constants.RANGE:
            lo, hi = arg
            chars.extend(chr(c) for c in range(lo, min(hi, lo + 200) + 1))
        elif op is sre_constants.CATEGORY:
            chars.extend(_CATEGORIES.get(arg, ""))
        else:
            raise _Unsupported(str(op))
    if negate:
        chars = [c for c in _PRINTABLE if c not in chars]
    if not chars:
        raise _Unsupported("empty class")
    return rng.choice(chars)
