"""Peak memory of a contract check and a load whose source is an object in S3, GCS or Azure Blob, by the object's size.

A real S3 API, a real GCS JSON API and a real Azure Blob API on 127.0.0.1 (moto's server
mode, gcp-storage-emulator and Azurite, as the tests use; Azurite where ``make install``
installed it) hold orders CSV objects of two sizes; for each,
in a fresh process (imports included, peak RSS its own):

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
import os
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

    import contextlib

    import psycopg
    from azure_server import AzureContainer, Azurite, azurite_blob
    from gcs_server import GcsBucket, GcsEmulator
    from s3_server import MotoS3

    from safeload.dev import embedded

    # gcsfs against an emulator: no gRPC bucket probe, no metadata server (tests/gcs_server.py)
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    os.environ.setdefault("NO_GCE_CHECK", "true")
    work = Path(tempfile.mkdtemp(prefix="safeload-bench-object-"))
    cli = [sys.executable, "-m", "safeload.cli"]
    stores = ("s3", "gcs", "abfs") if azurite_blob().exists() else ("s3", "gcs")
    rows_out = []
    try:
        uri = embedded.start(work / "pg")
        with MotoS3() as s3, GcsEmulator() as gcs_server, \
                (Azurite() if "abfs" in stores else contextlib.nullcontext()) as azure_server:
            client = s3.client()
            client.create_bucket(Bucket="lake")
            gcs = GcsBucket(gcs_server, "lake")
            azure = AzureContainer(azure_server, "lake") if azure_server else None
            options = {"s3": json.dumps(s3.storage_options()), "gcs": json.dumps(gcs_server.storage_options()),
                       "abfs": json.dumps(azure_server.storage_options()) if azure_server else None}
            for mb in sizes:
                path = work / f"orders-{mb}.csv"
                n = make_csv(path, mb)
                client.upload_file(str(path), "lake", path.name)
                urls = {"s3": f"s3://lake/{path.name}", "gcs": gcs.put(path.name, path),
                        "abfs": azure.put(path.name, path) if azure else None}
                for step in ("check", "load"):
                    figures = {}
                    sources = [("local", [str(path)])] + [(k, [urls[k], "--storage-options", options[k]])
                                                          for k in stores]
                    for where, source in sources:
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
                    rows_out.append((mb, n, step, figures))
                path.unlink()
                client.delete_object(Bucket="lake", Key=path.name)
                gcs.delete(path.name)
                if azure:
                    azure.delete(path.name)
    finally:
        embedded.stop(work / "pg", mode="immediate")
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'object':>8} {'rows':>10} {'step':>6} {'local s':>8} " +
          " ".join(f"{k + ' s':>7} {'x local':>7}" for k in stores) + f" {'local RSS MB':>13} " +
          " ".join(f"{k + ' RSS MB':>11}" for k in stores))
    for mb, n, step, f in rows_out:
        print(f"{mb:>6}MB {n:>10} {step:>6} {f['local']['seconds']:>8.1f} " +
              " ".join(f"{f[k]['seconds']:>7.1f} {f[k]['seconds'] / f['local']['seconds']:>7.2f}" for k in stores) +
              f" {f['local']['rss_mb']:>13.0f} " + " ".join(f"{f[k]['rss_mb']:>11.0f}" for k in stores))
    for step in ("check", "load"):
        small, large = [r for r in rows_out if r[2] == step]
        for k in stores:
            print(f"{step}: {k} peak RSS {small[3][k]['rss_mb']:.0f} MB at {small[0]} MB, {large[3][k]['rss_mb']:.0f} "
                  f"MB at {large[0]} MB ({large[3][k]['rss_mb'] - small[3][k]['rss_mb']:+.0f} MB for "
                  f"{large[0] - small[0]} MB more object)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
