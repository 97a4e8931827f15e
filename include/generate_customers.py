"""Daily customer snapshots for customers_scd2: deterministic per date.

Each day, about 2% of customers change segment or country (tracked changes), a few
are deleted (absent from the snapshot) and a few new ones appear. The state of day N is
derived from day N-1's by a seeded generator, so any date can be generated on its own
and always gives the same file.

    python include/generate_customers.py --date 2024-05-03 --customers 500 --out DIR
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import sys
from pathlib import Path

START = dt.date(2024, 5, 1)
SEGMENTS = ["consumer", "smb", "enterprise"]
COUNTRIES = ["DE", "FR", "GB", "US", "NL"]


def snapshot(day: dt.date, customers: int) -> list[dict]:
    rnd = random.Random(42)
    state = {i: {"customer_id": i, "name": f"Customer {i}", "email": f"c{i}@example.com",
                 "country": rnd.choice(COUNTRIES), "segment": rnd.choice(SEGMENTS)} for i in range(1, customers + 1)}
    next_id = customers + 1
    d = START
    while d < day:
        d += dt.timedelta(days=1)
        r = random.Random(d.toordinal())
        for cid in sorted(state):
            x = r.random()
            if x < 0.02:
                state[cid] = {**state[cid], "segment": r.choice(SEGMENTS)}
            elif x < 0.03:
                state[cid] = {**state[cid], "country": r.choice(COUNTRIES)}
            elif x < 0.035:
                del state[cid]
        for _ in range(r.randrange(1, 5)):
            state[next_id] = {"customer_id": next_id, "name": f"Customer {next_id}", "email": f"c{next_id}@example.com",
                              "country": r.choice(COUNTRIES), "segment": r.choice(SEGMENTS)}
            next_id += 1
    return [{"snapshot_date": day.isoformat(), **state[c]} for c in sorted(state)]


def write(out_dir: Path, day: dt.date, customers: int = 500) -> Path:
    folder = out_dir / "customers"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{day.isoformat()}.csv"
    rows = snapshot(day, customers)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["snapshot_date", "customer_id", "name", "email", "country", "segment"])
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)
    Path(f"{path}.done").write_text(f"{len(rows)}\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--date", required=True)
    p.add_argument("--customers", type=int, default=500)
    p.add_argument("--out", default=str(Path(__file__).parent / "data" / "generated"))
    a = p.parse_args(argv)
    print(write(Path(a.out), dt.date.fromisoformat(a.date), a.customers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
