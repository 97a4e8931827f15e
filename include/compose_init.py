"""docker-compose.yaml's airflow-init: everything the stack needs before its components start.

    python /opt/airflow/include/compose_init.py --sample-days 7

In order, each step safe to repeat at every ``docker compose up``:

1. checks the shared secrets (a Fernet key that is one, a JWT secret and an API secret
   key), so that a bad .env stops here with what to fix, not as tasks failing later, and
   warns while they are the file's public defaults;
2. migrates Airflow's metadata database (``airflow db migrate``; the image's own
   ``_AIRFLOW_DB_MIGRATE`` would go on after a failed migration);
3. writes the admin's password (``_AIRFLOW_WWW_USER_USERNAME`` /
   ``_AIRFLOW_WWW_USER_PASSWORD``, default admin / admin) into SimpleAuthManager's
   passwords file on the shared state volume, keeping any other users in it;
4. creates the warehouse tables and the sample data (include/setup_warehouse.py);
5. as root, hands the shared folders (logs, landing, state) to ``AIRFLOW_UID``, group 0,
   the user every other container runs as.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

GENERATE = {
    "AIRFLOW_FERNET_KEY": "python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'",
    "AIRFLOW_JWT_SECRET": "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
    "AIRFLOW_SECRET_KEY": "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
}
# the Airflow setting each .env variable of docker-compose.yaml becomes
SETTING = {
    "AIRFLOW_FERNET_KEY": "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW_JWT_SECRET": "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW_SECRET_KEY": "AIRFLOW__API__SECRET_KEY",
}
MIN_SECRET_CHARS = 16
#: what docker-compose.yaml uses when .env sets no secret: public, so that a first
#: `docker compose up` works; airflow-init warns while any of them is in use
PUBLIC_DEFAULTS = {
    "AIRFLOW_FERNET_KEY": "jqF4gwEvTmScnKlzkiYBhdYRW2qxBfZDo1TaXq6-8Wo=",
    "AIRFLOW_JWT_SECRET": "safeload-public-default-jwt-secret-set-one-in-env",
    "AIRFLOW_SECRET_KEY": "safeload-public-default-secret-key-set-one-in-env",
}


class InitError(Exception):
    """The stack cannot start; the message says what to fix."""


def _is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32
    except (binascii.Error, ValueError):
        return False


def public_defaults_in_use(env: dict[str, str]) -> str | None:
    """A warning naming the shared secrets that are still docker-compose.yaml's public
    defaults, with the commands that make real ones; None when every one is set."""
    public = [n for n, setting in SETTING.items() if env.get(setting) == PUBLIC_DEFAULTS[n]]
    if not public:
        return None
    fixes = "\n".join(f"  echo \"{n}=$({GENERATE[n]})\" >> .env" for n in public)
    return (f"WARNING: {', '.join(public)} {'is' if len(public) == 1 else 'are'} the public default of "
            "docker-compose.yaml: anyone can read the connections this stack stores and sign its task "
            "tokens. Fine on a laptop; anywhere else make real ones in .env, then `docker compose up -d` "
            "(a new Fernet key cannot read connections stored under the old one: rotate with "
            "AIRFLOW_FERNET_KEY=new,old and `airflow rotate-fernet-key`):\n" + fixes)


def check_secrets(env: dict[str, str]) -> None:
    """Raise :class:`InitError` naming every shared secret that is missing or malformed."""
    problems = []
    for name, setting in SETTING.items():
        value = env.get(setting, "")
        if name == "AIRFLOW_FERNET_KEY":
            # "new,old" while rotating keys (airflow rotate-fernet-key): each must be one
            if not all(_is_fernet_key(key.strip()) for key in value.split(",")):
                problems.append(f"{name} is not a Fernet key (32 url-safe base64-encoded bytes)")
        elif len(value) < MIN_SECRET_CHARS:
            problems.append(f"{name} has {len(value)} characters; use at least {MIN_SECRET_CHARS} random ones")
    if problems:
        fixes = "\n".join(f"  echo \"{n}=$({GENERATE[n]})\" >> .env" for n in GENERATE
                          if any(p.startswith(n + " ") for p in problems))
        raise InitError("; ".join(problems) + ". Every component must share them: set them in .env "
                        "(remove the old lines first), then `docker compose up -d` again:\n" + fixes)


def write_password(env: dict[str, str]) -> Path | None:
    """Set the admin's password in SimpleAuthManager's passwords file; other users stay."""
    path = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    if not path:
        return None
    user = env.get("_AIRFLOW_WWW_USER_USERNAME") or "admin"
    password = env.get("_AIRFLOW_WWW_USER_PASSWORD") or "admin"
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    passwords = {}
    if file.exists() and file.read_text().strip():
        try:
            passwords = json.loads(file.read_text())
        except json.JSONDecodeError as e:
            raise InitError(f"{file} line {e.lineno}, column {e.colno}: not JSON ({e.msg}); "
                            "delete the file and run airflow-init again") from None
    passwords[user] = password
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(passwords) + "\n")
    tmp.chmod(0o660)
    tmp.replace(file)
    return file


def shared_folders(env: dict[str, str]) -> list[Path]:
    """The folders every component writes to: logs, the landing folder, the state volume."""
    home = Path(env.get("AIRFLOW_HOME", "/opt/airflow"))
    folders = [Path(env.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER") or home / "logs")]
    for key in ("SAFELOAD_DATA_DIR", "SAFELOAD_ALERT_STATE_DIR"):
        if env.get(key):
            folders.append(Path(env[key]))
    if env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"):
        folders.append(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).parent)
    return list(dict.fromkeys(folders))


def hand_over(folders: list[Path], uid: int) -> None:
    """``chown -R uid:0`` (group 0 is the image's group for any user)."""
    for top in folders:
        for path in [top, *top.rglob("*")]:
            os.lchown(path, uid, 0)


def main(argv: list[str] | None = None) -> int:
    import argparse

    import setup_warehouse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample-days", type=int, default=7, help="days of sample data (include/setup_warehouse.py)")
    args = ap.parse_args(argv)
    env = dict(os.environ)
    try:
        check_secrets(env)
        warning = public_defaults_in_use(env)
        if warning:
            print(warning, flush=True)
        for folder in shared_folders(env):
            folder.mkdir(parents=True, exist_ok=True)
        print("metadata database: airflow db migrate", flush=True)
        migrate = subprocess.run(["airflow", "db", "migrate"], env=env)
        if migrate.returncode:
            raise InitError(f"airflow db migrate exited with {migrate.returncode} (its output is above)")
        written = write_password(env)
        if written:
            print(f"login: {env.get('_AIRFLOW_WWW_USER_USERNAME') or 'admin'}, password in {written}")
        code = setup_warehouse.main(["--sample-days", str(args.sample_days)], env=env)
        if code:
            return code
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            uid = int(env.get("AIRFLOW_UID") or 50000)
            hand_over(shared_folders(env), uid)
            print(f"shared folders owned by {uid}:0")
    except InitError as e:
        print(f"airflow-init: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
