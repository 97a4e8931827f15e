"""The staging table: its columns (the source's, mapped onto the target's), how it is
created, what it holds after the fill (row count and checksum), and whether it still
matches the target when it is published.

Staging is created from the catalogue, not with ``LIKE``, so that a stage holds no lock on
the target however long its COPY runs (:func:`safeload.loads.sql.create_like`). It is
UNLOGGED when it will be copied into the target, and permanent, with the target's
indexes and statistics, when it will become the partition (a swap).
"""

from __future__ import annotations

import hashlib
import logging

import psycopg
from psycopg import sql

from safeload.contracts.introspect import normalise
from safeload.errors import LoadRefusedError
from safeload.loads import sql as q
from safeload.loads.indexes import build_indexes
from safeload.metadata import STAGING_SCHEMA
from safeload.loads.spec import LoadSpec

log = logging.getLogger(__name__)


def extra_column(name: str) -> str:
    """Staging column name for a source column the target lacks (kept, never published)."""
    return "_extra_" + hashlib.sha1(name.encode()).hexdigest()[:12]


def map_columns(load: LoadSpec, info: q.TargetInfo, header: list[str], source: str) -> dict[str, str | None]:
    """source column -> target column (None: not in the target, staged and ignored)."""
    by_norm = {normalise(c.name): c.name for c in info.columns}
    by_norm.update({normalise(n): n for n, _ in load.add_columns})
    exact = {c.name for c in info.columns} | {n for n, _ in load.add_columns}
    # an exact name first: a table may have both "orders" and "Orders"
    mapping = {h: h if h in exact else by_norm.get(normalise(h)) for h in header}
    targets = [t if t is not None else extra_column(h) for h, t in mapping.items()]
    if len(mapping) != len(header) or len(set(targets)) != len(targets):
        dup = next(h for i, h in enumerate(header) if h in header[:i] or
                   (mapping.get(h) is not None and mapping.get(h) in [mapping.get(x) for x in header[:i]]))
        raise LoadRefusedError(f"{source} line 1: the header names column {dup!r} more than once (or in two "
                               "spellings that differ only in case or spaces); column names must be unique")
    present = set(mapping.values())
    generated = [c for c in info.columns if c.generated and c.name in present]
    if generated:
        raise LoadRefusedError(
            f"{source} has a column {generated[0].name!r}, which {info.name} computes (GENERATED ALWAYS AS ...) "
            "and PostgreSQL does not let anyone write; drop it from the source (or its contract)")
    identity = [c.name for c in info.columns if c.identity and c.name not in present]
    if identity:
        raise LoadRefusedError(
            f"{source} has no column {identity[0]!r}, which {info.name} fills from an identity sequence: "
            "safeload publishes the rows as they were staged and audited, ids included, and does not draw "
            "them at publish. Deliver the ids in the source, or give the column a DEFAULT instead")
    missing = [c.name for c in info.columns
               if c.not_null and not c.has_default and c.name not in present and c.name != load.partition_column]
    if missing:
        raise LoadRefusedError(f"{source} has no column {missing[0]!r}, which {info.name} requires (NOT NULL); "
                               "fix the source or check its contract")
    return mapping


def create_staging(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, name: str, header: list[str],
                   mapping: dict[str, str | None], *, as_partition: bool) -> None:
    """Create the staging table ``name``: the target's columns, constraints and defaults,
    the evolved and source-only columns, and the CHECK that pins every row to the value.

    :param as_partition: it will become the partition (permanent), else it is UNLOGGED
    """
    ident = q.staging_ident(name)
    # Built from the catalogue, not with LIKE: LIKE would keep a lock on the target for
    # the whole COPY (see q.create_like). For a swap it becomes the partition itself:
    # permanent (ATTACH requires the parent's persistence); otherwise it is only read
    # once by INSERT ... SELECT: UNLOGGED skips the WAL. Either way with the target's
    # CHECK constraints (ATTACH needs them; and a row that breaks one is refused at the
    # stage, where its line is known, not by the publish's INSERT)
    try:
        q.create_like(conn, q.regclass(info.schema, info.table), ident, unlogged=not as_partition, constraints=True)
    except psycopg.errors.InsufficientPrivilege as e:
        # a type, collation or function of the target in a schema the role may not use:
        # LIKE copies them by OID and needs no such grant, at the price of the lock
        log.warning("%s: staging created with LIKE, which keeps ACCESS SHARE on the target for the whole COPY "
                    "(other partitions' swaps and DDL wait for it), because %s; GRANT USAGE on that schema "
                    "to the loader's role lifts this", info.name, e.diag.message_primary)
        conn.execute(sql.SQL("create {}table {} (like {} including defaults including generated "
                             "including constraints)").format(sql.SQL("" if as_partition else "unlogged "), ident,
                                                              info.ident))
    # No autovacuum on staging: the load audits and analyzes it itself, and a worker
    # vacuuming it would hold a lock that the publish's DROP or ATTACH of it waits for,
    # until deadlock_timeout cancels the worker or a shorter lock_timeout fails the publish.
    # A swapped-in partition gets autovacuum back in the swap (publish/swap.py).
    conn.execute(sql.SQL("alter table {} set (autovacuum_enabled = false)").format(ident))
    for col, pg_type in load.add_columns:
        conn.execute(sql.SQL("alter table {} add column if not exists {} {}").format(
            ident, sql.Identifier(col), sql.SQL(pg_type)))
    for h in header:
        if mapping[h] is None:  # a column the target does not have: staged as text, not published
            conn.execute(sql.SQL("alter table {} add column {} text").format(ident, sql.Identifier(extra_column(h))))
    part = info.column(load.partition_column)
    if load.partition_column not in mapping.values() and not (part and part.generated):
        conn.execute(sql.SQL("alter table {} alter column {} set default {}").format(
            ident, sql.Identifier(load.partition_column), sql.Literal(load.partition_value)))
    # Rows of another partition fail the COPY (and are quarantined by the checked path)
    # without a scan of their own; the constraint also lets ATTACH skip its scan. "is not
    # null": a CHECK admits NULL, which would be published outside the partition (and
    # again by every re-run), and ATTACH proves its bound only from a constraint that
    # excludes NULL (else it scans staging under the parent's lock).
    conn.execute(sql.SQL("alter table {} add constraint {} check ({} is not null and {} = {})")
                 .format(ident, sql.Identifier(q.PARTITION_CHECK), sql.Identifier(load.partition_column),
                         sql.Identifier(load.partition_column),
                         sql.Literal(load.partition_value)))


def prepare_as_partition(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, name: str) -> None:
    """Give staging that will become the partition its indexes and statistics now.

    The parent's unique and plain indexes must exist on the partition anyway; built at
    the stage, they also serve the audit (the quality gate proves uniqueness from a
    unique index instead of sorting the column), and the partition is published with
    planner statistics. Duplicate keys leave staging without its indexes: the gate's
    uniqueness checks report them, and publish refuses to attach them.
    """
    # statistics first: ANALYZE shares the table with a checksum scan on another session
    # (stage.py), where ADD PRIMARY KEY (ACCESS EXCLUSIVE) must wait for that scan to end
    conn.execute(sql.SQL("analyze {}").format(q.staging_ident(name)))
    try:
        with conn.transaction():  # a savepoint: a failed index build keeps the staged rows
            build_indexes(conn, info, name)
    except psycopg.errors.IntegrityError as e:
        log.warning("%s partition %s: staging has duplicate keys (%s); the partition cannot be published "
                    "until the source is fixed", info.name, load.partition_value,
                    e.diag.message_detail or e.diag.message_primary)


def checksum(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, name: str, rows_loaded: int) -> str:
    """The checksum of the staged rows, over the columns the partition will have, as
    ``partition_checksum()`` reads the published one; checks staging holds ``rows_loaded``."""
    # the types as the catalogue prints them, as partition_checksum() reads the target's
    types = staged_columns(conn, name)
    cols = [(c, types[c]) for c in [c.name for c in info.columns] + [n for n, _ in load.add_columns]]
    n, digest = conn.execute(q.checksum_sql(q.staging_ident(name), cols)).fetchone()
    if n != rows_loaded:
        raise AssertionError(f"staging holds {n} rows, COPY reported {rows_loaded}")
    return digest


def staged_columns(conn: psycopg.Connection, staging: str) -> dict[str, str]:
    """A staging table's columns and their types as ``format_type()`` prints them, in order."""
    return {c.name: c.type for c in q.target_info(conn, f"{STAGING_SCHEMA}.{staging}").columns}


def persistence(conn: psycopg.Connection, staging: str) -> str | None:
    """The staging table's ``relpersistence`` (``p``: built to become the partition), None when it is gone."""
    row = conn.execute("select relpersistence from pg_class where oid = to_regclass(%s)",
                       (q.regclass(STAGING_SCHEMA, staging),)).fetchone()
    return row[0] if row else None


def check_staged_columns(load: LoadSpec, now: q.TargetInfo, staged_cols: dict[str, str]) -> None:
    """Refuse to publish when a staged column is gone from the target or has another type
    now: a column renamed since the stage looks like one dropped and one added, and its
    audited values would be published as NULL; a retyped one would be cast (101.01 to
    101) or fail. Columns added to the target since are fine: they get their defaults."""
    want = {c.name: c.type for c in now.columns}
    have = {c: t for c, t in staged_cols.items() if not c.startswith("_extra_")}
    gone = sorted(set(have) - set(want))
    retyped = sorted(f"{c} ({have[c]} staged, {want[c]} now)" for c in set(have) & set(want) if have[c] != want[c])
    if gone or retyped:
        what = "; ".join(([f"gone: {', '.join(gone)}"] if gone else []) +
                         ([f"of another type: {', '.join(retyped)}"] if retyped else []))
        raise LoadRefusedError(
            f"{now.name} partition {load.partition_value}: the target's columns changed since the stage ({what}); "
            "publishing the staged rows would lose or alter audited values, so nothing was published and the "
            "partition is unchanged. Stage the partition again against the table as it is now")


def exists(conn: psycopg.Connection, staging: str) -> bool:
    """Whether the staging table is there (it is gone once published, or dropped as stale)."""
    return conn.execute("select to_regclass(%s)", (q.regclass(STAGING_SCHEMA, staging),)).fetchone()[0] is not None
