"""A throw-away database on the test server, for fixtures that need one of their own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def scratch_database(server_uri: str, prefix: str = "t") -> Iterator[str]:
    """Create a database with a unique name on ``server_uri``'s server; drop it on exit.

    :param server_uri: a superuser URI of the server (``pg_server``)
    :param prefix: the start of the database's name, to tell test databases apart
    """
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield f"{server_uri.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(server_uri, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
