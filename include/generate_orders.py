"""Sample data for the reference DAGs, with switches that inject the faults real sources have.

    python include/generate_orders.py --date 2024-05-01 --rows 2000 --out include/data/generated
    python include/generate_orders.py --date 2024-05-02 --fault drift_add --out ...

Writes ``<out>/orders/<date>.csv`` and the producer's completion marker
``<out>/orders/<date>.csv.done``. The same date and options always give the same file
(seeded by the date), so re-runs are comparable.

Faults:
  drift_add      a new column ``coupon_code`` appears (additive drift)
  drift_remove   the ``currency`` column disappears (breaking drift)
  drift_rename   ``amount`` is renamed ``amount_eur`` (breaking: a probable rename)
  drift_type     ``customer_id`` values become strings like ``C-123`` (breaking: values do not fit)
  nulls          5% of ``customer_id`` are empty (NOT NULL broken)
  duplicates     2% of rows repeat an earlier ``order_id``
  out_of_range   1% of ``amount`` are negative
  bad_status     3% of ``status`` values are not in the allowed set
  malformed      0.5% of rows are ragged or have unparsable numbers
  late           2% of rows carry the previous day's ``order_date`` (late-arriving data)
  spike          three times the usual number of rows
  empty          only the header
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import sys
from pathlib import Path

FAULTS = ("drift_add", "drift_remove", "drift_rename", "drift_type", "nulls", "duplicates", "out_of_range",
          "bad_status", "malformed", "late", "spike", "empty")
COLUMNS = ["order_id", "order_date", "customer_id", "amount", "currency", "status", "created_at"]
STATUSES = ["placed", "paid", "shipped", "delivered", "cancelled", "returned"]
CURRENCIES = ["EUR", "USD", "GBP"]


def generate(date: dt.date, rows: int, faults: set[str]) -> tuple[list[str], list[list[str]]]:
    rnd = random.Random(date.toordinal() * 7919 + rows)
    n = rows * 3 if "spike" in faults else rows
    n = 0 if "empty" in faults else n
    base_id = (date - dt.date(2020, 1, 1)).days * 10_000_000
    header = list(COLUMNS)
    out: list[list[str]] = []
    for i in range(n):
        day = date - dt.timedelta(days=1) if "late" in faults and rnd.random() < 0.02 else date
        created = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=rnd.randrange(86400))
        row = {
            "order_id": str(base_id + i + 1),
            "order_date": day.isoformat(),
            "customer_id": str(rnd.randrange(1, 50_000)),
            "amount": f"{rnd.lognormvariate(3.5, 0.9):.2f}",
            "currency": rnd.choice(CURRENCIES),
            "status": rnd.choices(STATUSES, weights=[30, 30, 20, 15, 3, 2])[0],
            "created_at": created.replace(tzinfo=dt.timezone.utc).isoformat(),
        }
        if "nulls" in faults and rnd.random() < 0.05:
            row["customer_id"] = ""
        if "duplicates" in faults and i > 10 and rnd.random() < 0.02:
            row["order_id"] = str(base_id + rnd.randrange(1, i))
        if "out_of_range" in faults and rnd.random() < 0.01:
            row["amount"] = f"-{row['amount']}"
        if "bad_status" in faults and rnd.random() < 0.03:
            row["status"] = rnd.choice(["lost", "PAID", "unknown"])
        if "drift_type" in faults:
            row["customer_id"] = f"C-{row['customer_id']}"
        if "drift_add" in faults:
            row["coupon_code"] = rnd.choice(["", "", "WELCOME10", "SPRING5"])
        values = [row[c] for c in COLUMNS] + ([row["coupon_code"]] if "drift_add" in faults else [])
        if "malformed" in faults and rnd.random() < 0.005:
            if rnd.random() < 0.5:
                values = values[:-2]  # a ragged row
            else:
                values[3] = values[3].replace(".", ",") + "O"  # "12,5O"
        out.append(values)
    if "drift_add" in faults:
        header.append("coupon_code")
    if "drift_remove" in faults:
        idx = header.index("currency")
        header.pop(idx)
        for r in out:
            if len(r) > idx:
                r.pop(idx)
    if "drift_rename" in faults:
        header[header.index("amount")] = "amount_eur"
    return header, out


def write(out_dir: Path, date: dt.date, rows: int, faults: set[str], name: str = "orders") -> Path:
    header, data = generate(date, rows, faults)
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{date.isoformat()}.csv"
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(data)
    tmp.replace(path)  # atomic: a reader never sees half a file
    Path(f"{path}.done").write_text(f"{len(data)}\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--date", required=True, help="the day, YYYY-MM-DD")
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--out", default=str(Path(__file__).parent / "data" / "generated"))
    p.add_argument("--fault", action="append", default=[], choices=FAULTS, help="inject a fault (repeatable)")
    args = p.parse_args(argv)
    path = write(Path(args.out), dt.date.fromisoformat(args.date), args.rows, set(args.fault))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
