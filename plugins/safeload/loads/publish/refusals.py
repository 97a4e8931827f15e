"""What PostgreSQL's refusals during a publish mean for the person running the load.

A unique key, a CHECK or NOT NULL of the target or of the value's partition, a row with
no sub-partition to go to, a lock not had within ``lock_timeout``: each becomes a
:class:`~safeload.errors.LoadRefusedError` (or a retryable
:class:`~safeload.errors.LockTimeoutError`) naming the partition, the rule and the fix.
The publishing transaction has rolled back by then: the partition is as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from safeload.errors import LoadRefusedError, LockTimeoutError
from safeload.loads import sql as q
from safeload.loads.spec import LoadSpec


@contextlib.contextmanager
def publish_refusals(load: LoadSpec, info: q.TargetInfo) -> Iterator[None]:
    """Turn PostgreSQL's refusals inside the block into refusals that say what to do."""
    try:
        yield
    except psycopg.errors.UniqueViolation as e:
        raise LoadRefusedError(
            f"{info.name} partition {load.partition_value}: the staged rows break a unique key of the "
            f"target ({e.diag.message_detail or e.diag.message_primary}); nothing was published and the "
            "partition is unchanged. Fix the source, or add expect_column_values_to_be_unique (or "
            "expect_compound_columns_to_be_unique) on the key to the gate so it fails before the publish"
        ) from None
    except (psycopg.errors.CheckViolation, psycopg.errors.NotNullViolation) as e:
        detail = e.diag.message_detail or e.diag.message_primary
        if isinstance(e, psycopg.errors.CheckViolation) and not e.diag.constraint_name:
            # PostgreSQL's "no partition of relation ... found for row" (a sub-partitioned day)
            raise LoadRefusedError(
                f"{info.name} partition {load.partition_value}: a staged row has no partition to go to "
                f"({e.diag.message_primary}; {detail}); nothing was published and the partition is "
                "unchanged. Create the missing sub-partition (or a DEFAULT one), then publish again") from None
        what = (f"CHECK constraint {e.diag.constraint_name!r}" if isinstance(e, psycopg.errors.CheckViolation)
                else f"NOT NULL of column {e.diag.column_name!r}")
        # the stage checked the target's CHECKs as they were: one added since, or one
        # of the day's partition itself (staging carries the target's only)
        raise LoadRefusedError(
            f"{info.name} partition {load.partition_value}: a staged row breaks {what} of the target or of "
            f"its partition for this value ({detail}); nothing was published and the partition is unchanged. "
            "If it was added after the stage, stage the partition again (the stage names the source's "
            "line); if it is the partition's own, fix the source or the constraint") from None
    except psycopg.errors.LockNotAvailable as e:
        raise LockTimeoutError(
            f"{info.name} partition {load.partition_value}: a lock could not be had within "
            f"lock_timeout={load.lock_timeout} ({e.diag.message_primary}); the partition is unchanged. "
            "A long-running reader or another load holds it; retry later") from None
