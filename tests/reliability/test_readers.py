"""Readers and a replace: what a reader sees during publishes, and a reader that holds on.

* Readers summing the partition in a loop while it is replaced again and again see the
  old totals or the new ones, never anything else (both strategies). With delete_insert
  the worst moments are also probed on purpose: readers read *inside* the publish, right
  after its DELETE and right after its INSERT, and must still see the old totals.
* Readers summing the partition in a loop while it is replaced again and again see the
  old totals or the new ones, never anything else (both strategies, and direct loads).
  With delete_insert and direct the worst moments are also probed on purpose: readers
  read *inside* the publish, right after its DELETE and right after its INSERT (direct:
  its COPY into the target), and must still see the old totals.
* A reader in a long transaction: swap's DETACH waits for it and gives up at
  ``lock_timeout`` with a retryable :class:`LockTimeoutError`, changing nothing; so does
  delete_insert's DELETE (and a direct load's) when the long transaction holds row locks
  (``FOR SHARE``). A plain reader does not block delete_insert or a direct load at all,
  and keeps its snapshot.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from reliability import harness as h
from reliability.figures import record, trials
from safeload.errors import LockTimeoutError

READERS = 2
MAX_READS = 200_000  # per reader: the loop ends with the publishes, or at this bound


def _two_versions(pg, pg_uri, tmp_path, mode):
    h.create_target(pg, mode)
    sources = {"A": h.write_csv(tmp_path / "a.csv", h.DAY, 60_000),
               "B": h.write_csv(tmp_path / "b.csv", h.DAY, 50_000, start=1_000_000, status="paid")}
    totals = {}
    for key in ("A", "B"):
        _loader(pg_uri, mode, run_key=f"setup-{key}").run(sources[key])
        totals[key] = h.totals(pg)
    assert totals["A"] != totals["B"]
    return sources, totals


def _loader(uri, mode, **kw):
    return h.mode_loader(uri, mode, **kw) if mode in h.MODES else h.loader(uri, strategy=mode, **kw)


#: the phases inside the publish where a probe reads the partition from another session
PROBES = {"delete_insert": ("publish:after-delete", "publish:after-insert"),
          "direct": ("publish:after-delete", "publish:after-copy"),
          "direct, 2 streams": ("publish:after-delete", "publish:after-copy", "publish:after-insert")}


@pytest.mark.timeout(1200)  # full mode on a busy 2-core machine
@pytest.mark.parametrize("strategy", ["delete_insert", "swap", "direct", "direct, 2 streams"])
def test_readers_during_repeated_replaces_see_old_or_new_totals(strategy, pg, pg_uri, tmp_path):
    publishes = trials(fast=4, full=30)
    sources, totals = _two_versions(pg, pg_uri, tmp_path, strategy)
    allowed = set(totals.values())
    stop = threading.Event()
    seen: list[dict] = [dict() for _ in range(READERS)]
    errors: list[str] = []

    def read(k: int) -> None:
        try:
            with psycopg.connect(pg_uri, autocommit=True) as conn:
                for _ in range(MAX_READS):
                    t = h.totals(conn)
                    seen[k][t] = seen[k].get(t, 0) + 1
                    if stop.is_set():
                        return
        except Exception as e:  # noqa: BLE001 - a reader error is a failure of the test
            errors.append(f"reader {k}: {type(e).__name__}: {e}")

    probes: list[tuple] = []

    def probe(phase: str) -> None:
        # inside the publish transaction, between its statements: another session must
        # still see the whole old partition
        if phase in PROBES.get(strategy, ()):
            with psycopg.connect(pg_uri, autocommit=True) as conn:
                probes.append((phase, h.totals(conn)))

    readers = [threading.Thread(target=read, args=(k,)) for k in range(READERS)]
    for t in readers:
        t.start()
    current = "B"
    expected_probes = []
    try:
        for i in range(publishes):
            new = "A" if current == "B" else "B"
            hook = probe if strategy in PROBES else None
            result = _loader(pg_uri, strategy, run_key=f"p{i}", hook=hook).run(sources[new])
            assert result.published_by == strategy.split(",")[0]
            if hook:
                expected_probes += [(phase, totals[current]) for phase in PROBES[strategy]]
            current = new
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=120)
    assert errors == [], errors
    reads = {}
    for s in seen:
        for t, c in s.items():
            reads[t] = reads.get(t, 0) + c
    assert set(reads) <= allowed, f"a reader saw a partial partition: {set(reads) - allowed}"
    assert probes == expected_probes
    assert h.totals(pg) == totals[current]
    n_reads = sum(reads.values()) + len(probes)
    by_version = {k: reads.get(v, 0) for k, v in totals.items()}
    record(f"readers during replaces ({strategy})", trials=n_reads, faults=publishes,
           held=f"{n_reads} reads over {publishes} publishes saw only old or new totals "
                f"(A {by_version['A']}, B {by_version['B']}"
                + (f", {len(probes)} mid-publish probes: old)" if probes else ")"))


CASES = [
    pytest.param("swap", "select count(*) from public.orders", True, id="swap-plain-reader"),
    pytest.param("delete_insert", "select count(*) from (select 1 from public.orders where order_date = '2024-05-02' for share) r",
                 True, id="delete_insert-locking-reader"),
    pytest.param("delete_insert", "select count(*) from public.orders", False, id="delete_insert-plain-reader"),
    # auto on a natively partitioned table: its swap gives way at lock_timeout and it
    # publishes by DELETE + INSERT, which the reader does not block
    pytest.param("auto", "select count(*) from public.orders", False, id="auto-plain-reader"),
]


@pytest.mark.parametrize(("strategy", "reader_sql", "blocks"), CASES)
def test_long_reader_publish_times_out_retryably_or_is_not_blocked(strategy, reader_sql, blocks, pg, pg_uri,
                                                                    tmp_path):
    n = trials(fast=1, full=5)
    sources, totals = _two_versions(pg, pg_uri, tmp_path, strategy)
    current = "B"
    for i in range(n):
        new = "A" if current == "B" else "B"
        ld = h.loader(pg_uri, strategy=strategy, run_key=f"t{i}", lock_timeout="300ms")
        staged = ld.stage(sources[new])
        with psycopg.connect(pg_uri) as reader:  # a transaction, open until rollback
            reader.execute("set transaction isolation level repeatable read")
            reader.execute(reader_sql)
            if blocks:
                with pytest.raises(LockTimeoutError, match=r"lock_timeout=300ms.*unchanged.*retry later") as exc:
                    ld.publish(staged)
                assert exc.value.retryable
                assert h.totals(pg) == totals[current], "a timed-out publish changed the partition"
                assert h.advisory_locks(pg) == 0
                assert h.staging_leftovers(pg) == (1, 1), "the staged rows must stay for the retry"
                reader.rollback()
            else:
                ld.publish(staged)  # not blocked by the reader ...
                assert h.totals(pg) == totals[new]
                how = pg.execute("select message from safeload.load_history order by id desc limit 1").fetchone()[0]
                assert how.endswith("by DELETE + INSERT"), how
                # ... whose snapshot still shows the old partition
                assert h.totals(reader) == totals[current]
                reader.rollback()
                current = new
                continue
        ld.publish(staged)  # the retry, once the reader is gone
        assert h.totals(pg) == totals[new]
        assert h.staging_leftovers(pg) == (0, 0)
        current = new
    reader = "FOR SHARE reader" if "for share" in reader_sql else "plain reader"
    record(f"long {reader} vs publish ({strategy})", trials=n, faults=n,
           held=("LockTimeoutError (retryable) at lock_timeout; partition unchanged; retry published"
                 if blocks else ("swap gave way at lock_timeout; published by DELETE + INSERT; " if strategy == "auto"
                                 else "publish not blocked; ") + "the reader's snapshot kept the old totals"))


@pytest.mark.parametrize(("reader_sql", "blocks"), [
    pytest.param(CASES[1].values[1], True, id="locking-reader"),
    pytest.param(CASES[2].values[1], False, id="plain-reader"),
])
def test_long_reader_and_a_direct_load(reader_sql, blocks, pg, pg_uri, tmp_path):
    """A direct load (a plain table, no staging) DELETEs like delete_insert: a reader holding
    the rows FOR SHARE makes the whole load give up at lock_timeout, retryably, changing
    nothing (there is no staging to keep: the retry loads the source again); a plain
    reader neither blocks it nor sees the new rows in its snapshot."""
    n = trials(fast=1, full=5)
    sources, totals = _two_versions(pg, pg_uri, tmp_path, "direct")
    current = "B"
    for i in range(n):
        new = "A" if current == "B" else "B"
        ld = h.mode_loader(pg_uri, "direct", run_key=f"t{i}", lock_timeout="300ms")
        with psycopg.connect(pg_uri) as reader:
            reader.execute("set transaction isolation level repeatable read")
            reader.execute(reader_sql)
            if blocks:
                with pytest.raises(LockTimeoutError, match=r"lock_timeout=300ms.*unchanged.*retry later") as exc:
                    ld.run(sources[new])
                assert exc.value.retryable
                assert h.totals(pg) == totals[current] and h.advisory_locks(pg) == 0
                assert h.staging_leftovers(pg) == (0, 0)
            else:
                assert ld.run(sources[new]).published_by == "direct"
                assert h.totals(pg) == totals[new] and h.totals(reader) == totals[current]
            reader.rollback()
        if blocks:
            assert ld.run(sources[new]).published_by == "direct"  # the retry, once the reader is gone
        assert h.totals(pg) == totals[new]
        current = new
    reader = "FOR SHARE reader" if blocks else "plain reader"
    record(f"long {reader} vs a direct load", trials=n, faults=n,
           held="LockTimeoutError (retryable) at lock_timeout; partition unchanged; retry published" if blocks
           else "load not blocked; the reader's snapshot kept the old totals")
