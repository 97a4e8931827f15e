"""Benchmark: what one alert's storm-control bookkeeping costs, shared (PostgreSQL) or local (file).

One alert's bookkeeping is a decision and, once it is sent, its outcome: two
transactions on the DAG's state. Timed, interleaved, ``--repeats`` rounds of
``--alerts`` alerts (a failure of a new task in a new run each, then a "resolved"
every tenth), each:

- ``file`` (the baseline): the JSON file of one machine (``FileStore``);
- ``postgres``: ``safeload.alert_state`` in PostgreSQL, a new connection per
  transaction, as the notifiers use it;
- ``postgres, 4 processes``: the same, four processes at once on one DAG (the DAG's
  advisory lock makes them wait for each other).

Prints the median milliseconds per alert and the ratio to the file.

    python bench/bench_alert_state.py              # 200 alerts x 5 rounds
    python bench/bench_alert_state.py --quick      # 40 alerts x 2 rounds

Uses ``SAFELOAD_BENCH_PG_URI`` when set, else starts an embedded PostgreSQL in a
temporary directory.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from safeload.alerts.store_file import FileStore
from safeload.alerts.store_postgres import PostgresStore
from safeload.alerts.throttle import AlertState


def one_alert(state: AlertState, i: int, prefix: str) -> None:
    decision = state.record_failure(dag_id="bench_dag", task_id=f"{prefix}t{i % 50}", run_id=f"{prefix}r{i}")
    state.commit(decision, ok=True, thread_ts=f"1.{i}", channel="C1")
    if i % 10 == 9:
        for resolution in state.resolve(dag_id="bench_dag", task_id=f"{prefix}t{i % 50}"):
            state.settle(resolution, ok=True)


def postgres(uri: str) -> AlertState:
    return AlertState(store=PostgresStore(lambda: psycopg.connect(uri), where="bench", lock_timeout=30))


def run(state: AlertState, alerts: int, prefix: str = "") -> float:
    started = time.perf_counter()
    for i in range(alerts):
        one_alert(state, i, prefix)
    return (time.perf_counter() - started) / alerts


def _worker(uri: str, alerts: int, prefix: str, barrier, out) -> None:
    barrier.wait(timeout=60)
    out.put(run(postgres(uri), alerts, prefix))


def run_parallel(uri: str, alerts: int, processes: int, round_no: int) -> float:
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(uri, alerts, f"p{round_no}.{n}.", barrier, out))
             for n in range(processes)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    elapsed = time.perf_counter() - started
    return elapsed / (alerts * processes)  # wall time per alert, all processes together


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--alerts", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="40 alerts, 2 rounds")
    args = p.parse_args(argv)
    alerts, repeats = (40, 2) if args.quick else (args.alerts, args.repeats)

    uri = os.environ.get("SAFELOAD_BENCH_PG_URI")
    tmp = None
    if not uri:
        from safeload.dev import embedded

        tmp = Path(tempfile.mkdtemp(prefix="safeload-bench-"))
        print(f"starting an embedded PostgreSQL in {tmp} ...", file=sys.stderr)
        uri = embedded.start(tmp / "data")
    workdir = Path(tempfile.mkdtemp(prefix="safeload-bench-state-"))
    try:
        times: dict[str, list[float]] = {"file": [], "postgres": [], "postgres, 4 processes": []}
        for r in range(repeats):  # interleaved: a load spike hits every measurement alike
            times["file"].append(run(AlertState(store=FileStore(workdir / f"s{r}.json")), alerts))
            times["postgres"].append(run(postgres(uri), alerts, prefix=f"s{r}."))
            times["postgres, 4 processes"].append(run_parallel(uri, alerts // 4, 4, r))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{alerts} alerts (decision + outcome, a 'resolved' every tenth); median of {repeats} rounds")
        for key, value in med.items():
            ratio = "" if key == "file" else f"   -> {value / med['file']:.1f}x the file"
            print(f"  {key + ':':24s} {value * 1000:7.2f} ms per alert{ratio}")
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("drop table if exists safeload.alert_state")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if tmp is not None:
            from safeload.dev import embedded

            embedded.stop(tmp / "data")
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
