"""The partition catalogue: which partition holds a value, its bounds, a free name for a
new one, and whether a swap may replace it.

Every look-up asks PostgreSQL (partition pruning, ``pg_get_partition_constraintdef``,
``pg_inherits``) rather than parsing bounds in Python, and runs in a savepoint that is
rolled back, so that the ACCESS SHARE locks it takes on partitions are not kept for the
rest of a publish (kept, they would deadlock two swaps of different partitions).
Pure psycopg; no Airflow.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import psycopg
from psycopg import sql

from safeload.loads import sql as q

log = logging.getLogger(__name__)

LOOK_UP = object()  # swap_blocker's "old" when the caller has not looked the partition up


def lock_partition(conn: psycopg.Connection, info: q.TargetInfo, value: str) -> None:
    """Take the partition's advisory lock (to the end of the transaction): the loads that
    create or replace one partition of one target take turns."""
    conn.execute("select pg_advisory_xact_lock(%s)", (q.partition_lock_key(info.name, value),))


def partition_for(conn: psycopg.Connection, info: q.TargetInfo, value: str) -> str | None:
    """The partition of the target (one of its own, not a sub-partition) that a row with
    ``value`` in the key is routed to, or None.

    Found among the leaves PostgreSQL's partition pruning keeps (:func:`pruned_leaves`),
    confirmed by the partition's constraint. Loads of other partitions may detach and drop
    theirs meanwhile (they hold their own advisory lock, not this one): a partition that
    vanishes between the listing and the reading of its constraint is not the value's, and
    is skipped. Planning and reading a constraint open the relations (ACCESS SHARE, kept to
    the end of the transaction), so the look-up runs in a savepoint that is rolled back,
    which releases those locks: kept, they would deadlock two swaps of different
    partitions (each waiting to DETACH a partition the other had looked at).
    """
    with conn.transaction(force_rollback=True):
        return find_partition(conn, info, value)


def find_partition(conn: psycopg.Connection, info: q.TargetInfo, value: str) -> str | None:
    """:func:`partition_for` without its savepoint (the caller's transaction keeps the locks)."""
    leaves = pruned_leaves(conn, info, value)
    if leaves is not None and not leaves:
        return None  # no partition can hold the value (none for it, and no DEFAULT partition)
    # The target's own partitions (level 1): their constraints name the target's key only
    # (a sub-partition's names its own key too). Those above the pruned leaves, or all.
    # From pg_inherits, which takes no lock (pg_partition_tree locks every partition).
    children = conn.execute(
        "select i.inhrelid, i.inhrelid::regclass::text, "
        "exists (select 1 from pg_partitioned_table p where p.partdefid = i.inhrelid) "
        "from pg_inherits i where i.inhparent = %s::regclass"
        + (" and i.inhrelid in (select a.relid from unnest(%s::oid[]) as l(oid), pg_partition_ancestors(l.oid) as a)"
           if leaves is not None else ""),
        (q.regclass(info.schema, info.table),) + ((leaves,) if leaves is not None else ()),
    ).fetchall()
    for oid, child, is_default in children:
        # ask PostgreSQL whether the partition's constraint admits the value
        try:
            with conn.transaction():  # a savepoint: a vanished partition must not abort the caller's transaction
                constraint = conn.execute("select pg_get_partition_constraintdef(%s::oid)", (oid,)).fetchone()[0]
        except (psycopg.errors.UndefinedTable, psycopg.errors.InternalError_):
            continue  # "could not open relation": dropped after the listing
        if constraint is None:
            if is_default:  # a DEFAULT partition alone has no constraint: it takes every value
                return child
            continue  # no longer a partition (detached or dropped after the listing)
        key = info.column(info.partition_key)
        if eval_at(conn, constraint, key.name, sql.SQL("{}::{}").format(sql.Literal(value), sql.SQL(key.type))):
            return child
    return None


def pruned_leaves(conn: psycopg.Connection, info: q.TargetInfo, value: str) -> list[int] | None:
    """The leaves PostgreSQL's partition pruning keeps for ``key = value``: the value's own,
    the DEFAULT partition when the value may be routed there, every leaf when the key
    cannot be pruned by that comparison (a key with a collation of its own). Pruning
    removes only leaves that cannot hold the value, so the value's leaf is among these
    and :func:`find_partition` checks only them: one leaf, not every partition of the table
    (300 ms for 1000 partitions, a lock on each). None when the plan cannot be had."""
    col = info.column(info.partition_key or "")
    if col is None:
        return None
    try:
        # a savepoint rolled back: a plan refused leaves the caller's transaction as it was,
        # and the setting below goes with it
        with conn.transaction(force_rollback=True):
            # Pruning only: constraint exclusion would also drop a partition whose own CHECK
            # constraints refute the value (a day a swap published keeps its pin to the
            # value), which tuple routing does not do.
            conn.execute("select set_config('constraint_exclusion', 'off', true)")
            plan = conn.execute(sql.SQL("explain (format json, costs off, verbose) select from {} where {} = {}::{}")
                                .format(info.ident, sql.Identifier(col.name), sql.Literal(value), sql.SQL(col.type))
                                ).fetchone()[0]
    except (psycopg.OperationalError, psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled):
        raise  # the connection, lock_timeout, a cancel: as for any other statement of the publish
    except psycopg.Error as e:
        log.info("%s: no plan to narrow the partition look-up (%s); checking every partition", info.name, e)
        return None
    scanned: list[tuple[str, str]] = []

    def walk(node: dict) -> None:
        if "Relation Name" in node:
            scanned.append((node["Schema"], node["Relation Name"]))
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan[0]["Plan"])
    return [r[0] for r in conn.execute(
        "select c.oid from unnest(%s::text[], %s::text[]) as r(s, n) "
        "join pg_namespace ns on ns.nspname = r.s join pg_class c on c.relnamespace = ns.oid and c.relname = r.n",
        ([s for s, _ in scanned], [n for _, n in scanned])).fetchall()]


def free_partition_name(conn: psycopg.Connection, info: q.TargetInfo, value: str) -> str:
    """The name of a new partition for ``value``: :func:`q.partition_table_name`, or, when a
    table already has that name (another value's partition: 'eu-west' and 'eu_west', or two
    values sharing their first 20 characters, make the same name), the value's hash."""
    name = q.partition_table_name(info, value)
    if conn.execute("select to_regclass(%s)", (q.regclass(info.schema, name),)).fetchone()[0] is None:
        return name
    return f"{info.table[:40]}_p{hashlib.sha1(str(value).encode()).hexdigest()[:12]}"


def bounds_one_value(conn: psycopg.Connection, info: q.TargetInfo, leaf: str, value: str) -> bool:
    """Whether ``leaf`` (which admits ``value``) has the bounds :func:`q.partition_bounds`
    gives the value's partition, the ones the swap attaches staging with: LIST of that one
    value; RANGE of one integer, or of one day on a date or timestamp column. Told by
    PostgreSQL evaluating the leaf's partition constraint (a range is one interval) just
    inside and outside those bounds. False for any other layout (a month's partition).

    Reading the constraint also locks the leaf's parent (ACCESS SHARE): in a savepoint
    rolled back, as :func:`partition_for` does, so that the lock does not stand in the way
    of other loads' swaps for the rest of the publish."""
    with conn.transaction(force_rollback=True):
        return _check_bounds_one_value(conn, info, leaf, value)


def _check_bounds_one_value(conn: psycopg.Connection, info: q.TargetInfo, leaf: str, value: str) -> bool:
    constraint = conn.execute("select pg_get_partition_constraintdef(%s::regclass)", (leaf,)).fetchone()[0]
    col = info.column(info.partition_key or "")
    if constraint is None or col is None:
        return False
    if info.strategy == "l":
        # one non-null value prints as "(c IS NOT NULL) AND (c = v)"; several as "= ANY (ARRAY[...])",
        # NULL among them as "(c IS NULL) OR ..." (a value that contains these only makes it False)
        return "= ANY (" not in constraint and "IS NULL)" not in constraint
    if info.strategy != "r":
        return False
    v = sql.SQL("{}::{}").format(sql.Literal(value), sql.SQL(col.type))
    if col.type in ("date", "smallint", "integer", "bigint"):  # one value: v in, its neighbours out
        inside, outside = [v], [sql.SQL("{} - 1").format(v), sql.SQL("{} + 1").format(v)]
    elif col.type in ("timestamp without time zone", "timestamp with time zone"):
        import datetime as dt

        try:
            first = dt.date.fromisoformat(str(value)[:10])  # as q.partition_bounds reads the value
        except ValueError:
            return False
        day, next_day = (sql.SQL("{}::{}").format(sql.Literal(d.isoformat()), sql.SQL(col.type))
                         for d in (first, first + dt.timedelta(days=1)))
        us = sql.SQL("interval '1 microsecond'")
        inside = [day, sql.SQL("{} - {}").format(next_day, us)]
        outside = [sql.SQL("{} - {}").format(day, us), next_day]
        # A day holds many timestamps, and DELETE + INSERT replaces only the rows equal to
        # the value: the day's partition may be swapped only when its own CHECK (left by
        # the swap that published it, for this value) pins every row to the value.
        pin = conn.execute("select pg_get_expr(conbin, conrelid) from pg_constraint where conrelid = %s::regclass "
                           "and conname = %s and contype = 'c' and convalidated",
                           (leaf, q.PARTITION_CHECK)).fetchone()
        if pin is None:
            return False
        for point, expected in ((v, True), (sql.SQL("{} - {}").format(v, us), False),
                                (sql.SQL("{} + {}").format(v, us), False)):
            if eval_at(conn, pin[0], col.name, point) is not expected:
                return False
    else:
        return False
    for point, expected in [(p, True) for p in inside] + [(p, False) for p in outside]:
        if eval_at(conn, constraint, col.name, point) is not expected:
            return False
    return True


def eval_at(conn: psycopg.Connection, expr: str, column: str, point: sql.Composable) -> Any:
    """The value of ``expr`` (a constraint's text, as PostgreSQL prints it) where its one
    column ``column`` is ``point``, as PostgreSQL evaluates it (NULL as None)."""
    return conn.execute(sql.SQL("select {} from (select {} as {}) as v").format(
        sql.SQL(expr), point, sql.Identifier(column))).fetchone()[0]


def swap_blocker(conn: psycopg.Connection, info: q.TargetInfo, value: str, *, partition: bool = True,
                 old: Any = LOOK_UP) -> tuple[bool, str] | None:
    """Why ``auto`` will not swap this partition: ``(unsafe, reason)``, None when it will.

    A swap is metadata only and writes the rows once, except where PostgreSQL would
    make the ATTACH or DETACH scan or lose something, under the parent's lock:
    a DEFAULT partition (ATTACH scans it), foreign keys from or to the table (the new
    partition's rows, or the referencing rows, are checked), a partition that is not
    a plain table of the parent (sub-partitioned or foreign), or a role that does not
    own the tables (PostgreSQL allows DETACH and ATTACH to the owner only). ``unsafe``:
    a swap there would replace more than the partition, so ``swap`` is refused too.

    :param value: the partition value
    :param partition: also check the value's current partition; only under the
        publish's advisory lock, where no other load can detach or drop it meanwhile
    :param old: that partition (None: there is none) when the caller has looked it up
    """
    if not info.partitioned:
        return True, "the target is not natively partitioned"
    parent = q.regclass(info.schema, info.table)
    default, fks, owner, create = conn.execute(
        """select p.partdefid <> 0,
                  exists (select 1 from pg_constraint f where f.contype = 'f'
                          and (f.conrelid = c.oid or f.confrelid = c.oid)),
                  pg_has_role(c.relowner, 'USAGE'),
                  has_schema_privilege(c.relnamespace, 'CREATE')
           from pg_class c join pg_partitioned_table p on p.partrelid = c.oid
           where c.oid = %s::regclass""", (parent,)).fetchone()
    if default:
        # and the value's rows may live in it, among other values' rows: DETACHing it
        # would take those away
        return True, "it has a DEFAULT partition, which ATTACH would scan under the lock"
    if fks:
        return False, "foreign keys refer from or to it, which DETACH/ATTACH would validate under the lock"
    if not (owner and create):
        return False, "the loader's role does not own it (or lacks CREATE on its schema)"
    if not partition:
        old = None
    elif old is LOOK_UP:
        old = partition_for(conn, info, value)
    if old is not None:
        kind, direct, owns = conn.execute(
            """select c.relkind, i.inhparent = %s::regclass, pg_has_role(c.relowner, 'USAGE')
               from pg_class c join pg_inherits i on i.inhrelid = c.oid where c.oid = %s::regclass""",
            (parent, old)).fetchone()
        if kind != "r" or not direct:
            return True, f"the partition {old} is not a plain table attached to it directly"
        if not bounds_one_value(conn, info, old, value):
            # a month's partition, or a LIST of several values: dropped, it would take
            # the other values' rows with it
            return True, (f"the partition {old} also holds other values than {value} (its bounds "
                          "are not the ones safeload gives one value's partition)")
        if not owns:
            return False, f"the loader's role does not own the partition {old}"
        rules = conn.execute(
            """select 'CHECK constraint ' || c.conname, pg_get_expr(c.conbin, c.conrelid),
                      c.conkey = array[(select attnum from pg_attribute where attrelid = c.conrelid
                                        and attname = %s)]
                 from pg_constraint c
                where c.conrelid = %s::regclass and c.contype = 'c' and c.conislocal and c.coninhcount = 0
                  and c.conname <> %s
               union all
               select 'trigger ' || tgname, null, false from pg_trigger
                where tgrelid = %s::regclass and not tgisinternal and tgparentid = 0
               union all
               select 'NOT NULL of ' || a.attname, null, false from pg_attribute a
                 join pg_attribute p on p.attrelid = %s::regclass and p.attname = a.attname
                where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped
                  and a.attnotnull and not p.attnotnull and a.attname <> %s""",
            (info.partition_key, old, q.PARTITION_CHECK, old, parent, old, info.partition_key)).fetchall()
        # A CHECK on the key alone that the value meets (the bound's CHECK of PostgreSQL's
        # own ATTACH recipe): the new partition holds only the value, so it loses nothing
        own = [what for what, expr, key_only in rules if not (key_only and _value_meets(conn, info, value, expr))]
        if own:
            # staging is built from the parent: swapped in, the day would lose them
            return True, f"the partition {old} has rules of its own ({', '.join(own)}), which a swap would drop"
    return None


def _value_meets(conn: psycopg.Connection, info: q.TargetInfo, value: str, expr: str) -> bool:
    """Whether a CHECK expression on the partition key alone holds for the partition
    value (NULL passes a CHECK); False when it cannot be told (an error, in a savepoint)."""
    col = info.column(info.partition_key or "")
    if col is None:
        return False
    try:
        with conn.transaction():
            # NULL passes a CHECK
            return eval_at(conn, expr, col.name, sql.SQL("{}::{}").format(
                sql.Literal(value), sql.SQL(col.type))) is not False
    except (psycopg.OperationalError, psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable):
        raise
    except psycopg.Error:
        return False


def ensure_partition(conn: psycopg.Connection, info: q.TargetInfo, value: str, lock_timeout: str) -> None:
    """Create and attach the partition for the value when it is missing.

    Created as a plain table and then ATTACHed: ATTACH takes SHARE UPDATE EXCLUSIVE
    on the parent, which does not block readers or loads of other partitions
    (``CREATE TABLE ... PARTITION OF`` would take ACCESS EXCLUSIVE).
    """
    with conn.transaction():
        q.set_lock_timeout(conn, lock_timeout)
        lock_partition(conn, info, value)
        if partition_for(conn, info, value) is not None:
            return
        name = free_partition_name(conn, info, value)
        part = sql.Identifier(info.schema, name)
        conn.execute(sql.SQL("create table {} (like {} including defaults including generated including "
                             "constraints)").format(part, info.ident))
        conn.execute(sql.SQL("alter table {} attach partition {} {}").format(
            info.ident, part, q.partition_bounds(info, value)))
        log.info("created partition %s.%s of %s", info.schema, name, info.name)
