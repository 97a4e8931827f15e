"""Concurrency: many writers of one partition; writers of different partitions.

Writers are threads, each with its own connections, loading a version of its own (its own
rows and row count), all released together by a barrier so that their stages and
publishes overlap. A writer that loses the race for the partition's advisory lock waits
for it (bounded by ``lock_timeout``) and then replaces the winner's version: the end state
must be exactly the version of the writer whose publish committed last.
"""

from __future__ import annotations

import threading

import pytest

from reliability import harness as h
from reliability.figures import record, trials


def _deadlocks(conn) -> int:
    conn.execute("select pg_stat_clear_snapshot()")
    return conn.execute("select deadlocks from pg_stat_database where datname = current_database()").fetchone()[0]


def _rounds() -> list[tuple[int, str]]:
    """(writers, mode of harness.MODES): direct writers take turns on the partition's lock
    for their whole load, the others for their publish."""
    fast = [(2, "delete_insert"), (4, "swap"), (3, "direct"), (2, "swap, 2 streams"), (3, "direct, 2 streams")]
    full = [(w, s) for _ in range(3) for w in (2, 4, 8) for s in ("delete_insert", "swap", "direct",
                                                                    "swap, 2 streams", "direct, 2 streams")]
    return full if trials(fast=0, full=1) else fast


@pytest.mark.timeout(1200)  # full mode on a busy 2-core machine
def test_many_writers_of_one_partition_leave_exactly_one_version(pg, pg_uri, tmp_path):
    sources = [h.write_csv(tmp_path / f"w{i}.csv", h.DAY, 4000 + 100 * i, start=1_000_000 * (i + 1))
               for i in range(8)]
    rounds = _rounds()
    deadlocks_before = _deadlocks(pg)
    strategy_now, waited = None, 0
    for r, (writers, strategy) in enumerate(rounds):
        if strategy != strategy_now:
            pg.execute("drop table if exists public.orders")
            h.create_target(pg, strategy)
            strategy_now = strategy
        results = {}

        def write(i: int, r: int = r, strategy: str = strategy) -> None:
            results[i] = h.mode_loader(pg_uri, strategy, run_key=f"r{r}-w{i}", lock_timeout="120s",
                                       audit={"run_id": f"r{r}-w{i}"}).run(sources[i])

        errors = h.together(write, list(range(writers)), timeout=300)
        assert errors == [], f"round {r} ({writers} writers, {strategy}): {errors}"
        # the last publish decides: history ids follow commit order of the publishes
        last = pg.execute("select run_id from safeload.load_history where status = 'published' and run_id like %s "
                          "order by id desc limit 1", (f"r{r}-w%",)).fetchone()[0]
        winner = int(last.rsplit("-w", 1)[1])
        got = h.version(pg)
        assert got[0] == results[winner].rows == 4000 + 100 * winner, f"round {r}: not exactly one version"
        assert got == _version_of(pg, sources[winner]), f"round {r}: the partition is not writer {winner}'s version"
        assert h.advisory_locks(pg) == 0 and h.staging_leftovers(pg) == (0, 0)
        waited += writers - 1
    assert _deadlocks(pg) == deadlocks_before, "PostgreSQL detected a deadlock"
    counts = sorted({w for w, _ in rounds})
    strategies = sorted({s for _, s in rounds})
    # faults: the writers that raced a publish of the same partition (all but one per round)
    record("concurrency: writers of one partition", trials=len(rounds), faults=waited,
           held=f"{len(rounds)} rounds of {'/'.join(map(str, counts))} writers ({', '.join(strategies)}): exactly "
                "one version, the last publish's; no deadlock, no error")


def _version_of(pg, source: str) -> tuple[int, str]:
    """The (rows, checksum) a source gives when loaded alone, computed from its rows."""
    import csv

    with open(source, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    pg.execute("create temp table if not exists expected (like public.orders including defaults)")
    pg.execute("truncate expected")
    with pg.cursor().copy("copy expected (order_id, order_date, amount, status) from stdin") as cp:
        for row in rows:
            cp.write_row(row)
    return tuple(pg.execute(
        "select count(*), coalesce(sum(hashtextextended(row(order_id, order_date, amount, status)::text, 0)"
        "::numeric), 0)::text from expected").fetchone())


@pytest.mark.parametrize("target", ["plain", "native"])
def test_writers_of_different_partitions_do_not_wait_for_each_other(pg, pg_uri, tmp_path, target):
    """delete_insert: writer A stops inside its publish transaction, just before COMMIT,
    holding its partition's lock and row locks. Writer B loads another partition from
    start to end meanwhile: at B's own COMMIT both publish locks are held at once and
    no backend is waiting for a lock. Nothing here is timed."""
    pg.execute(h.NATIVE if target == "native" else h.PLAIN)
    a_holds, release_a = threading.Event(), threading.Event()
    seen = {}

    def pause_a(phase: str) -> None:
        if phase == "publish:before-commit":
            a_holds.set()
            assert release_a.wait(timeout=120)

    def observe_b(phase: str) -> None:
        if phase == "publish:before-commit":
            seen["advisory"] = pg.execute("select count(*) from pg_locks where locktype = 'advisory' and granted "
                                          f"and {h.THIS_DB}").fetchone()[0]
            seen["waiting"] = pg.execute(f"select count(*) from pg_locks where not granted and {h.THIS_DB}"
                                         ).fetchone()[0]
            seen["a_open"] = not release_a.is_set()

    errors = []

    def run_a() -> None:
        try:
            h.loader(pg_uri, strategy="delete_insert", run_key="a", day=h.NEIGHBOUR, hook=pause_a).run(
                h.write_csv(tmp_path / "a.csv", h.NEIGHBOUR, 20_000))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
            a_holds.set()

    thread_a = threading.Thread(target=run_a)
    thread_a.start()
    try:
        assert a_holds.wait(timeout=120) and not errors, errors
        # B's lock_timeout is far above its load time: it bounds the wait, it does not time it
        h.loader(pg_uri, strategy="delete_insert", run_key="b", hook=observe_b, lock_timeout="60s").run(
            h.write_csv(tmp_path / "b.csv", h.DAY, 20_000, start=100_000))
    finally:
        release_a.set()
        thread_a.join(timeout=120)
    assert not errors, errors
    assert seen == {"advisory": 2, "waiting": 0, "a_open": True}, seen
    assert h.version(pg, h.NEIGHBOUR)[0] == 20_000 and h.version(pg)[0] == 20_000
    record(f"concurrency: other partitions ({target} table)", trials=1, faults=1,
           held="B published while A held its publish lock: both locks granted at once, 0 lock waits")


def test_swap_publish_queues_other_partitions_behind_the_parent_lock(pg, pg_uri, tmp_path):
    """swap (decision 002): DETACH takes ACCESS EXCLUSIVE on the parent until COMMIT, so a
    writer of another partition waits for it, visibly, and then finishes; no error, no
    deadlock. This is the documented price of the swap, shown rather than assumed."""
    pg.execute(h.NATIVE)
    h.loader(pg_uri, strategy="swap", run_key="a0", day=h.NEIGHBOUR).run(
        h.write_csv(tmp_path / "a0.csv", h.NEIGHBOUR, 5000))
    a_holds, release_a = threading.Event(), threading.Event()
    errors = []

    def pause_a(phase: str) -> None:
        if phase == "publish:after-detach":
            a_holds.set()
            assert release_a.wait(timeout=120)

    def run(day, key, n, hook=None) -> None:
        try:
            h.loader(pg_uri, strategy="swap", run_key=key, day=day, hook=hook, lock_timeout="120s",
                     app=f"swap-{key}").run(h.write_csv(tmp_path / f"{key}.csv", day, n, start=10_000))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
            a_holds.set()

    thread_a = threading.Thread(target=run, args=(h.NEIGHBOUR, "a1", 6000, pause_a))
    thread_a.start()
    assert a_holds.wait(timeout=120) and not errors, errors
    thread_b = threading.Thread(target=run, args=(h.DAY, "b", 7000))
    thread_b.start()
    try:
        waited = False
        for _ in range(600):  # bounded: B shows up waiting for a lock
            waited = pg.execute("select count(*) from pg_stat_activity where application_name = 'swap-b' "
                                "and wait_event_type = 'Lock'").fetchone()[0] > 0
            if waited or not thread_b.is_alive():
                break
            threading.Event().wait(0.05)
    finally:
        release_a.set()
        thread_a.join(timeout=120)
        thread_b.join(timeout=120)
    assert not errors, errors
    assert waited, "B did not wait for A's parent lock: the swap no longer takes it (update decision 002)"
    assert h.version(pg, h.NEIGHBOUR)[0] == 6000 and h.version(pg)[0] == 7000
    record("concurrency: other partitions (swap)", trials=1, faults=1,
           held="B queued behind A's DETACH lock on the parent, then published; no error (decision 002)")


@pytest.mark.timeout(1200)
def test_a_backfill_publishing_many_partitions_at_once(pg, pg_uri, tmp_path):
    """The default strategy on a natively partitioned table (auto: swap) with one writer per
    day, all released together, repeated: each swap detaches and drops its own day's
    partition while the others look up theirs. Every writer publishes (no deadlock, no
    'could not open relation'), each day holds exactly its writer's version, and the
    other days are untouched."""
    days = [f"2024-06-{d:02d}" for d in range(1, trials(fast=5, full=9))]
    rounds = trials(fast=2, full=6)
    h.create_target(pg, "auto")
    sources = {d: h.write_csv(tmp_path / f"{d}.csv", d, 3000 + 50 * i, start=100_000 * (i + 1))
               for i, d in enumerate(days)}
    for d in days:
        h.loader(pg_uri, strategy="auto", run_key="first", day=d).run(sources[d])
    want = {d: h.version(pg, d) for d in days}
    deadlocks_before = _deadlocks(pg)
    how: dict[str, int] = {}
    for r in range(rounds):
        results = []

        def write(day: str, r: int = r) -> None:
            results.append(h.loader(pg_uri, strategy="auto", run_key=f"round-{r}", day=day,
                                    lock_timeout="60s").run(sources[day]))

        errors = h.together(write, days)
        assert errors == [], f"round {r}: {errors}"
        assert {d: h.version(pg, d) for d in days} == want, f"round {r}: a day is not its writer's version"
        for res in results:
            how[res.published_by] = how.get(res.published_by, 0) + 1
    assert _deadlocks(pg) == deadlocks_before
    assert h.advisory_locks(pg) == 0 and h.staging_leftovers(pg) == (0, 0)
    record("concurrency: a backfill, one writer per partition (auto)", trials=rounds, faults=rounds * len(days),
           held=f"{rounds} rounds of {len(days)} days published at once: each day its writer's version, no "
                f"deadlock, no error (published by {', '.join(f'{k} {v}' for k, v in sorted(how.items()))})")
