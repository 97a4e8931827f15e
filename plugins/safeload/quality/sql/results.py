"""GX's results, computed from the scan's values: a map expectation's counts and
percentages (:func:`map_result`), a metric against its bounds (:func:`metric_between`).
Results are GX-shaped dicts (``{"success", "result": {...}, "exception"}``)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from safeload.quality.suite import comparable

RawResult = dict[str, Any]


def error_result(message: str) -> RawResult:
    return {"success": False, "result": {}, "exception": message}


def plain(value: Any) -> Any:
    """A database value as GX reports it: decimals as floats, NaN as None."""
    if isinstance(value, Decimal):
        if value.is_nan():
            return None
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _mostly(considered: int, unexpected: int, mostly: float) -> bool:
    # GX's _mostly_success, float for float
    return (float(considered) - float(unexpected)) / float(considered) >= mostly


def map_result(*, element_count: int, nonnull_count: int | None, unexpected_count: int | None,
               mostly: float, samples: list | None = None) -> RawResult:
    """GX's result of a map expectation (``ColumnMapExpectation._validate`` and
    ``_format_map_output``, BASIC format).

    :param element_count: rows in the table (or partition)
    :param nonnull_count: rows considered (non-null values; for compound uniqueness, rows
        ``ignore_row_if`` keeps); None means every row (``not_null``), and GX then reports
        no ``missing_*`` fields
    :param unexpected_count: unexpected rows; None when GX's SQL sum had no rows to add
    :param mostly: the fraction of considered rows that must be expected
    :param samples: unexpected values to report, or None
    """
    n, u = element_count, unexpected_count
    considered = n if nonnull_count is None else nonnull_count
    if u is None or n == 0 or considered == 0:
        success = True  # vacuously
    else:
        success = _mostly(considered, u, mostly)
    result: dict[str, Any] = {"element_count": n, "unexpected_count": u, "unexpected_percent": None}
    missing_percent = pct_total = pct_nonmissing = None
    if u is not None and n > 0:
        pct_total = u / n * 100
        if nonnull_count is None:
            pct_nonmissing = pct_total
        else:
            missing_percent = (n - nonnull_count) / n * 100
            pct_nonmissing = u / nonnull_count * 100 if nonnull_count > 0 else None
    result["unexpected_percent"] = pct_nonmissing
    if samples is not None:
        result["partial_unexpected_list"] = samples
    if nonnull_count is not None:
        result.update(missing_count=n - nonnull_count, missing_percent=missing_percent,
                      unexpected_percent_total=pct_total, unexpected_percent_nonmissing=pct_nonmissing)
    return {"success": success, "result": result, "exception": None}


def metric_between(value: Any, kwargs: dict[str, Any], *, integer_bounds: bool = False) -> RawResult:
    """GX's ``_validate_metric_value_between`` for an observed metric value.

    A missing metric (empty table, all nulls, NaN) fails with ``observed_value`` None.
    Bounds are coerced as GX's pydantic fields coerce them (numbers to float, ISO
    strings to dates); comparing incomparable values (a date with a number) is an error,
    as in GX.

    :param value: the metric (min, max, mean, sum or row count)
    :param kwargs: the expectation's ``min_value``, ``max_value``, ``strict_min``, ``strict_max``
    :param integer_bounds: coerce bounds to int, as GX's row count expectation does
    """
    value = plain(value)
    if value is None:
        return {"success": False, "result": {"observed_value": None}, "exception": None}

    def bound(v):
        if integer_bounds and isinstance(v, (int, float)) and not isinstance(v, bool):
            return int(v)  # row count bounds are pydantic ints in GX (5.5 -> 5)
        return comparable(v)

    lo, hi = bound(kwargs.get("min_value")), bound(kwargs.get("max_value"))
    try:
        above = True if lo is None else (value > lo if kwargs.get("strict_min") else value >= lo)
        below = True if hi is None else (value < hi if kwargs.get("strict_max") else value <= hi)
    except TypeError:
        return {"success": False, "result": {"observed_value": value},
                "exception": f"cannot compare the observed {type(value).__name__} {value!r} with the bounds "
                             f"{kwargs.get('min_value')!r}..{kwargs.get('max_value')!r}; give bounds of the "
                             "column's kind (numbers, or ISO dates for date columns)"}
    return {"success": bool(above and below), "result": {"observed_value": value}, "exception": None}
