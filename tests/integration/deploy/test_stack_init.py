"""What prepares a deployment: the warehouse's tables and sample data (include/setup_warehouse.py)
and docker-compose.yaml's airflow-init (include/compose_init.py), against a real PostgreSQL.

airflow-init as a whole (with ``airflow db migrate``) runs in tests/e2e.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "include"))

import compose_init  # noqa: E402
import setup_warehouse  # noqa: E402

GOOD = {"AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(b"k" * 32).decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": "j" * 43, "AIRFLOW__API__SECRET_KEY": "s" * 43}


def _counts(uri: str) -> dict[str, int]:
    with psycopg.connect(uri) as conn:
        tables = [r[0] for r in conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema in ('public', 'app') order by 1")]
        return {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in tables}


def test_setup_creates_the_tables_and_the_days_before_today_and_can_run_again(pg_uri, tmp_path, capsys):
    args = ["--conn", pg_uri, "--sample-days", "2", "--data-dir", str(tmp_path)]
    assert setup_warehouse.main(args, env={}) == 0
    first = _counts(pg_uri)
    assert {"public.orders", "public.customers_snapshot", "public.dim_customers", "public.payments",
            "app.payments"} <= set(first)
    assert first["app.payments"] == 2 * 500
    today = dt.datetime.now(dt.timezone.utc).date()
    days = [(today - dt.timedelta(days=n)).isoformat() for n in (2, 1)]
    for feed in ("orders", "customers"):
        assert sorted(p.name for p in (tmp_path / feed).glob("*.csv")) == [f"{d}.csv" for d in days]
        assert all((tmp_path / feed / f"{d}.csv.done").exists() for d in days)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.csv")}
    assert setup_warehouse.main(args, env={}) == 0
    assert _counts(pg_uri) == first
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.csv")} == before
    assert f"sample data: {days[0]} to {days[1]}" in capsys.readouterr().out


def test_setup_reads_the_warehouse_and_the_data_folder_from_airflow_s_environment(pg_uri, tmp_path):
    env = {"AIRFLOW_CONN_WAREHOUSE": pg_uri, "SAFELOAD_DATA_DIR": str(tmp_path / "landing")}
    assert setup_warehouse.main(["--sample-days", "1"], env=env) == 0
    assert list((tmp_path / "landing" / "orders").glob("*.csv"))


@pytest.mark.parametrize(("env", "says"), [
    pytest.param({}, "set AIRFLOW_CONN_WAREHOUSE", id="no warehouse"),
    pytest.param({"AIRFLOW_CONN_WAREHOUSE": '{"conn_type": "postgres", "host": "db"}'}, "must be a postgresql:// URI",
                 id="a JSON connection"),
])
def test_setup_without_a_usable_warehouse_says_what_to_set(env, says, capsys):
    assert setup_warehouse.main([], env=env) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(("broken", "value", "says"), [
    pytest.param("AIRFLOW__CORE__FERNET_KEY", "", "AIRFLOW_FERNET_KEY is not a Fernet key", id="no Fernet key"),
    pytest.param("AIRFLOW__CORE__FERNET_KEY", "not-base64!", "AIRFLOW_FERNET_KEY is not a Fernet key",
                 id="Fernet key not base64"),
    pytest.param("AIRFLOW__CORE__FERNET_KEY", base64.urlsafe_b64encode(b"k" * 16).decode(),
                 "AIRFLOW_FERNET_KEY is not a Fernet key", id="Fernet key of 16 bytes"),
    pytest.param("AIRFLOW__API_AUTH__JWT_SECRET", "short", "AIRFLOW_JWT_SECRET has 5 characters", id="short JWT secret"),
    pytest.param("AIRFLOW__API__SECRET_KEY", "", "AIRFLOW_SECRET_KEY has 0 characters", id="no API secret key"),
])
def test_init_refuses_secrets_that_are_missing_or_malformed(broken, value, says):
    with pytest.raises(compose_init.InitError, match=says) as e:
        compose_init.check_secrets({**GOOD, broken: value})
    name = next(n for n, s in compose_init.SETTING.items() if s == broken)
    assert f'echo "{name}=$(python3 -c' in str(e.value)  # the command that makes a good one


def test_init_accepts_secrets_made_as_readme_says():
    compose_init.check_secrets(GOOD)
    assert compose_init.public_defaults_in_use(GOOD) is None


def test_init_warns_while_the_compose_file_s_public_defaults_are_in_use():
    public = {compose_init.SETTING[n]: v for n, v in compose_init.PUBLIC_DEFAULTS.items()}
    compose_init.check_secrets(public)  # they work: a first `docker compose up` starts
    warning = compose_init.public_defaults_in_use({**public, "AIRFLOW__API__SECRET_KEY": "s" * 43})
    assert warning.startswith("WARNING: AIRFLOW_FERNET_KEY, AIRFLOW_JWT_SECRET are the public default")
    assert 'echo "AIRFLOW_FERNET_KEY=$(python3 -c' in warning and "AIRFLOW_SECRET_KEY=" not in warning


def test_init_accepts_two_fernet_keys_while_they_are_rotated():
    old = base64.urlsafe_b64encode(b"o" * 32).decode()
    compose_init.check_secrets({**GOOD, "AIRFLOW__CORE__FERNET_KEY": f"{GOOD['AIRFLOW__CORE__FERNET_KEY']},{old}"})
    with pytest.raises(compose_init.InitError, match="AIRFLOW_FERNET_KEY is not a Fernet key"):
        compose_init.check_secrets({**GOOD, "AIRFLOW__CORE__FERNET_KEY": f"{GOOD['AIRFLOW__CORE__FERNET_KEY']},oops"})


def test_init_sets_the_admin_password_and_keeps_other_users(tmp_path):
    file = tmp_path / "state" / "passwords.json"
    env = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(file)}
    assert compose_init.write_password(env) == file
    assert json.loads(file.read_text()) == {"admin": "admin"}  # README's admin / admin
    file.write_text(json.dumps({"admin": "admin", "viewer": "generated-by-airflow"}))
    compose_init.write_password({**env, "_AIRFLOW_WWW_USER_PASSWORD": "changed"})
    assert json.loads(file.read_text()) == {"admin": "changed", "viewer": "generated-by-airflow"}


def test_init_names_a_broken_passwords_file(tmp_path):
    file = tmp_path / "passwords.json"
    file.write_text('{"admin": "admin",\n "viewer" }')
    with pytest.raises(compose_init.InitError, match=r"passwords.json line 2, column 11: not JSON .*delete the file"):
        compose_init.write_password({"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(file)})
    assert file.read_text() == '{"admin": "admin",\n "viewer" }'


def test_init_knows_the_folders_every_component_writes_to(tmp_path):
    env = {"AIRFLOW_HOME": str(tmp_path), "SAFELOAD_DATA_DIR": str(tmp_path / "landing"),
           "SAFELOAD_ALERT_STATE_DIR": str(tmp_path / "state"),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "state" / "passwords.json")}
    assert compose_init.shared_folders(env) == [tmp_path / "logs", tmp_path / "landing", tmp_path / "state"]
