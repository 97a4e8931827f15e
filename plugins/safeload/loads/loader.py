"""Write-audit-publish of one partition into PostgreSQL.

``stage()`` streams the source into a fresh staging table with COPY, in one transaction
that also records the staging table in ``safeload.staging``: a crash mid-COPY leaves
nothing behind. Staging is created from the catalogue, not with ``LIKE``, so a stage
holds no lock on the target however long its COPY runs. Rows that do not parse or cast
go to ``safeload.quarantine`` with their line, raw text and reason, and a threshold
decides whether the load goes on. The counts always add up: source = loaded + quarantined. Staging is UNLOGGED when it will be copied
into the target, permanent (with the target's indexes and statistics) when it will
become the partition.

``publish()`` replaces the partition in one transaction, serialised per partition by
``pg_advisory_xact_lock`` and bounded by ``lock_timeout``: on a natively partitioned
target the staging table is swapped in (DETACH and DROP the old partition, ATTACH
staging; the lock is asked for in short attempts), elsewhere, or while a long reader
holds the table, the partition is DELETEd and INSERTed from staging; then the load
history row. Readers see the old partition or the new one, never a mix; a crash at any
point leaves the old one.

Between the two, a quality gate can check the staging table (the *audit*). Pure
psycopg: no Airflow import; the operators and the CLI are thin layers over this.
See docs/decisions/002-write-audit-publish.md.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from safeload.contracts.introspect import normalise
from safeload.contracts.types import PgType, check_value, parse_type
from safeload.errors import LoadRefusedError, LockTimeoutError
from safeload.identifiers import validate_identifier
from safeload.loads import sql as q
from safeload.loads.metadata import SCHEMA as METADATA_SCHEMA
from safeload.loads.metadata import STAGING_SCHEMA, ensure_metadata
from safeload.loads.partitions import (
    LOOK_UP,
    ensure_partition,
    free_partition_name,
    lock_partition,
    partition_for,
    swap_blocker,
)
from safeload.loads.privileges import explain_privileges
from safeload.loads.sources.base import COPY_BLOCK, Source
from safeload.loads.sources.files import FileSource
from safeload.loads.sources.query import QuerySource

log = logging.getLogger(__name__)

PUBLISH_STRATEGIES = ("auto", "swap", "delete_insert")
#: a swap asks for the parent's ACCESS EXCLUSIVE lock in attempts this long: a reader
#: arriving meanwhile queues behind the request for at most this (plus the swap itself)
SWAP_LOCK_ATTEMPT_MS = 200


@dataclass
class StageResult:
    """What ``stage()`` did; JSON-serialisable, so it can travel through XCom."""

    target: str
    partition_value: str
    staging_table: str
    run_key: str
    source: str
    rows_source: int
    rows_loaded: int
    rows_quarantined: int
    checksum: str
    add_columns: list[list[str]] = field(default_factory=list)
    path: str = "copy"  # 'copy' (straight COPY) or 'checked' (row by row, with quarantine)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageResult:
        return cls(**d)


@dataclass
class PublishResult:
    target: str
    partition_value: str
    rows: int
    rows_replaced: int
    rows_quarantined: int
    rows_source: int
    checksum: str
    history_id: int
    added_columns: list[str]
    seconds: float
    #: how the partition was replaced: ``swap`` or ``delete_insert`` (what ``auto`` chose)
    published_by: str = "delete_insert"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PartitionLoader:
    """Loads one partition of one PostgreSQL table, idempotently.

    :param connect: returns a new psycopg connection to the warehouse
    :param table: the target, ``schema.table`` or ``table``
    :param partition_column: the column whose value names the partition
    :param partition_value: e.g. ``"2024-05-01"`` (the logical date)
    :param run_key: names this load (Airflow: dag, run and task); a retry of the same
        run reuses and replaces its staging table
    :param lock_timeout: bound on every lock wait, e.g. ``"30s"``; past it the load fails
        with a retryable :class:`LockTimeoutError` and nothing changes
    :param max_bad_rows: quarantined rows above this refuse the load (None: no limit)
    :param max_bad_fraction: quarantined fraction of source rows above this refuses it
    :param allow_empty: accept a source with no rows (publishing an empty partition)
    :param add_columns: ``[(name, type)]`` to add to the target on publish (schema evolution)
    :param audit: dag_id, run_id, task_id, try_number for the load history
    :param stale_staging_after: staging left by other runs of the same partition longer
        ago than this is dropped by the next stage (a crashed or abandoned run)
    :param publish_strategy: ``auto`` (default), ``swap`` or ``delete_insert``. ``swap``
        makes the staging table the partition (DETACH old, ATTACH staging): the rows are
        written once, at the price of a brief ACCESS EXCLUSIVE lock on the parent, taken
        in short attempts so that readers wait at most one attempt. ``delete_insert``
        DELETEs the partition and INSERTs it from staging: rows written twice, no reader
        ever blocked. ``auto`` swaps when the target is natively partitioned and a swap is
        safe there (:meth:`swap_blocker`), and falls back to ``delete_insert`` when it is
        not, or when the parent stays busy for the whole ``lock_timeout``. See
        docs/decisions/002.
    """

    #: Publishes of one partition serialise on an advisory lock. Only the test that shows
    #: why (tests/integration/loads) turns this off.
    _serialise_publish = True

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        *,
        table: str,
        partition_column: str,
        partition_value: str,
        run_key: str,
        lock_timeout: str = "30s",
        max_bad_rows: int | None = 0,
        max_bad_fraction: float | None = None,
        allow_empty: bool = False,
        add_columns: list[tuple[str, str]] | None = None,
        audit: dict[str, Any] | None = None,
        stale_staging_after: str = "12 hours",
        publish_strategy: str = "auto",
    ):
        self.connect = connect
        self.table = table
        self.partition_column = validate_identifier(partition_column, "partition column")
        self.partition_value = str(partition_value)
        self.run_key = run_key
        self.lock_timeout = lock_timeout
        self.max_bad_rows = max_bad_rows
        self.max_bad_fraction = max_bad_fraction
        self.allow_empty = allow_empty
        self.add_columns = [(validate_identifier(n, "column"), str(parse_type(t))) for n, t in (add_columns or [])]
        self.audit = audit or {}
        self.stale_staging_after = stale_staging_after
        if publish_strategy not in PUBLISH_STRATEGIES:
            raise ValueError(f"publish_strategy {publish_strategy!r}: use one of {', '.join(PUBLISH_STRATEGIES)}")
        self.publish_strategy = publish_strategy
        self._started = time.time()

    def connection(self) -> psycopg.Connection:
        """A new connection to the warehouse, in autocommit: each ``conn.transaction()`` of a
        step is then a real transaction (committed or rolled back at its end), not a
        savepoint of an implicit one."""
        conn = self.connect()
        conn.autocommit = True
        return conn

    # ------------------------------------------------------------------ stage
    @explain_privileges  # "permission denied" becomes the missing GRANTs (docs/security.md)
    def stage(self, source: str | Path | Source, fmt: str | None = None) -> StageResult:
        """Stream ``source`` (a file, or a :class:`QuerySource`) into a new staging table;
        see the module docstring."""
        t0 = time.time()
        if isinstance(source, (str, os.PathLike)):
            source = FileSource(os.fspath(source), fmt)
        label = str(source)  # what the history and quarantine call it (a query's has no password)
        with self.connection() as conn:
            ensure_metadata(conn)
            info = self._target(conn)
            self._check_partition_column(info)
            self._check_partition_value(conn, info)
            source.open()  # closed in the finally below
            quarantine = _Quarantine()
            try:
                header = source.columns()
                mapping = self._map_columns(info, header, label)
                name = q.staging_name(info.name, self.partition_value, self.run_key)
                self._drop_stale(conn, info, name)
                with conn.transaction():
                    q.set_lock_timeout(conn, self.lock_timeout)
                    swap = self._create_staging(conn, info, name, header, mapping)
                    path, rows_source, rows_loaded = self._fill(conn, info, name, source, header, mapping, quarantine)
                    bad = quarantine.count
                    if rows_source != rows_loaded + bad:  # the invariant every load keeps
                        raise AssertionError(f"row accounting broke: {rows_source} != {rows_loaded} + {bad}")
                    self._check_thresholds(label, rows_source, bad, quarantine)
                    # the types as the catalogue prints them, as partition_checksum() reads the target's
                    types = _staged_columns(conn, name)
                    cols = [(c, types[c]) for c in [c.name for c in info.columns] + [n for n, _ in self.add_columns]]
                    n, checksum = conn.execute(q.checksum_sql(q.staging_ident(name), cols)).fetchone()
                    if n != rows_loaded:
                        raise AssertionError(f"staging holds {n} rows, COPY reported {rows_loaded}")
                    if swap:
                        self._prepare_partition(conn, info, name)
                    conn.execute(
                        """insert into safeload.staging (staging_table, target, partition_value, run_key,
                               rows_loaded, rows_quarantined, rows_source, checksum, source, add_columns)
                           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                        (name, info.name, self.partition_value, self.run_key, rows_loaded, bad, rows_source,
                         checksum, label, json.dumps(self.add_columns)),
                    )
                    self._save_quarantine(conn, info, label, quarantine)
            except LoadRefusedError as e:
                # the staging is rolled back; keep the evidence: quarantined rows and a history row
                with conn.transaction():
                    self._save_quarantine(conn, info, label, quarantine)
                    self._history(conn, info, "refused", source=label, rows_quarantined=quarantine.count,
                                  message=str(e))
                raise
            except psycopg.errors.LockNotAvailable as e:
                raise LockTimeoutError(f"{info.name}: could not lock within lock_timeout={self.lock_timeout} "
                                       f"({e.diag.message_primary}); retry later") from None
            finally:
                quarantine.close()
                source.close()
        result = StageResult(info.name, self.partition_value, name, self.run_key, label, rows_source,
                             rows_loaded, bad, checksum, [list(c) for c in self.add_columns], path,
                             round(time.time() - t0, 3))
        log.info("staged %s rows of %s into %s.%s (%s quarantined, %s path)", rows_loaded, source,
                 STAGING_SCHEMA, name, bad, path)
        return result

    def _check_partition_value(self, conn: psycopg.Connection, info: q.TargetInfo) -> None:
        """Refuse a partition value the partition column cannot hold, before it reaches any SQL."""
        col_type = info.column(self.partition_column).type
        try:
            with conn.transaction():
                conn.execute(sql.SQL("select {}::{}").format(sql.Literal(self.partition_value), sql.SQL(col_type)))
        except psycopg.DataError as e:
            reason = e.diag.message_primary if e.diag and e.diag.message_primary else str(e)
            raise LoadRefusedError(f"partition value {self.partition_value!r} is not a {col_type} ({reason}), "
                                   f"which {info.name}.{self.partition_column} holds; pass a valid partition "
                                   "value") from None

    def _check_partition_column(self, info: q.TargetInfo) -> None:
        if info.column(self.partition_column) is None:
            raise LoadRefusedError(f"{info.name} has no column {self.partition_column!r}; "
                                   "set partition_column to one of " + ", ".join(c.name for c in info.columns))
        if info.partitioned and info.partition_key != self.partition_column:
            raise LoadRefusedError(f"{info.name} is partitioned by {info.partition_key!r}, not "
                                   f"{self.partition_column!r}; use partition_column={info.partition_key!r}")

    def _map_columns(self, info: q.TargetInfo, header: list[str], source: str) -> dict[str, str | None]:
        """source column -> target column (None: not in the target, staged and ignored)."""
        by_norm = {normalise(c.name): c.name for c in info.columns}
        by_norm.update({normalise(n): n for n, _ in self.add_columns})
        exact = {c.name for c in info.columns} | {n for n, _ in self.add_columns}
        # an exact name first: a table may have both "orders" and "Orders"
        mapping = {h: h if h in exact else by_norm.get(normalise(h)) for h in header}
        targets = [t if t is not None else _extra(h) for h, t in mapping.items()]
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
                   if c.not_null and not c.has_default and c.name not in present and c.name != self.partition_column]
        if missing:
            raise LoadRefusedError(f"{source} has no column {missing[0]!r}, which {info.name} requires (NOT NULL); "
                                   "fix the source or check its contract")
        return mapping

    def _drop_stale(self, conn: psycopg.Connection, info: q.TargetInfo, name: str) -> None:
        """Drop this run's previous staging (a retry) and other runs' stale staging."""
        rows = conn.execute(
            """select staging_table from safeload.staging
               where target = %s and partition_value = %s
                 and (staging_table = %s or created_at < now() - %s::interval)""",
            (info.name, self.partition_value, name, self.stale_staging_after),
        ).fetchall()
        rows.append((name,))  # an orphan without a registry row cannot exist, but be sure
        with conn.transaction():
            q.set_lock_timeout(conn, self.lock_timeout)
            for (stale,) in rows:
                conn.execute(sql.SQL("drop table if exists {}").format(q.staging_ident(stale)))
                conn.execute("delete from safeload.staging where staging_table = %s", (stale,))

    def _target(self, conn: psycopg.Connection) -> q.TargetInfo:
        info = q.target_info(conn, self.table)
        if info.schema in (METADATA_SCHEMA, STAGING_SCHEMA):
            raise LoadRefusedError(f"{info.name}: schema {info.schema} holds safeload's own tables (load history, "
                                   "staging, quarantine) and is never a load target; load into another schema")
        return info

    def swap_blocker(self, conn: psycopg.Connection, info: q.TargetInfo, *, partition: bool = True,
                     old: Any = LOOK_UP) -> tuple[bool, str] | None:
        """Why ``auto`` will not swap this partition: ``(unsafe, reason)``, None when it will
        (:func:`safeload.loads.partitions.swap_blocker`)."""
        return swap_blocker(conn, info, self.partition_value, partition=partition, old=old)

    def _plans_swap(self, conn: psycopg.Connection, info: q.TargetInfo, *, partition: bool = False,
                    old: Any = LOOK_UP) -> bool:
        """Whether this load swaps: planned when staging is created (the table's traits),
        confirmed under the publish's advisory lock (``partition=True``: the value's
        partition ``old`` too)."""
        if self.publish_strategy == "delete_insert" or not info.partitioned:
            return False
        blocker = self.swap_blocker(conn, info, partition=partition, old=old)
        if blocker is None:
            return True
        unsafe, why = blocker
        if self.publish_strategy == "swap":
            if unsafe:
                raise LoadRefusedError(f"{info.name} partition {self.partition_value}: publish_strategy='swap' "
                                       f"cannot be used: {why}. Use publish_strategy='auto' or 'delete_insert'")
            return True  # slower or needs grants, but what was asked for
        log.info("%s partition %s: publishing by DELETE + INSERT, not by swap: %s", info.name,
                 self.partition_value, why)
        return False

    def _create_staging(self, conn, info, name, header, mapping) -> bool:
        """Create the staging table; True when it is staged for a swap."""
        ident = q.staging_ident(name)
        swap = self._plans_swap(conn, info)
        # Built from the catalogue, not with LIKE: LIKE would keep a lock on the target for
        # the whole COPY (see q.create_like). For a swap it becomes the partition itself:
        # permanent (ATTACH requires the parent's persistence); otherwise it is only read
        # once by INSERT ... SELECT: UNLOGGED skips the WAL. Either way with the target's
        # CHECK constraints (ATTACH needs them; and a row that breaks one is refused at the
        # stage, where its line is known, not by the publish's INSERT)
        try:
            q.create_like(conn, q.regclass(info.schema, info.table), ident, unlogged=not swap, constraints=True)
        except psycopg.errors.InsufficientPrivilege as e:
            # a type, collation or function of the target in a schema the role may not use:
            # LIKE copies them by OID and needs no such grant, at the price of the lock
            log.warning("%s: staging created with LIKE, which keeps ACCESS SHARE on the target for the whole COPY "
                        "(other partitions' swaps and DDL wait for it), because %s; GRANT USAGE on that schema "
                        "to the loader's role lifts this", info.name, e.diag.message_primary)
            conn.execute(sql.SQL("create {}table {} (like {} including defaults including generated "
                                 "including constraints)").format(sql.SQL("" if swap else "unlogged "), ident,
                                                                  info.ident))
        for col, pg_type in self.add_columns:
            conn.execute(sql.SQL("alter table {} add column if not exists {} {}").format(
                ident, sql.Identifier(col), sql.SQL(pg_type)))
        for h in header:
            if mapping[h] is None:  # a column the target does not have: staged as text, not published
                conn.execute(sql.SQL("alter table {} add column {} text").format(ident, sql.Identifier(_extra(h))))
        part = info.column(self.partition_column)
        if self.partition_column not in mapping.values() and not (part and part.generated):
            conn.execute(sql.SQL("alter table {} alter column {} set default {}").format(
                ident, sql.Identifier(self.partition_column), sql.Literal(self.partition_value)))
        # Rows of another partition fail the COPY (and are quarantined by the checked path)
        # without a scan of their own; the constraint also lets ATTACH skip its scan. "is not
        # null": a CHECK admits NULL, which would be published outside the partition (and
        # again by every re-run), and ATTACH proves its bound only from a constraint that
        # excludes NULL (else it scans staging under the parent's lock).
        conn.execute(sql.SQL("alter table {} add constraint {} check ({} is not null and {} = {})")
                     .format(ident, sql.Identifier(q.PARTITION_CHECK), sql.Identifier(self.partition_column),
                             sql.Identifier(self.partition_column),
                             sql.Literal(self.partition_value)))
        return swap

    def _prepare_partition(self, conn: psycopg.Connection, info: q.TargetInfo, name: str) -> None:
        """Give staging that will become the partition its indexes and statistics now.

        The parent's unique and plain indexes must exist on the partition anyway; built at
        the stage, they also serve the audit (the quality gate proves uniqueness from a
        unique index instead of sorting the column), and the partition is published with
        planner statistics. Duplicate keys leave staging without its indexes: the gate's
        uniqueness checks report them, and publish refuses to attach them.
        """
        try:
            with conn.transaction():  # a savepoint: a failed index build keeps the staged rows
                self._build_indexes(conn, info, name)
        except psycopg.errors.IntegrityError as e:
            log.warning("%s partition %s: staging has duplicate keys (%s); the partition cannot be published "
                        "until the source is fixed", info.name, self.partition_value,
                        e.diag.message_detail or e.diag.message_primary)
        conn.execute(sql.SQL("analyze {}").format(q.staging_ident(name)))

    def _fill(self, conn, info, name, source: Source, header, mapping, quarantine) -> tuple[str, int, int]:
        """COPY the source into staging. Returns (path, rows in source, rows loaded)."""
        cols = [mapping[h] or _extra(h) for h in header]
        copy_sql = sql.SQL("copy {} ({}) from stdin").format(
            q.staging_ident(name), sql.SQL(", ").join(sql.Identifier(c) for c in cols))
        # Fast path: the source's bytes (a CSV file's, or the source server's COPY text) go
        # straight to COPY. Clean sources (the usual case) load at COPY speed; a value the
        # target refuses falls back to the checked path below (a query: the same snapshot).
        straight = source.straight()
        if straight is not None:
            copied = self._copy_straight(conn, copy_sql + straight.options, straight.blocks, info.name,
                                         straight.empty, straight.empty_name, straight.what)
            if copied:
                return copied
        return self._fill_checked(conn, info, copy_sql, source, header, mapping, quarantine)

    def _copy_straight(self, conn, copy_sql, blocks, target, empty_what, empty_name,
                       what) -> tuple[str, int, int] | None:
        """One COPY of ``blocks`` in a savepoint; None when the target refused a value. A
        broken CHECK constraint goes to the checked path too: there another partition's row
        (which PostgreSQL may meet the target's CHECK on first) is quarantined, and a row
        breaking the target's CHECK is named by the line Python's CSV reader counts (COPY
        counts lines differently in CRLF files with line feeds in quoted fields)."""
        try:
            with conn.transaction():
                cur = conn.cursor()
                try:
                    with cur.copy(copy_sql) as copy:
                        for block in blocks:
                            copy.write(block)
                finally:
                    blocks.close()  # stop reading the source now, not when garbage-collected
                rows = cur.rowcount  # from COPY's command tag: no scan
                if rows == 0 and not self.allow_empty:
                    raise LoadRefusedError(f"{empty_what}: refusing to replace partition "
                                           f"{self.partition_value} of {target} with nothing "
                                           f"(allow_empty=True accepts {empty_name})")
                return "copy", rows, rows
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError, psycopg.errors.BadCopyFileFormat,
                psycopg.errors.CharacterNotInRepertoire) as e:
            log.info("%s refused (%s); loading row by row with quarantine", what, str(e).splitlines()[0])
            return None

    def _check_refusal(self, e: psycopg.errors.CheckViolation, target: str,
                       where: Callable[[int], str]) -> LoadRefusedError:
        """A row that breaks one of the target's CHECK constraints, as a clear refusal: the
        source's line (COPY's line n, mapped by ``where``), the constraint and its rule. Such
        a row is not quarantined: the checked path checks types and NOT NULL in Python, and
        a CHECK constraint is an expression only PostgreSQL evaluates."""
        m = re.search(r"\bline (\d+)", e.diag.context or "")
        place = where(int(m.group(1))) if m else "a row of the source"
        detail = f" ({e.diag.message_detail})" if e.diag.message_detail else ""
        if e.diag.constraint_name == q.PARTITION_CHECK:  # safeload's own: the value is not the partition's
            return LoadRefusedError(
                f"{place}: its {self.partition_column} is not {self.partition_value!r} as PostgreSQL compares it"
                f"{detail}, though it looked so to the row check (spaces or spelling); nothing was staged and "
                f"{target} is unchanged. Fix the value at the source")
        return LoadRefusedError(
            f"{place} breaks CHECK constraint {e.diag.constraint_name!r} of {target}{detail}; nothing was staged and "
            f"{target} partition {self.partition_value} is unchanged. Fix the row at the source (safeload quarantines "
            "rows whose values do not fit the target's types or NOT NULL, but does not evaluate its CHECK "
            "constraints row by row), or relax the constraint")

    def _fill_checked(self, conn, info, copy_sql, source: Source, header, mapping, quarantine) -> tuple[str, int, int]:
        """Row by row: check each value against the target's types; bad rows to quarantine."""
        types: list[PgType | None] = []
        not_null: list[bool] = []
        part_idx = None
        for i, h in enumerate(header):
            col = info.column(mapping[h]) if mapping[h] else None
            types.append(_try_type(col.type) if col else None)
            not_null.append(bool(col and col.not_null))
            if mapping[h] == self.partition_column:
                part_idx = i
        width = len(header)
        empty_is_null = source.empty_is_null
        # COPY's line n is the n-th row written; which source line that is, as runs of
        # consecutive lines (one run per gap left by a quarantined row or a multi-line record)
        runs: list[tuple[int, int]] = []

        def source_line(n: int) -> str:
            start, first = max((r for r in runs if r[0] <= n), default=(n, n))
            return f"{source}, {source.place} {first + n - start}"

        rows_source = rows_loaded = 0
        last = None
        try:
            with conn.cursor().copy(copy_sql) as copy:
                for line, values, raw in source.rows(header):
                    rows_source += 1
                    reason = None
                    if len(values) != width:
                        reason = f"has {len(values)} fields, the header has {width}"
                    else:
                        for i, v in enumerate(values):
                            if v is None or (v == "" and empty_is_null):
                                if not_null[i]:
                                    reason = (f"column {header[i]!r} is empty, but "
                                              f"{info.name}.{mapping[header[i]]} is NOT NULL")
                                    break
                                values[i] = None
                                continue
                            t = types[i]
                            if t is not None:
                                r = check_value(v, t)
                                if r is not None:
                                    reason = f"column {header[i]!r}: {r}"
                                    break
                            elif "\x00" in v:
                                reason = f"column {header[i]!r}: NUL byte in text"
                                break
                        if reason is None and part_idx is not None and values[part_idx] is None:
                            reason = (f"column {header[part_idx]!r} is empty: the row belongs to no partition "
                                      f"(loading partition {self.partition_value})")
                        elif reason is None and part_idx is not None \
                                and not _same_partition(values[part_idx], self.partition_value, types[part_idx]):
                            reason = (f"column {header[part_idx]!r} is {values[part_idx]!r}: the row belongs to another "
                                      f"partition than {self.partition_value}")
                    if reason is None:
                        copy.write_row(values)
                        rows_loaded += 1
                        if last is None or line != last + 1:
                            runs.append((rows_loaded, line))
                        last = line
                    else:
                        quarantine.add(line, raw, reason)
        except psycopg.errors.CheckViolation as e:
            raise self._check_refusal(e, info.name, source_line) from None
        if rows_source == 0 and not self.allow_empty:
            raise LoadRefusedError(f"{source} has no rows: refusing to replace partition {self.partition_value} "
                                   f"of {info.name} with nothing (allow_empty=True accepts an empty delivery)")
        return "checked", rows_source, rows_loaded

    def _check_thresholds(self, source: str, rows_source: int, bad: int, quarantine: _Quarantine) -> None:
        if not bad:
            return
        over = []
        if self.max_bad_rows is not None and bad > self.max_bad_rows:
            over.append(f"more than max_bad_rows={self.max_bad_rows}")
        if self.max_bad_fraction is not None and rows_source and bad / rows_source > self.max_bad_fraction:
            over.append(f"{bad / rows_source:.2%} of rows, more than max_bad_fraction={self.max_bad_fraction:.2%}")
        if bad == rows_source and not self.allow_empty:
            # no threshold may turn "every row is bad" into an empty partition: that is what
            # allow_empty is for (found by tests/reliability/test_fuzz_csv.py)
            over.append("every row, leaving nothing to publish (allow_empty=True accepts an empty partition)")
        if over:
            examples = "; ".join(f"line {ln}: {reason}" for ln, reason in quarantine.examples)
            raise LoadRefusedError(
                f"{source}: {bad} of {rows_source} row(s) are malformed ({' and '.join(over)}), so partition "
                f"{self.partition_value} was not replaced. First: {examples}. All are in safeload.quarantine "
                f"(run_key {self.run_key!r}); fix the source, or raise the threshold if they are expected"
            )

    def _save_quarantine(self, conn, info, source, quarantine: _Quarantine) -> None:
        if not quarantine.count or quarantine.saved:
            return
        with conn.cursor().copy(
            "copy safeload.quarantine (target, partition_value, run_key, source, line, raw, reason) from stdin"
        ) as copy:
            for line, raw, reason in quarantine.rows():
                copy.write_row((info.name, self.partition_value, self.run_key, source, line, raw, reason))
        quarantine.saved = True

    # ---------------------------------------------------------------- publish
    @explain_privileges
    def publish(self, staged: StageResult) -> PublishResult:
        """Replace the partition with the staging table's rows, atomically."""
        t0 = time.time()
        with self.connection() as conn:
            info = self._target(conn)
            # the target may have been re-created since the stage: never publish into a
            # table partitioned by another column (a swap would drop that column's partition)
            self._check_partition_column(info)
            # staged for a swap (a permanent table); whether it still swaps is decided
            # under the publish's advisory lock, where the partition cannot change
            staged_swap = info.partitioned and self.publish_strategy != "delete_insert" and \
                _persistence(conn, staged.staging_table) == "p"
            try:
                if staged_swap:
                    # Normally built by the stage; a staging table without them (its keys
                    # were duplicated) fails here, before any lock on the target is taken.
                    self._build_indexes(conn, info, staged.staging_table)
                elif info.partitioned:
                    # the re-checks below first (again under the lock), so that a refused
                    # publish does not leave the new, empty partition behind
                    if conn.execute("select to_regclass(%s)", (q.regclass(STAGING_SCHEMA, staged.staging_table),)
                                    ).fetchone()[0] is not None:
                        evolved = {c[0] for c in staged.add_columns}  # added to the target by this publish
                        self._check_staged_columns(info, {c: t for c, t in _staged_columns(
                            conn, staged.staging_table).items() if c not in evolved})
                    ensure_partition(conn, info, self.partition_value, self.lock_timeout)
                with conn.transaction():
                    q.set_lock_timeout(conn, self.lock_timeout)
                    if self._serialise_publish:
                        lock_partition(conn, info, self.partition_value)
                    reg = conn.execute(
                        "select rows_loaded, rows_quarantined, rows_source, checksum, add_columns, source "
                        "from safeload.staging where staging_table = %s for update",
                        (staged.staging_table,),
                    ).fetchone()
                    if reg is None:
                        raise LoadRefusedError(
                            f"staging table {STAGING_SCHEMA}.{staged.staging_table} for {info.name} partition "
                            f"{self.partition_value} is gone (already published by an earlier try, or dropped as "
                            "stale); stage the partition again")
                    rows_loaded, rows_quarantined, rows_source, checksum, add_columns, source = reg
                    stg = q.staging_ident(staged.staging_table)
                    added = []
                    for col, pg_type in add_columns:
                        if info.column(col) is None:
                            conn.execute(sql.SQL("alter table {} add column if not exists {} {}").format(
                                info.ident, sql.Identifier(col), sql.SQL(str(parse_type(pg_type)))))
                            added.append(col)
                    # The target's columns now: DDL may have changed them since the stage
                    # (another day's load adding a column, as evolve does, runs meanwhile).
                    now = self._target(conn)
                    self._check_partition_column(now)
                    staged_cols = _staged_columns(conn, staged.staging_table)
                    self._check_staged_columns(now, staged_cols)
                    # the value's partition, looked up once under the lock for both
                    old = partition_for(conn, info, self.partition_value) if staged_swap else None
                    swapped = staged_swap and self._same_columns(conn, now, staged.staging_table, staged_cols) and \
                        self._plans_swap(conn, info, partition=True, old=old) and \
                        self._swap(conn, info, staged.staging_table, rows_loaded, old)
                    if swapped:
                        replaced, inserted = swapped
                    else:
                        if staged_swap:
                            ensure_partition(conn, info, self.partition_value, self.lock_timeout)
                        # the staged columns (all in the target, checked above); a column
                        # added to the target since the stage gets its default
                        # (generated columns are computed by the target; identity values are
                        # the staged ones, which GENERATED ALWAYS takes only when told to)
                        written = [c for c in now.written if c.name in staged_cols]
                        cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in written)
                        overriding = any(c.identity == "a" for c in written)
                        replaced = conn.execute(sql.SQL("delete from {} where {}").format(
                            info.ident, q.partition_where(self.partition_column, self.partition_value))).rowcount
                        inserted = conn.execute(sql.SQL("insert into {} ({}){} select {} from {}").format(
                            info.ident, cols, sql.SQL(" overriding system value" if overriding else ""), cols,
                            stg)).rowcount
                    if inserted != rows_loaded:  # staging was modified after the audit: publish nothing
                        raise LoadRefusedError(f"{STAGING_SCHEMA}.{staged.staging_table} holds {inserted} rows but "
                                               f"{rows_loaded} were staged and audited; stage the partition again")
                    history_id = self._history(
                        conn, info, "published", source=source, rows_loaded=inserted,
                        rows_quarantined=rows_quarantined, rows_source=rows_source, checksum=checksum,
                        schema_changes=json.dumps([{"added": c} for c in added]) if added else None,
                        message=f"replaced {replaced} row(s) by {'swap' if swapped else 'DELETE + INSERT'}")
                    if not swapped:
                        conn.execute(sql.SQL("drop table {}").format(stg))
                    conn.execute("delete from safeload.staging where staging_table = %s", (staged.staging_table,))
            except psycopg.errors.UniqueViolation as e:
                raise LoadRefusedError(
                    f"{info.name} partition {self.partition_value}: the staged rows break a unique key of the "
                    f"target ({e.diag.message_detail or e.diag.message_primary}); nothing was published and the "
                    "partition is unchanged. Fix the source, or add expect_column_values_to_be_unique (or "
                    "expect_compound_columns_to_be_unique) on the key to the gate so it fails before the publish"
                ) from None
            except (psycopg.errors.CheckViolation, psycopg.errors.NotNullViolation) as e:
                detail = e.diag.message_detail or e.diag.message_primary
                if isinstance(e, psycopg.errors.CheckViolation) and not e.diag.constraint_name:
                    # PostgreSQL's "no partition of relation ... found for row" (a sub-partitioned day)
                    raise LoadRefusedError(
                        f"{info.name} partition {self.partition_value}: a staged row has no partition to go to "
                        f"({e.diag.message_primary}; {detail}); nothing was published and the partition is "
                        "unchanged. Create the missing sub-partition (or a DEFAULT one), then publish again") from None
                what = (f"CHECK constraint {e.diag.constraint_name!r}" if isinstance(e, psycopg.errors.CheckViolation)
                        else f"NOT NULL of column {e.diag.column_name!r}")
                # the stage checked the target's CHECKs as they were: one added since, or one
                # of the day's partition itself (staging carries the target's only)
                raise LoadRefusedError(
                    f"{info.name} partition {self.partition_value}: a staged row breaks {what} of the target or of "
                    f"its partition for this value ({detail}); nothing was published and the partition is unchanged. "
                    "If it was added after the stage, stage the partition again (the stage names the source's "
                    "line); if it is the partition's own, fix the source or the constraint") from None
            except psycopg.errors.LockNotAvailable as e:
                raise LockTimeoutError(
                    f"{info.name} partition {self.partition_value}: a lock could not be had within "
                    f"lock_timeout={self.lock_timeout} ({e.diag.message_primary}); the partition is unchanged. "
                    "A long-running reader or another load holds it; retry later") from None
        result = PublishResult(info.name, self.partition_value, inserted, replaced, rows_quarantined, rows_source,
                               checksum, history_id, added, round(time.time() - t0, 3),
                               published_by="swap" if swapped else "delete_insert")
        log.info("published %s partition %s: %s rows (replaced %s, by %s)", info.name, self.partition_value, inserted,
                 replaced, result.published_by)
        return result

    def _check_staged_columns(self, now: q.TargetInfo, staged_cols: dict[str, str]) -> None:
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
                f"{now.name} partition {self.partition_value}: the target's columns changed since the stage ({what}); "
                "publishing the staged rows would lose or alter audited values, so nothing was published and the "
                "partition is unchanged. Stage the partition again against the table as it is now")

    def _same_columns(self, conn: psycopg.Connection, now: q.TargetInfo, staging: str,
                      staged_cols: dict[str, str]) -> bool:
        """Whether staging is the parent as it is now, as far as a swapped-in partition
        keeps it: exactly the parent's columns (its source-only ``_extra_`` columns aside;
        ATTACH requires them), the same generation expressions, and no CHECK constraint or
        NOT NULL the parent has dropped since the stage (ATTACH accepts both: the day would
        compute stale values, or refuse rows every other day accepts). Otherwise ``auto``
        publishes by DELETE + INSERT, ``swap`` refuses."""
        added = sorted(c.name for c in now.columns if c.name not in staged_cols)
        if added:
            self._no_swap(now, f"the target's columns changed since the stage (added: {', '.join(added)})")
            return False
        differ = conn.execute(
            """
            with cols as (select a.attrelid, a.attname, a.attnotnull, a.attgenerated::text as gen,
                                 case when a.attgenerated <> '' then pg_get_expr(d.adbin, d.adrelid) end as expr
                          from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
                          where a.attrelid in (%(t)s::regclass, %(s)s::regclass) and a.attnum > 0
                            and not a.attisdropped),
                 t as (select * from cols where attrelid = %(t)s::regclass),
                 s as (select * from cols where attrelid = %(s)s::regclass)
            select 'the generation expression of ' || s.attname from s join t using (attname)
             where (s.gen, s.expr) is distinct from (t.gen, t.expr)
            union all
            select 'NOT NULL of ' || s.attname from s join t using (attname) where s.attnotnull and not t.attnotnull
            union all
            select 'CHECK constraint ' || c.conname from pg_constraint c
             where c.conrelid = %(s)s::regclass and c.contype = 'c' and c.conname <> %(pin)s
               and not exists (select 1 from pg_constraint p where p.conrelid = %(t)s::regclass
                               and p.contype = 'c' and p.conname = c.conname)
            """,
            {"t": q.regclass(now.schema, now.table), "s": q.regclass(STAGING_SCHEMA, staging),
             "pin": q.PARTITION_CHECK}).fetchall()
        if differ:
            self._no_swap(now, "the target changed since the stage (" + ", ".join(sorted(r[0] for r in differ)) +
                          " differ: a partition keeps what it was attached with)")
            return False
        return True

    def _no_swap(self, now: q.TargetInfo, why: str) -> None:
        """A swap found impossible at publish: ``swap`` refuses (nothing published), ``auto``
        logs why and publishes by DELETE + INSERT."""
        if self.publish_strategy == "swap":
            raise LoadRefusedError(f"{now.name} partition {self.partition_value}: cannot swap the staged table in: "
                                   f"{why}; nothing was published. Stage the partition again, or publish it with "
                                   "publish_strategy='auto' (DELETE + INSERT of the staged columns)")
        log.info("%s partition %s: publishing by DELETE + INSERT, not by swap: %s", now.name,
                 self.partition_value, why)

    def _swap(self, conn: psycopg.Connection, info: q.TargetInfo, staging: str,
              rows_loaded: int, old: str | None) -> tuple[int, int] | None:
        """Make the staging table the partition: DETACH and DROP the old one, ATTACH staging.

        Metadata only: no row is copied. The staging table's CHECK constraint
        (``partition = value``) implies the partition bound, so ATTACH skips its scan.
        ``old`` is the value's current partition (None: none yet), looked up by the caller
        under the publish's advisory lock. Returns (rows replaced, rows published), or None
        when ``auto`` could not lock the parent within ``lock_timeout`` (the caller then
        publishes by DELETE + INSERT).
        """
        stg = q.staging_ident(staging)
        extras = [r[0] for r in conn.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped "
            "and attname like '\\_extra\\_%%'", (q.regclass(STAGING_SCHEMA, staging),)).fetchall()]
        for col in extras:  # source columns the target does not have: ATTACH wants exactly the parent's
            conn.execute(sql.SQL("alter table {} drop column {}").format(stg, sql.Identifier(col)))
        replaced = 0
        name = free_partition_name(conn, info, self.partition_value)
        old_ident = None
        if old is not None:
            old_schema, old_name = conn.execute(
                "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where c.oid = %s::regclass", (old,)).fetchone()
            old_ident = sql.Identifier(old_schema, old_name)
            replaced = conn.execute(sql.SQL("select count(*) from {}").format(old_ident)).fetchone()[0]
            if not self._lock_for_swap(conn, info, old_ident):
                return None
            name = old_name if old_schema == info.schema else name
        try:
            # A savepoint (the locks above stay with the transaction): when ATTACH refuses
            # staging, the DETACH and DROP are undone and the old partition is back.
            with conn.transaction():
                if old_ident is not None:
                    conn.execute(sql.SQL("alter table {} detach partition {}").format(info.ident, old_ident))
                    conn.execute(sql.SQL("drop table {}").format(old_ident))
                conn.execute(sql.SQL("alter table {} attach partition {} {}").format(
                    info.ident, stg, q.partition_bounds(info, self.partition_value)))
        except (psycopg.errors.DatatypeMismatch, psycopg.errors.CollationMismatch,
                psycopg.errors.InvalidTableDefinition, psycopg.errors.InvalidObjectDefinition) as e:
            # DDL on the parent since the stage that ATTACH checks and the column check does
            # not: a collation, a NOT NULL or a CHECK constraint added, a column added while
            # this publish waited for its lock
            self._no_swap(info, f"the target's definition changed since the stage ({e.diag.message_primary})")
            return None
        key = info.column(info.partition_key or "")
        if key is None or key.type not in ("timestamp without time zone", "timestamp with time zone"):
            # the partition's bound now says what the pin said: drop it (PostgreSQL 18 refuses
            # some DDL on tables with CHECK constraints). A timestamp day keeps it: the bound
            # admits the whole day, the pin only the value (see safeload.loads.partitions.bounds_one_value).
            conn.execute(sql.SQL("alter table {} drop constraint {}").format(stg, sql.Identifier(q.PARTITION_CHECK)))
        conn.execute(sql.SQL("alter table {} set schema {}").format(stg, sql.Identifier(info.schema)))
        conn.execute(sql.SQL("alter table {} rename to {}").format(
            sql.Identifier(info.schema, staging), sql.Identifier(name)))
        return replaced, rows_loaded

    def _lock_for_swap(self, conn: psycopg.Connection, info: q.TargetInfo, old: sql.Composable) -> bool:
        """ACCESS EXCLUSIVE on the parent and the old partition, asked for in short attempts.

        A lock request waits in a queue, and every reader arriving after it waits behind it:
        one request waiting out a long report for ``lock_timeout`` would stall all readers
        of the table for that long. So each attempt waits at most
        :data:`SWAP_LOCK_ATTEMPT_MS`, gives way (rolled back to a savepoint) and tries again
        after a growing pause, until ``lock_timeout`` is spent. True once held; False when
        ``auto`` gave up (``swap`` raises LockNotAvailable instead).
        """
        budget_ms = int(conn.execute("select setting from pg_settings where name = 'lock_timeout'").fetchone()[0])
        deadline = time.monotonic() + (budget_ms / 1000 if budget_ms else float("inf"))
        pause, attempts = 0.05, 0
        while True:
            attempts += 1
            wait_ms = SWAP_LOCK_ATTEMPT_MS if not budget_ms else \
                max(1, min(SWAP_LOCK_ATTEMPT_MS, int((deadline - time.monotonic()) * 1000)))
            try:
                with conn.transaction():  # a savepoint: a failed attempt leaves nothing behind
                    conn.execute("select set_config('lock_timeout', %s, true)", (f"{wait_ms}ms",))
                    conn.execute(sql.SQL("lock table only {}, only {} in access exclusive mode").format(
                        info.ident, old))
                break
            except psycopg.errors.LockNotAvailable:
                if time.monotonic() + pause >= deadline:
                    if self.publish_strategy == "auto":
                        log.warning("%s partition %s: the table stayed busy for lock_timeout=%s (%s attempts); "
                                    "publishing by DELETE + INSERT instead of swap", info.name,
                                    self.partition_value, self.lock_timeout, attempts)
                        return False
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
        q.set_lock_timeout(conn, self.lock_timeout)  # the attempt's setting outlives the savepoint
        if attempts > 1:
            log.info("%s partition %s: lock for the swap granted at attempt %s", info.name, self.partition_value,
                     attempts)
        return True

    def _build_indexes(self, conn: psycopg.Connection, info: q.TargetInfo, staging: str) -> None:
        """Give the staging table the parent's primary key, unique constraints and plain
        column indexes, so that ATTACH can adopt them instead of building them under lock.
        (Expression, partial, non-btree and INCLUDE indexes are left for ATTACH to build.)"""
        stg = q.staging_ident(staging)
        existing = conn.execute("select count(*) from pg_index where indrelid = %s::regclass",
                                (q.regclass(STAGING_SCHEMA, staging),)).fetchone()[0]
        if existing:
            return  # a retried publish: already built
        rows = conn.execute(
            """
            select coalesce(con.contype, 'i'),
                   array_agg(a.attname order by k.ord)
            from pg_index i
            cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
            join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
            left join pg_constraint con on con.conindid = i.indexrelid and con.contype in ('p', 'u')
            where i.indrelid = %s::regclass and i.indexprs is null and i.indpred is null
              -- btree only (built as btree below): a hash, GiST or GIN index as a btree may not
              -- build at all (no btree class, entries over 2704 bytes) and would not match
              and (select relam from pg_class where oid = i.indexrelid) = (select oid from pg_am where amname = 'btree')
              -- INCLUDE columns would become key columns here (NOT NULL in a primary key)
              and i.indnatts = i.indnkeyatts
            group by i.indexrelid, con.contype
            """,
            (q.regclass(info.schema, info.table),),
        ).fetchall()
        with conn.transaction():
            for k, (kind, cols) in enumerate(rows):
                collist = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
                # Named after the staging table (unique per target, partition and run; at
                # most 57 bytes): the swap moves them into the target's schema, where names
                # PostgreSQL chose (the staging name truncated to fit the columns' names)
                # would be the same for every partition of a long-named table
                idx = sql.Identifier(f"{staging}_i{k}")
                if kind == "p":
                    conn.execute(sql.SQL("alter table {} add constraint {} primary key ({})").format(stg, idx, collist))
                elif kind == "u":
                    conn.execute(sql.SQL("alter table {} add constraint {} unique ({})").format(stg, idx, collist))
                else:
                    conn.execute(sql.SQL("create index {} on {} ({})").format(idx, stg, collist))

    # ---------------------------------------------------------------- history
    def _history(self, conn, info, status, *, source=None, rows_loaded=None, rows_quarantined=None,
                 rows_source=None, checksum=None, schema_changes=None, message=None) -> int:
        a = self.audit
        return conn.execute(
            """insert into safeload.load_history (target, partition_value, status, rows_loaded, rows_quarantined,
                   rows_source, checksum, source, dag_id, run_id, task_id, try_number, started_at, published_at,
                   duration_s, schema_changes, message)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s),
                       case when %s = 'published' then now() end, %s, %s, %s)
               returning id""",
            (info.name, self.partition_value, status, rows_loaded, rows_quarantined, rows_source, checksum, source,
             a.get("dag_id"), a.get("run_id"), a.get("task_id"), a.get("try_number"), self._started, status,
             round(time.time() - self._started, 3), schema_changes, message),
        ).fetchone()[0]

    def run(self, source: str | Path, fmt: str | None = None,
            audit_hook: Callable[[StageResult], None] | None = None) -> PublishResult:
        """Stage, optionally audit (``audit_hook`` raises to stop), and publish."""
        staged = self.stage(source, fmt)
        if audit_hook is not None:
            audit_hook(staged)
        return self.publish(staged)


def _persistence(conn: psycopg.Connection, staging: str) -> str | None:
    row = conn.execute("select relpersistence from pg_class where oid = to_regclass(%s)",
                       (q.regclass(STAGING_SCHEMA, staging),)).fetchone()
    return row[0] if row else None


def _staged_columns(conn: psycopg.Connection, staging: str) -> dict[str, str]:
    """A staging table's columns and their types as ``format_type()`` prints them, in order."""
    return {c.name: c.type for c in q.target_info(conn, f"{STAGING_SCHEMA}.{staging}").columns}


def _extra(name: str) -> str:
    """Staging column name for a source column the target lacks (kept, never published)."""
    return "_extra_" + hashlib.sha1(name.encode()).hexdigest()[:12]


def _try_type(text: str) -> PgType | None:
    try:
        return parse_type(text)
    except ValueError:
        return None  # a type safeload does not check (PostgreSQL still does, on COPY)


def _same_partition(value: str, partition_value: str, t: PgType | None) -> bool:
    if t is not None and t.name == "date":
        import datetime as dt

        # as dates: the check accepts the ISO basic form (20240502) too, and so does PostgreSQL
        try:
            return dt.date.fromisoformat(value.strip()) == dt.date.fromisoformat(str(partition_value).strip()[:10])
        except ValueError:
            return value.strip()[:10] == str(partition_value)[:10]
    if t is not None and t.name in ("text", "varchar"):
        return value == str(partition_value)  # as PostgreSQL compares text: 'eu ' is not 'eu'
    return value.strip() == str(partition_value)


class _Quarantine:
    """Rejected rows, spooled to a temporary file so memory stays flat however many there are."""

    MAX_EXAMPLES = 5

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self.count = 0
        self.examples: list[tuple[int, str]] = []
        self.saved = False

    def add(self, line: int, raw: str, reason: str) -> None:
        self.count += 1
        if len(self.examples) < self.MAX_EXAMPLES:
            self.examples.append((line, reason))
        self._writer.writerow((line, raw.replace("\x00", "\\0"), reason))

    def rows(self) -> Iterator[tuple[int, str, str]]:
        self._file.flush()
        self._file.seek(0)
        for line, raw, reason in csv.reader(self._file):
            yield int(line), raw, reason

    def close(self) -> None:
        self._file.close()


__all__ = ["COPY_BLOCK", "PUBLISH_STRATEGIES", "PartitionLoader", "PublishResult", "QuerySource", "StageResult"]
