"""Server crash: PostgreSQL stopped with ``pg_ctl stop -m immediate`` in the middle of a load.

A server of its own (started here in a temporary directory; the session's shared server is
never stopped). The loader runs in a child process, paused at a crash point (harness.py);
the server is stopped immediately (its processes quit without a checkpoint, like a crash:
on restart it replays the WAL), the loader is let go and fails on its dead connection;
then the server is restarted and:

* the partition is exactly the old version, or the new one when the publish had
  committed; an uncertain COMMIT (the stop races the COMMIT) may give either;
* no advisory lock is held;
* a retry (same run key) loads the new version exactly once and leaves no staging.

Crash points: mid-COPY, after the staging commit (delete_insert's UNLOGGED staging table
is emptied by crash recovery: publishing the staged result must then be refused, not
publish an empty partition; swap's staging is committed before its audit, and a stage
stopped there is never published), after the audit's commit (swap's logged staging
survives and publishes), inside the publish transaction, just before its COMMIT,
racing its COMMIT, and just after it. A direct load (a plain table, no staging) is
stopped mid-COPY into the target, after its DELETE and after its COPY; a stage in two
parallel streams after its staging table was reserved, after a stream's COMMIT and before
the streams' audit commits; a direct load in two streams after its side table was
reserved, after the helper's COMMIT, and after the transaction's COPY and INSERT.

fsync is off in safeload.dev.embedded. That loses data only when the *operating
system* crashes (pages still in the OS cache). A PostgreSQL crash, which is what an
immediate stop is, keeps everything the kernel was handed, so these tests mean the same
with fsync on; an OS crash or power cut is not simulated here.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from reliability import harness as h
from reliability.figures import SEED, record, trials
from safeload.errors import LoadRefusedError
from safeload.loads.loader import COPY_BLOCK, StageResult

PUBLISH = ["publish:before-commit", "commit-race", "publish:after-commit"]
#: the crash points of each of harness.MODES
POINTS = {
    "delete_insert": ["copy", "stage:after-commit", "publish:after-delete", *PUBLISH],
    "swap": ["copy", "stage:after-commit", "complete:after-commit", "publish:after-detach", *PUBLISH],
    "direct": ["publish:after-delete", "copy", "publish:after-copy", *PUBLISH],
    "swap, 2 streams": ["reserve:after-commit", "copy", "stream:after-commit", "complete:before-commit",
                        "complete:after-commit", "publish:after-attach", *PUBLISH],
    "direct, 2 streams": ["reserve:after-commit", "copy", "stream:after-commit", "publish:after-copy",
                          "publish:after-insert", *PUBLISH],
}


@pytest.fixture(scope="module")
def own_server():
    """A PostgreSQL server for this module only: (pgdata, port, uri of database ``crash``)."""
    from safeload.dev import embedded

    base = Path(tempfile.mkdtemp(prefix="safeload-crash-pg-"))
    pgdata = base / "data"
    uri = embedded.start(pgdata)
    port = urlsplit(uri).port
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("create database crash")
    try:
        yield pgdata, port, embedded.uri_for(port, "crash")
    finally:
        embedded.stop(pgdata, mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def _reset(uri: str, mode: str) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("drop schema if exists public cascade; drop schema if exists safeload cascade; "
                     "drop schema if exists safeload_staging cascade; create schema public")
        h.create_target(conn, mode)


def _plan(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """``n`` (mode, crash point): the commit race, mid-COPY and the new paths first, then all, shuffled."""
    every = [(m, p) for m, points in POINTS.items() for p in points]
    rng.shuffle(every)
    first = [("delete_insert", "copy"), ("swap", "commit-race"), ("direct", rng.choice(POINTS["direct"])),
             ("swap, 2 streams", rng.choice(POINTS["swap, 2 streams"])),
             ("direct, 2 streams", rng.choice(POINTS["direct, 2 streams"]))]
    rest = [x for x in every if x not in first]
    out = first + rest
    while len(out) < n:  # repeats, in a new order
        more = list(every)
        rng.shuffle(more)
        out += more
    return out[:n]


@pytest.mark.timeout(1200)  # full mode on a busy 2-core machine
def test_immediate_stop_mid_load_then_restart(own_server, tmp_path):
    from safeload.dev import embedded

    pgdata, port, uri = own_server
    n = trials(fast=5, full=40)
    rng = random.Random(f"{SEED}/server-crash")
    print(f"seed {SEED} (SAFELOAD_RELIABILITY_SEED={SEED} replays these crash points)")
    sources = {"A": h.write_csv(tmp_path / "a.csv", h.DAY, 150_000),
               "B": h.write_csv(tmp_path / "b.csv", h.DAY, 120_000, start=1_000_000, status="paid")}
    blocks = min(-(-Path(p).stat().st_size // COPY_BLOCK) for p in sources.values())
    outcomes, races = {"old": 0, "new": 0}, {"old": 0, "new": 0}
    mode_now, versions, current = None, {}, "B"
    plan = _plan(rng, n)
    for i, (mode, point) in enumerate(plan):
        strategy, _, streams = h.MODES[mode]
        if mode != mode_now:  # a fresh target per mode: both versions, loaded once
            _reset(uri, mode)
            for key in ("A", "B"):
                h.mode_loader(uri, mode, run_key=f"setup-{key}").run(sources[key])
                with psycopg.connect(uri) as conn:
                    versions[key] = h.version(conn)
            mode_now, current = mode, "B"
        new = "A" if current == "B" else "B"
        phase = {"copy": f"copy:{rng.randint(1, (blocks - 1) // streams)}",
                 "commit-race": "publish:before-commit"}.get(point, point)
        where = f"trial {i} ({mode}, {point}: {phase}, seed {SEED})"
        run_key = f"crash-{i}"
        child = h.Child(uri, sources[new], strategy=strategy, run_key=run_key, pause_at=phase, parallel=streams)
        try:
            assert child.wait_line("PAUSED") == f"PAUSED {phase}", f"{where}: never reached"
            if point == "commit-race":
                # COMMIT goes out while the server is being stopped: it may or may not land,
                # and the client may not learn which (an in-doubt commit)
                stopper = threading.Thread(target=embedded.stop, args=(pgdata,), kwargs={"mode": "immediate"})
                child.release()
                stopper.start()
                stopper.join(timeout=90)
            else:
                embedded.stop(pgdata, mode="immediate")
                child.release()
            rc, out, err = child.finish()
        finally:
            if child.proc.poll() is None:
                child.kill()
        if point not in ("commit-race", "publish:after-commit"):  # after its COMMIT the loader needs no server
            assert rc != 0 and "DONE" not in out, f"{where}: the loader did not notice the crash: {out} {err[-2000:]}"
        assert embedded.start(pgdata, port=port).endswith(f":{port}/postgres")

        with psycopg.connect(uri, autocommit=True) as conn:
            got = h.version(conn)
            assert got in (versions[current], versions[new]), f"{where}: a mix of versions: {got}"
            if point == "publish:after-commit":
                assert got == versions[new], f"{where}: a committed publish was lost"
            elif point != "commit-race":
                assert got == versions[current], f"{where}: changed without a committed publish"
            outcomes["old" if got == versions[current] else "new"] += 1
            if point == "commit-race":
                races["old" if got == versions[current] else "new"] += 1
            assert h.advisory_locks(conn) == 0, where
            if point == "complete:after-commit" or (point == "stage:after-commit" and strategy == "delete_insert"):
                _publish_the_crashed_stage(conn, uri, strategy, run_key, versions[new], where)
            elif point in ("stage:after-commit", "reserve:after-commit", "stream:after-commit",
                           "complete:before-commit"):
                # staging that becomes the partition is audited after its rows commit
                _unfinished_stage_is_refused(conn, uri, strategy, run_key, where)

        result = h.mode_loader(uri, mode, run_key=run_key).run(sources[new])
        with psycopg.connect(uri, autocommit=True) as conn:
            assert (result.rows, h.version(conn)) == (versions[new][0], versions[new]), f"{where}: not exactly once"
            assert h.staging_leftovers(conn) == (0, 0), f"{where}: staging left behind"
        current = new

    print(f"{n} server crashes: {plan}; outcomes {outcomes}")
    record("server crash, immediate stop + restart", trials=n, faults=n,
           held=f"old or new partition (old {outcomes['old']}, new {outcomes['new']}; in-doubt COMMITs: old "
                f"{races['old']}, new {races['new']}); committed publish kept; no lock; retry loads once")


def _unfinished_stage_is_refused(conn, uri, strategy, run_key, where) -> None:
    """What a stage stopped before its streams' audit committed leaves (a reserved registry
    row, a staging table with some streams' rows) is never published: the publish refuses it."""
    cur = conn.execute("select target, partition_value, staging_table, run_key, source, rows_source, rows_loaded, "
                       "rows_quarantined, checksum from safeload.staging where run_key = %s", (run_key,))
    row = cur.fetchone()
    assert row is not None and row[-1] == "", f"{where}: the reserved staging was not left unfinished: {row}"
    staged = StageResult(**{d.name: v for d, v in zip(cur.description, row)})
    before = h.version(conn)
    with pytest.raises(LoadRefusedError, match="was never finished"):
        h.loader(uri, strategy=strategy, run_key=run_key).publish(staged)
    assert h.version(conn) == before, f"{where}: an unfinished stage changed the partition"


def _publish_the_crashed_stage(conn, uri, strategy, run_key, new_version, where) -> None:
    """Publish what the crashed loader had staged, as its next try's publish would.

    delete_insert stages into an UNLOGGED table, which crash recovery empties: the publish
    must refuse (the row count no longer matches the audit) and change nothing. swap stages
    into a logged table, which survives: the publish must give the new version.
    """
    cur = conn.execute("select target, partition_value, staging_table, run_key, source, rows_source, rows_loaded, "
                       "rows_quarantined, checksum from safeload.staging where run_key = %s", (run_key,))
    row = cur.fetchone()
    assert row is not None, f"{where}: the committed staging was not registered"
    staged = StageResult(**{d.name: v for d, v in zip(cur.description, row)})
    before = h.version(conn)
    ld = h.loader(uri, strategy=strategy, run_key=run_key)
    if strategy == "delete_insert":
        assert conn.execute(f'select count(*) from safeload_staging."{staged.staging_table}"').fetchone()[0] == 0
        with pytest.raises(LoadRefusedError, match="stage the partition again"):
            ld.publish(staged)
        assert h.version(conn) == before, f"{where}: a refused publish changed the partition"
    else:
        ld.publish(staged)
        assert h.version(conn) == new_version, f"{where}: the surviving staging did not publish the new version"
