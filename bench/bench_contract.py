"""Contract check of a large CSV: speed against a plain read of the same file, and memory.

Baseline: a plain streamed read of the file with Python's csv module (every field
split, nothing checked): the least any CSV check in Python must do. The contract check
does that plus a typed check of every value against the contract and the drift diff.
Each runs in a fresh process so that its peak RSS (ru_maxrss) is its own; memory must
stay flat (it streams), whatever the file size.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "include" / "contracts" / "orders.yaml"

PLAIN = r"""
import csv, json, resource, sys, time
t0 = time.perf_counter(); n = 0
with open(sys.argv[1], newline="", encoding="utf-8") as fh:
    for row in csv.reader(fh):
        n += 1
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": n - 1,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHECK = r"""
import json, resource, sys, time
from safeload.contracts.check import check_source
t0 = time.perf_counter()
report = check_source(sys.argv[2], sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": report.rows_scanned, "decision": report.decision,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_csv(path: Path, target_mb: int) -> int:
    sys.path.insert(0, str(ROOT / "include"))
    import datetime as dt

    import generate_orders

    header, rows = generate_orders.generate(dt.date(2024, 5, 1), 100_000, set())
    block = "".join(",".join(r) + "\n" for r in rows)
    n = 0
    with open(path, "w", newline="") as fh:
        fh.write(",".join(header) + "\n")
        while fh.tell() < target_mb * 1_000_000:
            fh.write(block)
            n += len(rows)
    return n


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                         timeout=7200)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes-mb", default="100,1024", help="file sizes to check (MB)")
    ap.add_argument("--quick", action="store_true", help="a 50 MB file only")
    args = ap.parse_args()
    sizes = [50] if args.quick else [int(s) for s in args.sizes_mb.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="safeload-bench-contract-"))
    print(f"{'file MB':>8} {'rows':>12} {'plain read s':>13} {'check s':>9} {'x plain':>8} {'check rows/s':>13} "
          f"{'plain RSS MB':>13} {'check RSS MB':>13}")
    try:
        for mb in sizes:
            path = tmp / f"orders_{mb}.csv"
            rows = make_csv(path, mb)
            plain = min((run(PLAIN, str(path)) for _ in range(2)), key=lambda r: r["seconds"])
            check = run(CHECK, str(path), str(CONTRACT))
            assert plain["rows"] == rows == check["rows"], (plain, check, rows)
            print(f"{path.stat().st_size / 1e6:>8.0f} {rows:>12,} {plain['seconds']:>13.1f} {check['seconds']:>9.1f} "
                  f"{check['seconds'] / plain['seconds']:>8.2f} {rows / check['seconds']:>13,.0f} "
                  f"{plain['rss_mb']:>13.0f} {check['rss_mb']:>13.0f}")
            path.unlink()
    finally:
        for f in tmp.glob("*"):
            f.unlink()
        os.rmdir(tmp)
    print("x plain: the contract check's time as a multiple of a plain csv.reader pass over the same file.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
