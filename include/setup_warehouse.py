"""The warehouse the reference DAGs load into: their tables, and sample data to run them on.

    python include/setup_warehouse.py                      # tables only (include/sql/*.sql)
    python include/setup_warehouse.py --sample-days 7      # and the last 7 days of sample data

The warehouse is ``--conn`` or ``AIRFLOW_CONN_WAREHOUSE`` (a postgresql:// URI); the
payments application's database ``--app-conn`` or ``AIRFLOW_CONN_APP_SOURCE`` (default:
the warehouse, in its schema ``app``). Sample files go to ``--data-dir`` or
``SAFELOAD_DATA_DIR``, where the DAGs look for them (default include/data/generated).

Sample data covers the ``--sample-days`` days before today (UTC): the runs a scheduler
creates once the DAGs are unpaused find their files. Everything is idempotent: the same
day always gives the same files and rows, and tables are created only when missing.
docker-compose.yaml's airflow-init runs this; so does a team installing into its own
Airflow (README, "Deploy it").
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SQL_DIR = HERE / "sql"
sys.path.insert(0, str(HERE))  # the generate_* modules beside this file


class SetupError(Exception):
    """A setting this script cannot work with; the message says which and what to do."""


def warehouse_uri(given: str | None, env: dict[str, str]) -> str:
    uri = given or env.get("AIRFLOW_CONN_WAREHOUSE", "")
    if not uri:
        raise SetupError("no warehouse: pass --conn postgresql://user:password@host:5432/db "
                         "or set AIRFLOW_CONN_WAREHOUSE to that URI")
    if not uri.startswith(("postgresql://", "postgres://")):
        raise SetupError(f"the warehouse connection must be a postgresql:// URI, got {uri.split(':', 1)[0]}://...; "
                         "give the URI form of the connection (airflow connections get warehouse -o yaml shows it)")
    return "postgresql://" + uri.split("://", 1)[1]


def apply_ddl(conn) -> list[str]:
    """Run every include/sql/*.sql (``create ... if not exists``), in name order."""
    applied = []
    for ddl in sorted(SQL_DIR.glob("*.sql")):
        conn.execute(ddl.read_text())
        applied.append(ddl.name)
    return applied


def sample_days(days: int, today: dt.date) -> list[dt.date]:
    """The ``days`` days before ``today``, oldest first."""
    return [today - dt.timedelta(days=n) for n in range(days, 0, -1)]


def write_samples(data_dir: Path, app_conn, days: list[dt.date]) -> None:
    import generate_customers
    import generate_orders
    import generate_payments

    generate_payments.create_source(app_conn)
    for day in days:
        generate_orders.write(data_dir, day, 2000, set())
        generate_customers.write(data_dir, day, 500)
        generate_payments.write_day(app_conn, day, 500)


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    env = dict(os.environ) if env is None else env
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conn", help="postgresql:// URI of the warehouse (default $AIRFLOW_CONN_WAREHOUSE)")
    ap.add_argument("--app-conn", help="postgresql:// URI of the payments application's database "
                                       "(default $AIRFLOW_CONN_APP_SOURCE, else the warehouse)")
    ap.add_argument("--sample-days", type=int, default=0, help="sample data for this many days before today (UTC)")
    ap.add_argument("--data-dir", type=Path, help="where sample files go (default $SAFELOAD_DATA_DIR)")
    args = ap.parse_args(argv)
    if args.sample_days < 0:
        ap.error(f"--sample-days must be 0 or more, got {args.sample_days}")
    import psycopg

    try:
        uri = warehouse_uri(args.conn, env)
        app_uri = warehouse_uri(args.app_conn or env.get("AIRFLOW_CONN_APP_SOURCE") or uri, {})
    except SetupError as e:
        print(f"setup_warehouse: {e}", file=sys.stderr)
        return 2
    with psycopg.connect(uri, autocommit=True) as conn:
        print(f"tables: {', '.join(apply_ddl(conn))} applied to {conn.info.host}:{conn.info.port}/{conn.info.dbname}")
    if args.sample_days:
        data_dir = args.data_dir or Path(env.get("SAFELOAD_DATA_DIR") or HERE / "data" / "generated")
        days = sample_days(args.sample_days, dt.datetime.now(dt.timezone.utc).date())
        with psycopg.connect(app_uri, autocommit=True) as app:
            write_samples(data_dir, app, days)
        print(f"sample data: {days[0]} to {days[-1]} in {data_dir} (orders, customers) and app.payments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
