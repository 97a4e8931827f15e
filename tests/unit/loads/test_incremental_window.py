"""The watermark window and the source description of an incremental load (pure, no database)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from safeload.errors import SourceError
from safeload.loads.incremental import IncrementalSource, watermark_window

UTC = timezone.utc
MAY1, MAY2, MAY3 = (datetime(2024, 5, d, tzinfo=UTC) for d in (1, 2, 3))
QUERY = "select p.*, (p.paid_at at time zone 'UTC')::date as payment_date from app.payments p"


@pytest.mark.parametrize(("last_success_end", "lookback", "want"), [
    pytest.param(None, timedelta(0), (MAY2, MAY3), id="first-run-no-lookback"),
    pytest.param(None, timedelta(hours=24), (MAY1, MAY3), id="lookback-reaches-into-the-previous-day"),
    pytest.param(MAY2, timedelta(hours=6), (MAY2 - timedelta(hours=6), MAY3), id="previous-run-succeeded"),
    pytest.param(MAY1, timedelta(hours=6), (MAY1 - timedelta(hours=6), MAY3), id="missed-run-widens-the-window"),
    pytest.param(MAY3, timedelta(0), (MAY2, MAY3), id="a-later-success-does-not-shrink-it"),
])
def test_watermark_window(last_success_end, lookback, want):
    assert watermark_window(MAY2, MAY3, lookback=lookback, last_success_end=last_success_end) == want


def test_negative_lookback_is_refused():
    with pytest.raises(ValueError, match="lookback .* is negative"):
        watermark_window(MAY2, MAY3, lookback=timedelta(hours=-1))


def test_interval_ending_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="ends .* before it starts"):
        watermark_window(MAY3, MAY2, lookback=timedelta(0))


def test_source_query_with_a_semicolon_is_refused():
    with pytest.raises(SourceError, match="ends with ';'.*remove the semicolon"):
        IncrementalSource(QUERY + ";", "payment_date", "updated_at")


def test_source_columns_must_be_identifiers():
    with pytest.raises(Exception, match="updated column"):
        IncrementalSource(QUERY, "payment_date", "updated_at; drop table x")


def test_window_query_bounds_the_watermark_half_open():
    sql = IncrementalSource(QUERY, "payment_date", "updated_at").window_query((MAY1, MAY3))
    assert sql.startswith(f"select * from ({QUERY}) as src where ")
    assert "\"updated_at\" >= '2024-05-01T00:00:00+00:00'" in sql
    assert "\"updated_at\" < '2024-05-03T00:00:00+00:00'" in sql


def test_partition_query_selects_the_target_columns_in_order():
    sql = IncrementalSource(QUERY, "payment_date", "updated_at").partition_query("2024-05-01", ["b", "a"])
    text = sql.as_string(None)
    assert text.startswith('select "b", "a" from (')
    assert text.endswith("where \"payment_date\" = '2024-05-01'")
