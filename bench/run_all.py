"""`make bench`: run every benchmark in bench/, one after the other, and print their tables.

Each benchmark prints ratios against a baseline measured in the same run, on this
machine, so the figures compare like with like. Pass --quick for a fast smoke run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    args = sys.argv[1:]
    failed = []
    for bench in sorted(HERE.glob("bench_*.py")):
        print(f"\n######## {bench.name}", flush=True)
        rc = subprocess.call([sys.executable, str(bench), *args])
        if rc:
            failed.append(bench.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
