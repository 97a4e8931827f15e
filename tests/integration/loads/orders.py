"""The orders tables, source files and loaders that the tests of loads share.

``public.orders`` is a day-partitioned fact table: :data:`PLAIN` (a plain table),
:data:`NATIVE` (natively partitioned by ``order_date``), :data:`NATIVE_PK` (with the
primary key a partitioned fact table has); the ``NOTE`` variants carry a free-text
``note`` where the others carry ``status``.
"""

from __future__ import annotations

import csv
import gzip

import psycopg

from safeload.loads.loader import PartitionLoader
from safeload.loads.sources.files import FileSource

PLAIN = """create table public.orders (order_id bigint not null, order_date date not null,
           amount numeric(12,2) not null, status text)"""
NATIVE = PLAIN + " partition by range (order_date)"
NATIVE_PK = NATIVE.replace("status text)", "status text, primary key (order_date, order_id))")
PLAIN_NOTE = PLAIN.replace("status text", "note text")
NATIVE_NOTE = PLAIN_NOTE + " partition by range (order_date)"
HEADER = ["order_id", "order_date", "amount", "status"]
DAY = "2024-05-02"
OTHER_DAY = "2024-05-03"


def write_csv(path, day, n, start=1, bad=()):
    """``n`` orders of ``day`` (ids from ``start``, status ``placed``), then the ``bad`` rows
    as given; gzipped when the name ends in ``.gz``."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i in range(start, start + n):
            w.writerow([i, day, f"{i % 1000}.{i % 100:02d}", "placed"])
        for row in bad:
            w.writerow(row)
    return str(path)


def write_amounts(path, ids, amount=None, day=DAY):
    """Orders ``ids`` of ``day`` with ``amount`` (default: the id), no status or note column."""
    return write(path, "order_id,order_date,amount\n" + "".join(
        f"{i},{day},{amount if amount is not None else i}.00\n" for i in ids))


def write_customers(path, day, n, start=1):
    """``n`` orders of ``day`` as ``order_id,customer_id,order_date``, ids from ``start``."""
    return write_rows(path, [[i, i % 7, day] for i in range(start, start + n)])


def write_rows(path, rows, header=("order_id", "customer_id", "order_date")):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def write(path, text: str, newline: str = "\n") -> str:
    """``text`` written as bytes, with ``newline`` for each line end."""
    path.write_bytes(text.replace("\n", newline).encode())
    return str(path)


def loader(uri, day=DAY, run_key="r", table="public.orders", **kw):
    return PartitionLoader(lambda: psycopg.connect(uri), table=table, partition_column="order_date",
                           partition_value=day, run_key=run_key, **kw)


def counts(pg):
    """Rows per day of ``public.orders``."""
    return dict(pg.execute("select order_date::text, count(*) from public.orders group by 1").fetchall())


def amounts(pg, day=DAY):
    """(order_id, amount) of ``day``'s rows, in order."""
    return pg.execute("select order_id, amount from public.orders where order_date = %s order by 1",
                      (day,)).fetchall()



def partition_with_own_check(pg):
    """:data:`NATIVE_NOTE` with the day's partition made by hand, with a CHECK of its own
    (``small``: amount < 100) that the parent does not have."""
    pg.execute(NATIVE_NOTE)
    pg.execute(f"create table public.orders_d partition of public.orders for values from ('{DAY}') to ('{OTHER_DAY}')")
    pg.execute("alter table public.orders_d add constraint small check (amount < 100)")


class ActsAfterBlock(FileSource):
    """A file source whose straight COPY calls ``act`` (e.g. replace or delete the object on
    its server) after handing on block number ``after`` (from 0): a producer re-delivering
    the file while a load reads it."""

    def __init__(self, path, after, act):
        super().__init__(path)
        self.after, self.act = after, act

    def straight(self):
        copy = super().straight()
        inner = copy.blocks

        def blocks():
            try:
                for n, block in enumerate(inner):
                    yield block
                    if n == self.after:
                        self.act()
            finally:
                inner.close()

        copy.blocks = blocks()
        return copy
