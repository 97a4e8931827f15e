"""The payments application's table, and sample days of it, for payments_incremental.

    python include/generate_payments.py --conn postgresql://.../app --date 2024-05-01 --rows 500
    python include/generate_payments.py --conn ... --date 2024-05-02 --fault late --fault refunds

Unlike the file feeds, this source is a live OLTP table, ``app.payments``: rows are
inserted and updated in place, and ``updated_at`` moves on every change (as an ORM or a
trigger would make it). The same date and options always write the same rows (seeded
by the date), and writing a day twice changes nothing: rows are inserted with
``on conflict do nothing`` and updates set values, not increments.

Faults (what real OLTP sources do to an incremental load):
  late           2% more payments of the *previous* day, recorded today: an offline card
                 terminal uploads yesterday's payments (late-arriving rows)
  refunds        5% of the previous day's captured payments become ``refunded`` today
                 (a change to a partition that was already loaded)
  bad_currency   1% of the day's payments have currency ``XXX`` (not in the contract)

:func:`commit_late` adds rows *to a day that was already loaded* with that day's
``updated_at``: a long transaction that committed after the day's run had read the table.
Only the lookback window finds those.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys

FAULTS = ("late", "refunds", "bad_currency")
CURRENCIES = ["EUR", "USD", "GBP"]
STATUSES = ["captured", "captured", "captured", "authorized", "failed"]
UTC = dt.timezone.utc

DDL = """
create schema if not exists app;
create table if not exists app.payments (
    payment_id bigint        primary key,
    order_id   bigint        not null,
    amount     numeric(12,2) not null,
    currency   char(3)       not null,
    status     text          not null,
    paid_at    timestamptz   not null,  -- business time: the payment's date is its UTC day
    updated_at timestamptz   not null default now()  -- moves on every insert and update
);
-- the watermark query reads by updated_at, the partition reload by the payment's day
create index if not exists payments_updated_at on app.payments (updated_at);
create index if not exists payments_paid_day on app.payments (((paid_at at time zone 'UTC')::date));
"""


def create_source(conn) -> None:
    """Create ``app.payments`` (idempotent)."""
    conn.execute(DDL)


def _id(day: dt.date, kind: int, i: int) -> int:
    return (day - dt.date(2020, 1, 1)).days * 1_000_000 + kind * 100_000 + i


def _payment(rnd: random.Random, pid: int, day: dt.date, recorded: dt.datetime | None = None) -> tuple:
    paid = dt.datetime.combine(day, dt.time(), UTC) + dt.timedelta(seconds=rnd.randrange(23 * 3600))
    updated = recorded or paid + dt.timedelta(seconds=rnd.randrange(1, 600))
    return (pid, rnd.randrange(1, 10_000_000), f"{rnd.lognormvariate(3.5, 0.9):.2f}", rnd.choice(CURRENCIES),
            rnd.choice(STATUSES), paid, updated)


_INSERT = """insert into app.payments (payment_id, order_id, amount, currency, status, paid_at, updated_at)
             values (%s, %s, %s, %s, %s, %s, %s) on conflict (payment_id) do nothing"""


def write_day(conn, day: dt.date, rows: int = 500, faults: set[str] | frozenset[str] = frozenset()) -> dict[str, int]:
    """The application's activity on ``day``: its payments, and the faults asked for.

    Returns how many rows each part wrote (``payments``, ``late``, ``refunds``, ``bad_currency``).
    """
    unknown = set(faults) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown fault(s) {sorted(unknown)}; choose from {', '.join(FAULTS)}")
    rnd = random.Random(day.toordinal() * 7919 + rows)
    payments = [_payment(rnd, _id(day, 0, i), day) for i in range(rows)]
    bad = 0
    if "bad_currency" in faults:
        for i in range(0, len(payments), 100):
            payments[i] = (*payments[i][:3], "XXX", *payments[i][4:])
            bad += 1
    done = {"payments": rows, "late": 0, "refunds": 0, "bad_currency": bad}
    with conn.cursor() as cur:
        cur.executemany(_INSERT, payments)
        yesterday = day - dt.timedelta(days=1)
        if "late" in faults:
            recorded = dt.datetime.combine(day, dt.time(9), UTC)  # uploaded this morning
            late = [_payment(rnd, _id(yesterday, 5, i), yesterday, recorded + dt.timedelta(seconds=i))
                    for i in range(max(1, rows // 50))]
            cur.executemany(_INSERT, late)
            done["late"] = len(late)
        if "refunds" in faults:
            when = dt.datetime.combine(day, dt.time(14), UTC)
            # the same payments every time (by id), and only captured ones: idempotent
            cur.execute(
                """update app.payments set status = 'refunded', updated_at = %s
                   where (paid_at at time zone 'UTC')::date = %s and status = 'captured' and payment_id %% 20 = 7""",
                (when, yesterday))
            done["refunds"] = cur.rowcount
    return done


def commit_late(conn, day: dt.date, rows: int = 3) -> int:
    """Rows of ``day`` whose ``updated_at`` is within ``day`` but that appear only now:
    a transaction that began on ``day`` and committed after the day's run (idempotent)."""
    rnd = random.Random(day.toordinal() * 31 + rows)
    begun = dt.datetime.combine(day, dt.time(23, 50), UTC)
    late = [_payment(rnd, _id(day, 9, i), day, begun + dt.timedelta(seconds=i)) for i in range(rows)]
    with conn.cursor() as cur:
        cur.executemany(_INSERT, late)
    return len(late)


def main(argv: list[str] | None = None) -> int:
    import psycopg

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conn", required=True, help="postgresql:// URI of the application database")
    ap.add_argument("--date", required=True, type=dt.date.fromisoformat)
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--fault", action="append", default=[], choices=FAULTS)
    args = ap.parse_args(argv)
    with psycopg.connect(args.conn, autocommit=True) as conn:
        create_source(conn)
        print(write_day(conn, args.date, args.rows, set(args.fault)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
