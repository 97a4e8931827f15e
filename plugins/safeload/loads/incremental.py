"""Incremental loads driven by a watermark: which partitions changed, and which must be reloaded.

An incremental load reads only the rows that changed since the last load, through a
column such as ``updated_at``. That finds the changed rows; it is not a safe way to
*write* them: appending or merging them makes the target's correctness depend on every
earlier run having happened exactly once, in order. So safeload uses the watermark only
to find the **business partitions** the changed rows belong to, and reloads each of
those partitions wholesale from the source through write-audit-publish
(:class:`~safeload.loads.loader.PartitionLoader`). A re-run, a backfill or an
overlapping window then cannot duplicate anything: a partition is replaced, never added to.

The window is derived from the run's data interval (see
docs/decisions/012-incremental-watermark.md): ``[start - lookback, end)``, where
``start`` reaches back to the end of the last successful run when runs were missed.
The lookback catches rows whose ``updated_at`` is older than the moment they became
visible (long transactions commit late; clocks and replicas lag).

A lookback makes consecutive windows overlap, so the same partition is found again by
the next run. Reloading it again would be harmless but wasteful, and would blur the
load history ("why was Monday republished three times?"). So each candidate partition
is fingerprinted on both sides (row count and the order-independent checksum of
docs/decisions/006, on the *target's* column types, in UTC) and reloaded only when the
source's differs from the published one. A late row changes the fingerprint, so its
partition is republished once; the next overlapping window finds it equal and skips it.

Pure psycopg: no Airflow import.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from psycopg import sql

from safeload.errors import SourceError
from safeload.identifiers import validate_identifier
from safeload.loads import sql as q

log = logging.getLogger(__name__)


def watermark_window(
    interval_start: dt.datetime,
    interval_end: dt.datetime,
    *,
    lookback: dt.timedelta,
    last_success_end: dt.datetime | None = None,
) -> tuple[dt.datetime, dt.datetime]:
    """The ``[low, high)`` range of ``updated_at`` that a run reads.

    :param interval_start: the run's data interval start
    :param interval_end: the run's data interval end (the high end, exclusive)
    :param lookback: how far before the start to read again, for rows that became
        visible late; must not be negative
    :param last_success_end: the data interval end of the last successful run, if any:
        when earlier runs were missed or failed, the window reaches back to it, so no
        row falls into a gap between windows

    .. code-block:: python

        watermark_window(datetime(2024, 5, 2), datetime(2024, 5, 3), lookback=timedelta(hours=24))
        # (datetime(2024, 5, 1), datetime(2024, 5, 3))
    """
    if lookback < dt.timedelta(0):
        raise ValueError(f"lookback {lookback} is negative; use 0 or more (e.g. timedelta(hours=24))")
    if interval_end < interval_start:
        raise ValueError(f"data interval ends ({interval_end}) before it starts ({interval_start})")
    start = interval_start
    if last_success_end is not None and last_success_end < start:
        start = last_success_end
    return start - lookback, interval_end


@dataclass(frozen=True)
class IncrementalSource:
    """A source query and the two columns that drive an incremental load.

    :param query: a ``SELECT`` returning the target's columns (by name), e.g. a projection
        of the application's table; used as a subquery, so no trailing semicolon
    :param partition_column: the business-date column of the query's result that names the
        target partition (e.g. ``payment_date``)
    :param updated_column: the column that moves when a row is inserted or changed
        (e.g. ``updated_at``); the watermark is on it
    :param key_columns: the row's key (e.g. ``("payment_id",)``). A changed row's *new*
        partition is found from the source; its *old* one only from the target, by key: a
        payment whose ``paid_at`` was corrected to another day must leave the old day too.
        Without a key that old day keeps the row until something else touches it.
    """

    query: str
    partition_column: str
    updated_column: str
    key_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate_identifier(self.partition_column, "partition column")
        validate_identifier(self.updated_column, "updated column")
        object.__setattr__(self, "key_columns", tuple(self.key_columns or ()))
        for k in self.key_columns:
            validate_identifier(k, "key column")
        if self.query.strip().rstrip(";") != self.query.strip():
            raise SourceError("the source query ends with ';': it is used as a subquery, remove the semicolon")

    def _rel(self) -> sql.Composed:
        return sql.SQL("({}) as src").format(sql.SQL(self.query))

    def window_query(self, window: tuple[dt.datetime, dt.datetime]) -> str:
        """The rows changed in ``window``, as SQL text (for a contract check of what a run reads)."""
        low, high = window
        return sql.SQL("select * from {} where {} >= {} and {} < {}").format(
            self._rel(), sql.Identifier(self.updated_column), sql.Literal(low.isoformat()),
            sql.Identifier(self.updated_column), sql.Literal(high.isoformat())).as_string(None)

    def partition_query(self, value: str, columns: Iterable[str]) -> sql.Composed:
        """The rows of one partition, with ``columns`` in the target's order."""
        return sql.SQL("select {} from {} where {} = {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in columns), self._rel(),
            sql.Identifier(self.partition_column), sql.Literal(value))


def utc_session(conn: Any) -> None:
    """Set ``conn``'s session to print and read timestamps in UTC, with ISO dates.

    The fingerprint hashes each row's text form; timestamptz prints in the session's
    TimeZone, so both sides (and the reload that copies the rows) must use the same one."""
    conn.execute("select set_config('TimeZone', 'UTC', false), set_config('DateStyle', 'ISO, MDY', false)")


def changed_partitions(conn: Any, source: IncrementalSource, window: tuple[dt.datetime, dt.datetime]) -> list[str]:
    """Partition values (as text, sorted) of the source rows whose watermark is in ``window``."""
    low, high = window
    utc_session(conn)
    rows = conn.execute(
        sql.SQL("select distinct {p}::text from {rel} where {u} >= %s and {u} < %s and {p} is not null order by 1"
                ).format(p=sql.Identifier(source.partition_column), rel=source._rel(),
                         u=sql.Identifier(source.updated_column)),
        (low, high),
    ).fetchall()
    return [r[0] for r in rows]


KEY_BATCH = 10_000  # keys per look-up in the target: one bounded statement each


def moved_from_partitions(src_conn: Any, wh_conn: Any, source: IncrementalSource, info: q.TargetInfo,
                          window: tuple[dt.datetime, dt.datetime]) -> list[str]:
    """Partitions of the *target* that hold a row whose key changed in ``window`` (sorted).

    The source names only the partition a changed row belongs to now; the one it was
    published in before (a corrected business date) is found by key in the target.
    """
    if not source.key_columns:
        return []
    keys = [info.column(k) for k in source.key_columns]
    missing = [k for k, c in zip(source.key_columns, keys) if c is None]
    if missing:
        raise SourceError(f"{info.name} has no column(s) {', '.join(map(repr, missing))} of the source's key; "
                          "give key_columns that the target has")
    low, high = window
    utc_session(src_conn)
    changed = src_conn.execute(
        sql.SQL("select distinct {k} from {rel} where {u} >= %s and {u} < %s").format(
            k=sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c.name)) for c in keys),
            rel=source._rel(), u=sql.Identifier(source.updated_column)),
        (low, high)).fetchall()
    found: set[str] = set()
    lookup = sql.SQL("select distinct t.{p}::text from {tbl} t join unnest({arrays}) as k({names}) on {on}").format(
        p=sql.Identifier(source.partition_column), tbl=info.ident,
        arrays=sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in keys),
        names=sql.SQL(", ").join(sql.Identifier(f"k{i}") for i in range(len(keys))),
        on=sql.SQL(" and ").join(sql.SQL("t.{} = k.{}::{}").format(sql.Identifier(c.name), sql.Identifier(f"k{i}"),
                                                                   sql.SQL(c.type)) for i, c in enumerate(keys)))
    for i in range(0, len(changed), KEY_BATCH):
        batch = changed[i:i + KEY_BATCH]
        for (p,) in wh_conn.execute(lookup, [[r[j] for r in batch] for j in range(len(keys))]):
            if p is not None:
                found.add(p)
    return sorted(found)


def _fingerprint_sql(relation: sql.Composable, columns: list[q.TargetColumn]) -> sql.Composed:
    # Each column cast to the *target's* type, then the row's text form hashed: a source
    # numeric 12.5 and a target numeric(12,2) 12.50, or a source text and a target char(3),
    # are the same value and must hash the same. (safeload.loads.sql.checksum_sql hashes
    # typed records, which compares a table with itself, not a source with its target.)
    # The cast goes through text, as the load does (COPY prints the source's value, the
    # target parses it): a direct float8 -> numeric cast rounds to 15 digits (0.3) where
    # the loaded value is 0.30000000000000004, and the day would never compare equal.
    row = sql.SQL(", ").join(sql.SQL("{}::text::{}").format(sql.Identifier(c.name), sql.SQL(c.type))
                             for c in columns)
    return sql.SQL("select count(*), coalesce(sum(hashtextextended(row({row})::text, 0)::numeric), 0)::text "
                   "from {rel}").format(row=row, rel=relation)


def source_fingerprint(conn: Any, source: IncrementalSource, value: str, columns: list[q.TargetColumn]
                       ) -> tuple[int, str]:
    """Row count and checksum of one partition as the source has it now."""
    utc_session(conn)
    names = [c.name for c in columns]
    rel = sql.SQL("({}) as part").format(source.partition_query(value, names))
    n, checksum = conn.execute(_fingerprint_sql(rel, columns)).fetchone()
    return int(n), checksum


def target_fingerprint(conn: Any, info: q.TargetInfo, partition_column: str, value: str) -> tuple[int, str]:
    """Row count and checksum of one published partition (0 rows when it does not exist yet)."""
    utc_session(conn)
    rel = sql.SQL("(select * from {} where {}) as part").format(info.ident, q.partition_where(partition_column, value))
    n, checksum = conn.execute(_fingerprint_sql(rel, list(info.written))).fetchone()
    return int(n), checksum


@dataclass
class ReloadPlan:
    """What one run of an incremental load will do; JSON-serialisable (it travels through XCom).

    :param window: the ``[low, high)`` watermark range, ISO timestamps
    :param candidates: partitions with rows changed in the window: where the source has
        them now and, by key, where the target has them (a row moved to another partition)
    :param reload: candidates whose source differs from the published partition
    :param unchanged: candidates already published exactly as the source has them
    :param fingerprints: ``{partition: {"source": [rows, checksum], "target": [rows, checksum]}}``
    """

    window: list[str]
    candidates: list[str] = field(default_factory=list)
    reload: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    fingerprints: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_reloads(src_conn: Any, wh_conn: Any, source: IncrementalSource, *, table: str,
                 window: tuple[dt.datetime, dt.datetime], max_partitions: int | None = 62) -> ReloadPlan:
    """Find the partitions whose rows changed in ``window`` and keep those that differ from the target.

    :param src_conn: a connection to the source database
    :param wh_conn: a connection to the warehouse
    :param table: the target table, partitioned (natively or not) by ``source.partition_column``
    :param max_partitions: refuse a window that touches more partitions than this: a mass
        update in the source (a migration back-filling ``updated_at``) should be a
        deliberate backfill, not a surprise reload of years of data. None: no limit.
    :raises SourceError: when the target lacks the partition column, or too many partitions changed
    """
    info = q.target_info(wh_conn, table)
    if info.column(source.partition_column) is None:
        raise SourceError(f"{info.name} has no column {source.partition_column!r}, the source's partition column; "
                          "make the source query return the target's partition column")
    candidates = sorted(set(changed_partitions(src_conn, source, window))
                        | set(moved_from_partitions(src_conn, wh_conn, source, info, window)))
    if max_partitions is not None and len(candidates) > max_partitions:
        raise SourceError(
            f"rows of {len(candidates)} partitions of {info.name} changed between {window[0].isoformat()} and "
            f"{window[1].isoformat()} ({candidates[0]} .. {candidates[-1]}), more than max_partitions="
            f"{max_partitions}: a mass update in the source? Reload them deliberately (a backfill), or raise "
            "max_partitions")
    plan = ReloadPlan([window[0].isoformat(), window[1].isoformat()], candidates)
    for value in candidates:
        src = source_fingerprint(src_conn, source, value, list(info.written))
        tgt = target_fingerprint(wh_conn, info, source.partition_column, value)
        plan.fingerprints[value] = {"source": list(src), "target": list(tgt)}
        (plan.unchanged if src == tgt else plan.reload).append(value)
    log.info("window %s .. %s: %d partition(s) changed, %d to reload (%s), %d already published as the source has "
             "them", *plan.window, len(candidates), len(plan.reload), ", ".join(plan.reload) or "none",
             len(plan.unchanged))
    return plan
