"""Vectorised tests that clear the values of a text column in bulk (decision 013, 027).

:func:`arrow_clear` runs a :func:`~safeload.contracts.types.fast_filter` test over an
Arrow string array and says which values certainly fit the column's type. It may leave
good values uncleared (they go to the exact checker), never the reverse.

Numbers and ISO dates and timestamps are the columns of most files and the dearest to
match with a regular expression (RE2 runs at about 150 MB/s). They are tested on the
array's own buffers with numpy instead:

- a decimal number is a run of ASCII digits with at most one dot and a leading sign:
  one count of the bytes that are not digits over the whole column proves, for all its
  values at once, that each value's only other characters are its dot and its sign;
  ``find_substring`` places the dot, and the digits before and after it are compared
  with the type's precision and scale (an integer: digits only, no dot, no sign); the
  most digits and any minus sign seen are handed on, so that a bound far from the
  values is met without reading a number;
- a date or timestamp of one of the canonical ISO shapes has a fixed length: the values
  of that length are viewed as a matrix of bytes, one row per value, and each position
  is tested at once for all rows (a digit, a ``-``, ...), then the fields (year, month,
  day, hour...) are compared with their ranges, the day with its month's length.

Pure numpy and pyarrow, imported where used.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _accepts_zulu() -> bool:
    # Python reads "Z" as UTC from 3.11 on; the exact checker must accept what is cleared
    try:
        dt.datetime.fromisoformat("2000-01-01T00:00:00Z")
    except ValueError:
        return False
    return True


def temporal_shapes(name: str) -> list[str]:
    """The fixed-length spellings of a ``date``/``timestamp``/``timestamptz`` that are cleared.

    Letters stand for digits of a field (``Y`` year, ``M`` month, ``D`` day, ``h`` hour,
    ``m`` minute, ``s`` second, ``f`` fraction, ``H``/``N`` offset hours and minutes),
    ``T`` for ``T`` or a space, ``S`` for a sign; anything else is itself.
    """
    date = "YYYY-MM-DD"
    if name == "date":
        return [date]
    clocks = [f"{date}Thh:mm:ss{frac}" for frac in ("", ".fff", ".ffffff")]
    if name == "timestamp":
        return clocks
    return [c + "SHH:NN" for c in clocks] + ([c + "Z" for c in clocks] if _accepts_zulu() else [])


def string_buffers(col: Any) -> tuple[Any, Any]:
    """``(offsets, data)`` of an Arrow string array as numpy arrays (int64 offsets, uint8 data)."""
    import numpy as np
    import pyarrow as pa

    wide = pa.types.is_large_string(col.type) or pa.types.is_large_binary(col.type)
    buffers = col.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64 if wide else np.int32)[col.offset:col.offset + len(col) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    return offsets.astype(np.int64), data


def _other_bytes(offsets: Any, data: Any, allowed: Any) -> Any:
    """True where a value holds exactly ``allowed`` bytes that are not ASCII digits."""
    import numpy as np

    region = data[offsets[0]:offsets[-1]]
    with np.errstate(over="ignore"):
        other = (region - np.uint8(48)) > 9  # neither 0-9
    if int(np.count_nonzero(other)) == int(allowed.sum()):
        # every value has at least the others it is allowed: so exactly those, everywhere
        return np.ones(len(offsets) - 1, dtype=bool)
    counts = np.concatenate(([0], np.cumsum(other, dtype=np.int64)))
    return counts[offsets[1:] - offsets[0]] - counts[offsets[:-1] - offsets[0]] == allowed


def clear_digits(col: Any, most: int, facts: dict[str, Any] | None = None) -> Any:
    """True where a value is 1 to ``most`` ASCII digits (``facts``: see :func:`clear_decimal`)."""
    import numpy as np
    import pyarrow as pa

    offsets, data = string_buffers(col)
    length = np.diff(offsets)
    ok = _other_bytes(offsets, data, np.zeros(len(col), dtype=np.int64)) & (length >= 1) & (length <= most)
    if facts is not None:
        facts.update(digits=int(length[ok].max()) if ok.any() else 0, negative=False)
    return _and_valid(col, pa.array(ok))


def clear_decimal(col: Any, whole: int | None, scale: int | None, facts: dict[str, Any] | None = None) -> Any:
    """True where a value is ``[+-]digits[.digits]`` (or ``[+-].digits``) with at most ``whole``
    digits before the dot and ``scale`` after it (None: any number).

    :param facts: filled with what the cleared values show of their size: ``digits``, the
        most digits before a dot, and ``negative``, whether one has a minus sign (so a
        bound far from them is met without reading a number)
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(col)
    offsets, data = string_buffers(col)
    start = offsets[:-1]
    length = np.diff(offsets)
    found = pc.find_substring(col, ".")
    dot = (pc.fill_null(found, -1) if found.null_count else found).to_numpy(zero_copy_only=False)
    has_dot = dot >= 0
    first = data[np.minimum(start, max(len(data) - 1, 0))] if len(data) else np.zeros(n, np.uint8)
    signed = (length > 0) & ((first == 43) | (first == 45))  # + or -
    clean = _other_bytes(offsets, data, has_dot.astype(np.int64) + signed)
    before = np.where(has_dot, dot, length) - signed
    after = np.where(has_dot, length - dot - 1, 0)
    ok = clean & ((before >= 1) | (after >= 1))
    if whole is not None:
        ok &= before <= whole
    if scale is not None:
        ok &= after <= scale
    if facts is not None:
        facts.update(digits=int(before[ok].max()) if ok.any() else 0,
                     negative=bool((ok & signed & (first == 45)).any()))
    return _and_valid(col, pa.array(ok))


def clear_temporal(col: Any, name: str) -> Any:
    """True where a value is a valid date, or timestamp, of one of :func:`temporal_shapes`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(col)
    offsets, data = string_buffers(col)
    length = np.diff(offsets)
    ok = np.zeros(n, dtype=bool)
    for shape in temporal_shapes(name):
        size = len(shape)
        rows = length == size
        k = int(np.count_nonzero(rows))
        if not k:
            continue
        if k == n:  # the common case: every value has this length, their bytes are contiguous
            block = data[offsets[0]:offsets[-1]]
            ok = _match_shape(block.reshape(n, size), shape)
            break
        idx = np.flatnonzero(rows)
        part = pc.take(col, pa.array(idx))
        offs, pdata = string_buffers(part)
        ok[idx] = _match_shape(pdata[offs[0]:offs[-1]].reshape(k, size), shape)
    return _and_valid(col, pa.array(ok))


#: (field, first digit of it) -> the largest digit there: months 0-1x, days 0-3x, hours 0-2x,
#: minutes and seconds 0-5x
_TOP_DIGIT = {("M", True): 1, ("D", True): 3, ("h", True): 2, ("H", True): 2, ("m", True): 5, ("s", True): 5,
              ("N", True): 5}
#: shape -> its xor and top bytes, repeated for as many rows as a block has had
_TILES: dict[str, tuple[Any, Any]] = {}


def _tiled(shape: str, rows: int) -> tuple[Any, Any]:
    import numpy as np

    tiles = _TILES.get(shape)
    if tiles is None or len(tiles[0]) < rows * len(shape):
        digit = [c.isalpha() and c not in "TSZ" for c in shape]
        xor = np.array([0x30 if d else 0 if c in "TS" else ord(c) for c, d in zip(shape, digit)], dtype=np.uint8)
        top = np.array([_TOP_DIGIT.get((c, shape.index(c) == i), 9) if d else 255 if c in "TS" else 0
                        for i, (c, d) in enumerate(zip(shape, digit))], dtype=np.uint8)
        grown = max(rows, 2 * (len(tiles[0]) // len(shape)) if tiles else 0, 1024)
        tiles = _TILES[shape] = (np.tile(xor, grown), np.tile(top, grown))
    size = rows * len(shape)
    return tiles[0][:size], tiles[1][:size]


def _match_shape(m: Any, shape: str) -> Any:
    """Which rows of the byte matrix ``m`` (one value per row) spell a valid ``shape``."""
    import numpy as np

    n, size = m.shape
    # every byte at once: byte ^ xor is 0-9 exactly for a digit (at most 1 for the first
    # digit of a month, 5 for a minute's...), 0 for the literal it is xor-ed with; "T"
    # (T or space) and "S" (a sign) are tested on their own below
    xor, top = _tiled(shape, n)
    wrong = (m.reshape(-1) ^ xor) > top
    ok = np.ones(n, dtype=bool)
    if wrong.any():
        ok[np.flatnonzero(wrong) // size] = False

    def view(letter: str, count: int = 2) -> Any:
        # the first ``count`` characters of a field as one big-endian number: for digits the
        # byte order is the numeric order ("05" < "12")
        return np.ndarray(shape=(n,), dtype=f">u{count}", buffer=m, offset=shape.index(letter), strides=(size,))

    def column(i: int) -> Any:
        return m[:, i]

    ok &= view("Y", 4) > 0x30303030  # year 0001 and later
    month, day = view("M"), view("D")
    ok &= (month >= 0x3031) & (month <= 0x3132) & (day >= 0x3031) & (day <= 0x3331)
    for letter in ("h", "H"):
        if letter in shape:
            ok &= view(letter) <= 0x3233  # hours up to 23
    if "T" in shape:
        sep = column(shape.index("T"))
        ok &= (sep == 84) | (sep == 32)
    if "S" in shape:
        sign = column(shape.index("S"))
        ok &= (sign == 43) | (sign == 45)
    late = np.flatnonzero(ok & (day > 0x3238))  # days 29 to 31: does the month have them?
    if len(late):
        digits = m[late].astype(np.int32) - 48
        y = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
        mo = digits[:, 5] * 10 + digits[:, 6]
        d = digits[:, 8] * 10 + digits[:, 9]
        leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
        ok[late] = d <= np.array(_DAYS, dtype=np.int32)[mo] + ((mo == 2) & leap)
    return ok


def _and_valid(col: Any, ok: Any) -> Any:
    import pyarrow.compute as pc

    return pc.and_(ok, pc.is_valid(col)) if col.null_count else ok


def arrow_clear(col: Any, flt: tuple[str, Any] | None, facts: dict[str, Any] | None = None) -> Any:
    """Run a :func:`~safeload.contracts.types.fast_filter` test over an Arrow string column.

    Returns a boolean array (true: the value certainly fits), ``True`` (all fit) or
    ``None`` (no test: every value goes to the checker).

    :param facts: for numbers, filled with the size of the values cleared (:func:`clear_decimal`)
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if flt is None:
        return None
    kind, arg = flt
    if kind == "all":
        return True
    if kind == "no_nul":
        return pc.invert(pc.match_substring(col, "\x00"))
    if kind == "max_length":
        return pc.less_equal(pc.utf8_length(col), arg)
    if kind == "in":
        return pc.is_in(col, value_set=pa.array(arg, pa.string()))
    if kind == "digits":
        return clear_digits(col, arg, facts)
    if kind == "decimal":
        return clear_decimal(col, *arg, facts)
    if kind == "temporal":
        return clear_temporal(col, arg)
    if kind == "regex":
        return pc.match_substring_regex(col, arg)
    raise ValueError(f"unknown filter {kind!r}")
