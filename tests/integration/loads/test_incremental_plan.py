"""plan_reloads against a real PostgreSQL: fingerprints across differing types, and the mass-update guard."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from safeload.errors import SourceError
from safeload.loads.incremental import IncrementalSource, plan_reloads

from tests.integration.loads.orders import DAY, NATIVE_NOTE

UTC = timezone.utc
WINDOW = (datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 10, tzinfo=UTC))
SOURCE = IncrementalSource("select id, day, amount, currency, updated_at from src.t", "day", "updated_at")


@pytest.fixture
def db(pg):
    # the source's types are looser than the target's (numeric vs numeric(12,2), text vs
    # char(3)): equal values must still fingerprint equal
    pg.execute("""
        create schema src;
        create table src.t (id bigint, day date, amount numeric, currency text, updated_at timestamptz);
        create table public.t (id bigint, day date, amount numeric(12,2), currency char(3), updated_at timestamptz);
        insert into src.t values (1, '2024-05-01', 12.5, 'EUR', '2024-05-01 10:00+00'),
                                 (2, '2024-05-02', 7, 'USD', '2024-05-02 10:00+02');
        insert into public.t select * from src.t where day = '2024-05-01';
    """)
    return pg


def test_equal_partition_is_unchanged_and_a_missing_one_is_reloaded(db):
    plan = plan_reloads(db, db, SOURCE, table="public.t", window=WINDOW)
    assert plan.candidates == ["2024-05-01", "2024-05-02"]
    assert plan.unchanged == ["2024-05-01"]  # 12.5 = 12.50, 'EUR' text = 'EUR' char(3)
    assert plan.reload == ["2024-05-02"]
    assert plan.fingerprints["2024-05-02"]["target"][0] == 0


def test_a_changed_row_makes_its_partition_differ(db):
    db.execute("update src.t set amount = 12.51, updated_at = '2024-05-03 09:00+00' where id = 1")
    plan = plan_reloads(db, db, SOURCE, table="public.t", window=WINDOW)
    assert "2024-05-01" in plan.reload


def test_rows_outside_the_window_are_not_candidates(db):
    plan = plan_reloads(db, db, SOURCE, table="public.t",
                        window=(datetime(2024, 5, 2, tzinfo=UTC), datetime(2024, 5, 3, tzinfo=UTC)))
    assert plan.candidates == ["2024-05-02"]  # id 2 was updated at 08:00 UTC on 05-02


def test_a_mass_update_is_refused(db):
    db.execute("insert into src.t select g, date '2024-05-01' + g % 5, 1, 'EUR', '2024-05-04 00:00+00' "
               "from generate_series(10, 20) g")
    with pytest.raises(SourceError, match="rows of 5 partitions of public.t changed .* more than max_partitions=3"):
        plan_reloads(db, db, SOURCE, table="public.t", window=WINDOW, max_partitions=3)


def test_a_target_without_the_partition_column_is_refused(db):
    db.execute("create table public.other (id bigint)")
    with pytest.raises(SourceError, match="public.other has no column 'day'"):
        plan_reloads(db, db, SOURCE, table="public.other", window=WINDOW)


def test_a_partition_loaded_from_a_looser_type_fingerprints_equal(pg, pg_uri):
    """The source keeps a float, the warehouse a numeric: the load converts through the
    text COPY prints (0.30000000000000004), so the fingerprint must compare that, not the
    float->numeric cast (0.3); else a day just published never equals its source and every
    window republishes it."""
    import psycopg

    from safeload.loads.loader import PartitionLoader, QuerySource

    pg.execute("""
        create schema src;
        create table src.f (id bigint, day date, amount double precision, updated_at timestamptz);
        create table public.f (id bigint, day date, amount numeric, updated_at timestamptz);
        insert into src.f values (1, '2024-05-01', 0.1::float8 + 0.2::float8, '2024-05-01 10:00+00'),
                                 (2, '2024-05-01', 1.0 / 3, '2024-05-01 11:00+00');
    """)
    source = IncrementalSource("select id, day, amount, updated_at from src.f", "day", "updated_at")
    plan = plan_reloads(pg, pg, source, table="public.f", window=WINDOW)
    assert plan.reload == ["2024-05-01"]
    query = source.partition_query("2024-05-01", ["id", "day", "amount", "updated_at"]).as_string(None)
    PartitionLoader(lambda: psycopg.connect(pg_uri), table="public.f", partition_column="day",
                    partition_value="2024-05-01", run_key="t").run(QuerySource.from_conninfo(pg_uri, query))
    plan = plan_reloads(pg, pg, source, table="public.f", window=WINDOW)
    assert plan.unchanged == ["2024-05-01"], plan.fingerprints


def test_an_incremental_plan_for_a_target_with_a_generated_column(pg):
    """``plan_reloads`` fingerprints the columns a load writes, not the target's generated
    ones, which the application's table does not have (``twice``): the plan marks the day
    for reload, or a SourceError says what to do; never PostgreSQL's raw
    UndefinedColumn."""
    pg.execute(NATIVE_NOTE.replace("note text", "twice numeric generated always as (amount * 2) stored"))
    pg.execute("create schema app; create table app.orders (order_id bigint, order_date date, amount numeric, "
               "updated_at timestamptz)")
    pg.execute(f"insert into app.orders values (1, '{DAY}', 1, '{DAY} 10:00+00'), (2, '{DAY}', 2, '{DAY} 11:00+00')")
    source = IncrementalSource("select order_id, order_date, amount, updated_at from app.orders", "order_date",
                               "updated_at", ("order_id",))
    window = (datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 5, 3, tzinfo=timezone.utc))
    try:
        plan = plan_reloads(pg, pg, source, table="public.orders", window=window)
    except SourceError as e:
        assert "twice" in str(e)
        return
    assert plan.reload == [DAY]
