"""Peak memory of a contract check and a load whose source is an object in S3, by the object's size.

A real S3 API on 127.0.0.1 (moto's server mode, as the tests use) holds orders CSV objects
of two sizes; for each, in a fresh process (imports included, peak RSS its own):

- ``safeload contract check`` of the object (every value rule of the orders contract), and
- ``safeload load`` of the object into a natively partitioned ``public.orders`` (embedded
  PostgreSQL),

and the same two commands on the same file on local disk, in the same run. Flat memory
means the object's peak RSS does not grow with its size (a full copy in memory would add
the object's size); the time ratio is what reading over HTTP costs against the local disk.

Run: ``python bench/bench_object_source.py`` (100 MB and 300 MB) or ``--quick`` (20 MB and 60 MB).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_contract import make_csv  # orders of 2024-05-01, every id distinct, to a size

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
CONTRACT = ROOT / "include" / "contracts" / "orders.yaml"

# runs a command and reports its time and the peak RSS of the process it waited for
TIMED = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"seconds": time.perf_counter() - t0, "rc": proc.returncode, "err": proc.stderr[-300:],
                  "rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def timed(*cmd: str) -> dict:
    out = subprocess.run([sys.executable, "-c", TIMED, *cmd], capture_output=True, text=True, check=True,
                         timeout=3600)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed: {result['err']}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="20 MB and 60 MB objects")
    args = ap.parse_args()
    sizes = (20, 60) if args.quick else (100, 300)

    import psycopg
    from s3_server import MotoS3

    from safeload.dev import embedded

    work = Path(tempfile.mkdtemp(prefix="safeload-bench-object-"))
    cli = [sys.executable, "-m", "safeload.cli"]
    rows_out = []
    try:
        uri = embedded.start(work / "pg")
        with MotoS3() as s3:
            client = s3.client()
            client.create_bucket(Bucket="lake")
            options = json.dumps(s3.storage_options())
            for mb in sizes:
                path = work / f"orders-{mb}.csv"
                n = make_csv(path, mb)
                client.upload_file(str(path), "lake", path.name)
                url = f"s3://lake/{path.name}"
                for step in ("check", "load"):
                    figures = {}
                    for where, source in (("local", [str(path)]), ("s3", [url, "--storage-options", options])):
                        with psycopg.connect(uri, autocommit=True) as conn:
                            conn.execute("drop schema if exists public cascade; drop schema if exists safeload "
                                         "cascade; drop schema if exists safeload_staging cascade; create schema "
                                         "public")
                            conn.execute((ROOT / "include" / "sql" / "orders.sql").read_text())
                        if step == "check":
                            cmd = [*cli, "contract", "check", str(CONTRACT), "--source", *source]
                        else:
                            cmd = [*cli, "load", "--conn", uri, "--table", "public.orders", "--partition",
                                   "2024-05-01", "--partition-column", "order_date", "--source", *source]
                        figures[where] = timed(*cmd)
                    rows_out.append((mb, n, step, figures["local"], figures["s3"]))
                path.unlink()
                client.delete_object(Bucket="lake", Key=path.name)
    finally:
        embedded.stop(work / "pg", mode="immediate")
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'object':>8} {'rows':>10} {'step':>6} {'local s':>8} {'s3 s':>8} {'x local':>8} "
          f"{'local RSS MB':>13} {'s3 RSS MB':>10}")
    for mb, n, step, local, s3 in rows_out:
        print(f"{mb:>6}MB {n:>10} {step:>6} {local['seconds']:>8.1f} {s3['seconds']:>8.1f} "
              f"{s3['seconds'] / local['seconds']:>8.2f} {local['rss_mb']:>13.0f} {s3['rss_mb']:>10.0f}")
    for step in ("check", "load"):
        small, large = [r for r in rows_out if r[2] == step]
        print(f"{step}: s3 peak RSS {small[4]['rss_mb']:.0f} MB at {small[0]} MB, {large[4]['rss_mb']:.0f} MB at "
              f"{large[0]} MB ({large[4]['rss_mb'] - small[4]['rss_mb']:+.0f} MB for "
              f"{large[0] - small[0]} MB more object)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
