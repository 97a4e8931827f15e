"""Contract check of a large CSV, with every value rule of the orders contract: speed and memory.

For one file (orders rows from include/generate_orders.py, every ``order_id`` distinct),
measured in the same run, each in a fresh process (imports included, peak RSS its own),
in interleaved rounds (pyarrow, safeload, datacontract-cli, then again): the medians are
printed, so that the other jobs of a shared machine weigh on each tool alike:

- pyarrow read: the file streamed by ``pyarrow.csv.open_csv`` (default options: types
  inferred, nothing checked): the baseline. Goal: safeload's check <= 1.5x this.
- safeload: ``check_source`` of include/contracts/orders.yaml, as the CLI and the
  operator run it: columns, types of every value, and the contract's value rules in the
  same pass (primary key unique over the whole file, not null, amount bounds, allowed
  currencies and statuses). Goal: peak RSS <= 512 MB.
- datacontract-cli: ``datacontract test`` of the same file against an ODCS contract with
  the same rules (written below: required, primary key and unique, minimum/maximum,
  invalidValues), from a separate virtualenv (``.safeload/bench-venvs/datacontract``,
  installed from PyPI on the first run: its dependencies clash with Airflow's). Goal:
  safeload faster.
- with ``--python-engine``: safeload's reference engine (row by row, decision 013).

Run: ``python bench/bench_contract.py`` (1 GB, 3 rounds) or ``--quick`` (50 MB). The
figures of the last full run are in docs/decisions/027-contract-check-speed.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "include" / "contracts" / "orders.yaml"
DC_VENV = ROOT / ".safeload" / "bench-venvs" / "datacontract"

PYARROW = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import pyarrow.csv as pacsv
n = 0
with pacsv.open_csv(sys.argv[1]) as reader:
    for batch in reader:
        n += batch.num_rows
use = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": n, "cpu": use.ru_utime + use.ru_stime,
                  "rss_mb": use.ru_maxrss / 1024}))
"""

CHECK = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from safeload.contracts.check import check_source
from safeload.contracts.files import load_contract
from safeload.contracts.diff import diff
from safeload.contracts.introspect import introspect_csv
contract = load_contract(sys.argv[2])
report = diff(contract, introspect_csv(sys.argv[1], contract, engine=sys.argv[3]))
use = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": report.rows_scanned, "decision": report.decision,
                  "rules": report.rules_count(), "cpu": use.ru_utime + use.ru_stime,
                  "rss_mb": use.ru_maxrss / 1024}))
"""

# runs a command and reports its time and the peak RSS of the process tree it waited for
TIMED = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": time.perf_counter() - t0, "rc": proc.returncode, "tail": proc.stdout[-300:],
                  "cpu": use.ru_utime + use.ru_stime, "rss_mb": use.ru_maxrss / 1024}))
"""

DC_CONTRACT = """apiVersion: v3.0.2
kind: DataContract
id: orders-bench
name: orders
version: 1.0.0
status: active
servers:
  - {{server: local, type: local, path: "{path}", format: csv}}
schema:
  - name: orders
    physicalName: orders
    physicalType: table
    properties:
      - {{name: order_id, logicalType: integer, physicalType: bigint, primaryKey: true, required: true, unique: true}}
      - {{name: order_date, logicalType: date, physicalType: date, required: true}}
      - {{name: customer_id, logicalType: integer, physicalType: bigint, required: true}}
      - name: amount
        logicalType: number
        physicalType: decimal(12,2)
        required: true
        logicalTypeOptions: {{minimum: 0, maximum: 100000}}
      - name: currency
        logicalType: string
        physicalType: varchar
        required: true
        quality:
          - {{metric: invalidValues, arguments: {{validValues: [EUR, USD, GBP]}}, mustBe: 0}}
      - name: status
        logicalType: string
        physicalType: varchar
        required: true
        quality:
          - {{metric: invalidValues, arguments: {{validValues: [placed, paid, shipped, delivered, cancelled,
                                                              returned]}}, mustBe: 0}}
      - {{name: created_at, logicalType: timestamp, physicalType: timestamp, required: true}}
"""


def make_csv(path: Path, target_mb: int) -> int:
    """Orders rows, repeated with shifted ids until the file has ``target_mb`` MB: every id distinct."""
    sys.path.insert(0, str(ROOT / "include"))
    import datetime as dt

    import generate_orders

    header, rows = generate_orders.generate(dt.date(2024, 5, 1), 100_000, set())
    n = k = 0
    with open(path, "w", newline="") as fh:
        fh.write(",".join(header) + "\n")
        while fh.tell() < target_mb * 1_000_000:
            offset = k * len(rows)
            fh.write("".join(f"{int(r[0]) + offset},{','.join(r[1:])}\n" for r in rows))
            n += len(rows)
            k += 1
    return n


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                         timeout=7200)
    return json.loads(out.stdout.strip().splitlines()[-1])


def datacontract() -> tuple[Path | None, str]:
    """The ``datacontract`` executable of the bench's own virtualenv (installed if missing)."""
    exe = DC_VENV / "bin" / "datacontract"
    if exe.exists():
        return exe, ""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(DC_VENV)], check=True, capture_output=True, timeout=600)
        subprocess.run([str(DC_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "datacontract-cli[duckdb]"],
                       check=True, capture_output=True, text=True, timeout=1800)
    except (subprocess.SubprocessError, OSError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        return None, f"datacontract-cli could not be installed ({str(detail).strip().splitlines()[-1:]})"
    return (exe, "") if exe.exists() else (None, "datacontract-cli installed no 'datacontract' command")


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes-mb", default="1000", help="file sizes to check (MB)")
    ap.add_argument("--quick", action="store_true", help="a 50 MB file only")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every measurement (median kept)")
    ap.add_argument("--python-engine", action="store_true", help="also time the (slow) Python engine")
    ap.add_argument("--no-datacontract", action="store_true", help="skip datacontract-cli")
    args = ap.parse_args()
    sizes = [50] if args.quick else [int(s) for s in args.sizes_mb.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="safeload-bench-contract-"))
    free_mb = shutil.disk_usage(tmp).free / 1e6
    if max(sizes) * 1.6 > free_mb:  # the file, and the key spill of the unique check
        print(f"not enough disk in {tmp} for a {max(sizes)} MB file ({free_mb:.0f} MB free)")
        return 2
    dc, why = (None, "skipped (--no-datacontract)") if args.no_datacontract else datacontract()
    print(f"{'file MB':>8} {'rows':>12} {'pyarrow s':>10} {'RSS MB':>7} {'safeload s':>11} {'x pyarrow':>10} "
          f"{'RSS MB':>7} {'datacontract s':>15} {'safeload faster':>16} {'RSS MB':>7}")
    try:
        for mb in sizes:
            path = tmp / f"orders_{mb}.csv"
            rows = make_csv(path, mb)
            spec = tmp / "orders.odcs.yaml"
            spec.write_text(DC_CONTRACT.format(path=path))
            plain, check, other = [], [], []
            for _ in range(args.rounds):
                plain.append(run(PYARROW, str(path)))
                check.append(run(CHECK, str(path), str(CONTRACT), "auto"))
                assert plain[-1]["rows"] == rows == check[-1]["rows"], (plain[-1], check[-1], rows)
                assert check[-1]["decision"] == "ok" and check[-1]["rules"]["passed"] == 12, check[-1]
                if dc is not None:
                    result = run(TIMED, str(dc), "test", str(spec))
                    if result["rc"] != 0:
                        print(f"datacontract test failed (exit {result['rc']}): {result['tail']}")
                        dc, why = None, "its test failed"
                    else:
                        other.append(result)
            p_s, c_s = median(plain, "seconds"), median(check, "seconds")
            line = (f"{path.stat().st_size / 1e6:>8.0f} {rows:>12,} {p_s:>10.1f} {max(r['rss_mb'] for r in plain):>7.0f} "
                    f"{c_s:>11.1f} {c_s / p_s:>10.2f} {max(r['rss_mb'] for r in check):>7.0f}")
            if other:
                o_s = median(other, "seconds")
                line += f" {o_s:>15.1f} {o_s / c_s:>15.2f}x {max(r['rss_mb'] for r in other):>7.0f}"
            print(line, flush=True)
            spread = ", ".join(f"{name} {min(r['seconds'] for r in runs):.1f}-{max(r['seconds'] for r in runs):.1f} s "
                               f"(CPU {median(runs, 'cpu'):.1f} s)"
                               for name, runs in (("pyarrow", plain), ("safeload", check), ("datacontract", other))
                               if runs)
            print(f"  medians of {args.rounds} interleaved rounds; min-max and median CPU (user + system): {spread}",
                  flush=True)
            if args.python_engine:
                slow = run(CHECK, str(path), str(CONTRACT), "python")
                assert (slow["rows"], slow["decision"], slow["rules"]) == (rows, "ok", check[0]["rules"]), slow
                print(f"  python engine: {slow['seconds']:.1f} s = {slow['seconds'] / p_s:.2f}x "
                      f"pyarrow, {slow['rss_mb']:.0f} MB RSS", flush=True)
            path.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if dc is None:
        print(f"datacontract-cli not measured: {why}")
    print("x pyarrow: safeload's check (fresh process, imports included) as a multiple of a streamed pyarrow CSV "
          "read of the same file; safeload faster: datacontract test's time / safeload's. RSS: peak resident "
          "memory (the largest of the rounds). Goals: <= 1.5x pyarrow, faster than datacontract-cli, <= 512 MB.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
