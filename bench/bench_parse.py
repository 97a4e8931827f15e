"""Parse time of each reference DAG as a ratio to an empty DAG file's.

Each file is parsed in a fresh process after `import airflow.sdk` (which every DAG
pays), so the figure is what a DAG file adds: its own imports and its top-level code.
"cold" is the first parse in the process (safeload's modules imported then), "warm" a
re-parse. A DAG of six chained EmptyOperators is printed too: the cost of any DAG of the
reference DAGs' shape, whatever its operators; and the same with ``schedule="@daily"``, as
the reference DAGs have (a cron schedule imports Airflow's timetables and croniter). Also lists which heavy modules (GX, pandas, pyarrow, numpy) parsing imported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = r"""
import json, runpy, sys, time
import airflow.sdk  # paid by every DAG file, empty or not
t0 = time.perf_counter(); runpy.run_path(sys.argv[1]); cold = time.perf_counter() - t0
warm = []
for _ in range(5):
    t0 = time.perf_counter(); runpy.run_path(sys.argv[1]); warm.append(time.perf_counter() - t0)
heavy = [m for m in ("great_expectations", "pandas", "pyarrow", "numpy") if m in sys.modules]
print(json.dumps({"cold": cold, "warm": min(warm), "heavy": heavy}))
"""


def measure(path: Path, runs: int) -> dict:
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True,
                             timeout=600, env={"AIRFLOW_HOME": tempfile.gettempdir() + "/safeload-bench-airflow",
                                               "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin"})
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"cold": statistics.median(s["cold"] for s in samples), "warm": min(s["warm"] for s in samples),
            "heavy": samples[0]["heavy"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    runs = 2 if args.quick else args.runs
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty_dag.py"
        empty.write_text("from airflow.sdk import DAG\n\nwith DAG('empty', schedule=None):\n    pass\n")
        shape = Path(tmp) / "six_empty_tasks.py"
        shape.write_text(
            "from airflow.providers.standard.operators.empty import EmptyOperator\n"
            "from airflow.sdk import DAG, chain\n\n"
            "with DAG('shape', schedule=None, default_args={'owner': 'x', 'retries': 2}):\n"
            "    chain(*[EmptyOperator(task_id=f't{i}') for i in range(6)])\n")
        daily = Path(tmp) / "six_empty_tasks_daily.py"
        daily.write_text(shape.read_text().replace("schedule=None", "schedule='@daily'"))
        base = measure(empty, runs)
        same_shape = measure(shape, runs)
        same_daily = measure(daily, runs)
        print(f"{'DAG file':<24} {'cold ms':>9} {'x empty':>8} {'warm ms':>9} {'x empty':>8}  heavy imports")
        print(f"{'(empty DAG)':<24} {base['cold'] * 1e3:>9.1f} {1:>8.2f} {base['warm'] * 1e3:>9.1f} {1:>8.2f}  {base['heavy'] or '-'}")
        print(f"{'(6 EmptyOperators)':<24} {same_shape['cold'] * 1e3:>9.1f} {same_shape['cold'] / base['cold']:>8.2f} "
              f"{same_shape['warm'] * 1e3:>9.1f} {same_shape['warm'] / base['warm']:>8.2f}  {same_shape['heavy'] or '-'}")
        print(f"{'(6 EmptyOps, @daily)':<24} {same_daily['cold'] * 1e3:>9.1f} {same_daily['cold'] / base['cold']:>8.2f} "
              f"{same_daily['warm'] * 1e3:>9.1f} {same_daily['warm'] / base['warm']:>8.2f}  {same_daily['heavy'] or '-'}")
        for path in sorted((ROOT / "dags").glob("*.py")):
            m = measure(path, runs)
            print(f"{path.name:<24} {m['cold'] * 1e3:>9.1f} {m['cold'] / base['cold']:>8.2f} {m['warm'] * 1e3:>9.1f} "
                  f"{m['warm'] / base['warm']:>8.2f}  {m['heavy'] or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
