"""Contract check of a large CSV: speed against plain reads of the same file, and memory.

Baselines, measured in the same run on the same file:

- raw read: the file's bytes read in 1 MiB chunks and their newlines counted (what
  ``wc -l`` does): the floor set by the disk and the page cache;
- csv.reader: a plain streamed read with Python's csv module (every field split,
  nothing checked): the least any CSV check written in Python must do.

Measured: ``check_source`` as the operator and the CLI run it (Arrow engine: typed scan
of every value plus the drift diff), and the same check with the Python engine (row by
row, the reference the Arrow engine is held equal to, decision 013). Each runs in a fresh
process, so its peak RSS (ru_maxrss) and its imports are its own; memory must stay flat
(both engines stream), whatever the file size.

Measured on 2026-11-25 with ``python bench/bench_contract.py --sizes-mb 50,1000``, on a
2-core VM shared with other jobs (load average 4 to 9 during the runs, so the absolute
seconds move a lot between runs; the ratios against the baselines of the same run are
the figures to read). Orders rows from include/generate_orders.py, 72 bytes a row;
best of two runs for every column:

    file MB         rows  raw s  csv.reader s  check s  x csv.reader  x raw  RSS MB  python engine s  x csv.reader  RSS MB
         50      700,000    0.0           0.7      0.9          1.34  19.39     209              2.1          3.17      79
       1001   13,900,000    0.4          13.3     19.1          1.44  42.97     218            104.0          7.85      79

An earlier run of the same code (checks run once, load average near 9) printed, for
1001 MB: csv.reader 26.9 s, check 24.5 s (0.91x), Python engine 97.4 s (3.62x), RSS 210
and 79 MB. Before the Arrow engine, the check was 5.4x csv.reader at 50 MB (--quick).
Memory is flat in both engines: 209 MB and 218 MB peak for the Arrow engine (pyarrow
and an 8 MiB block with its table), 79 MB for the Python engine, at 50 MB and at 1 GB.
See docs/decisions/013-arrow-csv-scan.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "include" / "contracts" / "orders.yaml"

RAW = r"""
import json, resource, sys, time
t0 = time.perf_counter(); n = 0
with open(sys.argv[1], "rb") as fh:
    while chunk := fh.read(1 << 20):
        n += chunk.count(b"\n")
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": n - 1,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

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
t0 = time.perf_counter()
from safeload.contracts.check import check_source
report = check_source(sys.argv[2], sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": report.rows_scanned, "decision": report.decision,
                  "changes": len(report.changes),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHECK_PYTHON = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from safeload.contracts.diff import diff
from safeload.contracts.introspect import introspect_csv
from safeload.contracts.files import load_contract
contract = load_contract(sys.argv[2])
report = diff(contract, introspect_csv(sys.argv[1], contract, engine="python"))
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": report.rows_scanned, "decision": report.decision,
                  "changes": len(report.changes),
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
    ap.add_argument("--sizes-mb", default="50,1000", help="file sizes to check (MB)")
    ap.add_argument("--quick", action="store_true", help="a 50 MB file only")
    ap.add_argument("--no-python-engine", action="store_true", help="skip the (slow) Python engine run")
    args = ap.parse_args()
    sizes = [50] if args.quick else [int(s) for s in args.sizes_mb.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="safeload-bench-contract-"))
    free_mb = shutil.disk_usage(tmp).free / 1e6
    if max(sizes) * 1.2 > free_mb:
        print(f"not enough disk in {tmp} for a {max(sizes)} MB file ({free_mb:.0f} MB free)")
        return 2
    print(f"{'file MB':>8} {'rows':>12} {'raw s':>6} {'csv.reader s':>13} {'check s':>8} {'x csv.reader':>13} "
          f"{'x raw':>6} {'RSS MB':>7} {'python engine s':>16} {'x csv.reader':>13} {'RSS MB':>7}")
    try:
        for mb in sizes:
            path = tmp / f"orders_{mb}.csv"
            rows = make_csv(path, mb)
            raw = min((run(RAW, str(path)) for _ in range(2)), key=lambda r: r["seconds"])
            plain = min((run(PLAIN, str(path)) for _ in range(2)), key=lambda r: r["seconds"])
            check = min((run(CHECK, str(path), str(CONTRACT)) for _ in range(2)), key=lambda r: r["seconds"])
            assert raw["rows"] == plain["rows"] == rows == check["rows"], (raw, plain, check, rows)
            assert check["decision"] == "ok", check
            line = (f"{path.stat().st_size / 1e6:>8.0f} {rows:>12,} {raw['seconds']:>6.1f} {plain['seconds']:>13.1f} "
                    f"{check['seconds']:>8.1f} {check['seconds'] / plain['seconds']:>13.2f} "
                    f"{check['seconds'] / raw['seconds']:>6.2f} {check['rss_mb']:>7.0f}")
            if not args.no_python_engine:
                slow = min((run(CHECK_PYTHON, str(path), str(CONTRACT)) for _ in range(2)), key=lambda r: r["seconds"])
                assert (slow["rows"], slow["decision"], slow["changes"]) == (
                    check["rows"], check["decision"], check["changes"]), (slow, check)
                line += f" {slow['seconds']:>16.1f} {slow['seconds'] / plain['seconds']:>13.2f} {slow['rss_mb']:>7.0f}"
            print(line, flush=True)
            path.unlink()
    finally:
        for f in tmp.glob("*"):
            f.unlink()
        os.rmdir(tmp)
    print("x csv.reader / x raw: the check's time (fresh process, imports included) as a multiple of a plain "
          "csv.reader pass / of a raw read counting newlines, over the same file. RSS: peak resident memory.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
