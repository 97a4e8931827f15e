"""Client crash with a query source: the loader SIGKILLed while it pipes another
database's ``COPY (query) TO STDOUT`` into the staging ``COPY FROM STDIN``.

Two connections die with the loader here: the warehouse's (mid-COPY, mid-publish) and the
source's (a read-only transaction streaming the query). Each trial replaces the partition
with the other of two versions, read by a query from two source tables (A: 150,000 rows,
B: 120,000), and kills the loader at a seeded crash point: mid-COPY after a random
block, around the staging COMMIT, inside the publish, around its COMMIT. After each kill:
the partition is the old or the new version, the old one whenever the kill came before
the publish's COMMIT; no backend of the loader *or of the source* is left (the server
ends both, so no snapshot of the source is held open); no advisory lock; the retry with
the same run key loads the new version once and leaves no staging behind.
"""

from __future__ import annotations

import json
import random

import pytest

from reliability import harness as h
from reliability.figures import SEED, record, trials

POINTS = ["copy", "stage:before-commit", "stage:after-commit", "publish:after-detach", "publish:before-commit",
          "publish:after-commit"]
BEFORE_PUBLISH_COMMIT = {"copy", "stage:before-commit", "stage:after-commit", "publish:after-detach",
                         "publish:before-commit"}
QUERY = {"A": "select order_id, order_date, amount, status from src.a",
         "B": "select order_id, order_date, amount, status from src.b"}


@pytest.mark.timeout(900)
def test_sigkill_while_a_query_streams_leaves_old_or_new_and_no_source_backend(pg, pg_uri, tmp_path):
    kills = trials(fast=2, full=12)
    rng = random.Random(f"{SEED}/client-crash-query")
    strategy = "auto"  # the default; on this natively partitioned target it swaps
    h.create_target(pg, strategy)
    pg.execute("create schema src")
    for key, n, start, status in (("a", 150_000, 1, "placed"), ("b", 120_000, 1_000_000, "paid")):
        pg.execute(f"create table src.{key} as select g::bigint as order_id, date '{h.DAY}' as order_date, "
                   f"((g % 1000) + (g % 100) / 100.0)::numeric(12,2) as amount, '{status}'::text as status "
                   f"from generate_series({start}, {start + n - 1}) g")
    # COPY TO STDOUT sends a row per message; blocks of 1 MiB make several blocks here
    versions = {}
    for key in ("A", "B"):
        child = h.Child(pg_uri, QUERY[key], strategy=strategy, run_key=f"setup-{key}", query=True)
        rc, out, err = child.finish()
        assert rc == 0, err
        assert json.loads(out.split("DONE ", 1)[1])["rows"] == (150_000 if key == "A" else 120_000)
        versions[key] = h.version(pg)
    assert versions["A"] != versions["B"]
    points = rng.sample(POINTS, k=min(2 * kills, len(POINTS)))
    points += rng.choices(POINTS, k=2 * kills - len(points))
    current, landed, n, outcomes = "B", 0, 0, {"old": 0, "new": 0}
    for i, point in enumerate(points):
        if landed >= kills:
            break
        n += 1
        new = "A" if current == "B" else "B"
        phase = f"copy:{rng.randint(1, 3)}" if point == "copy" else point
        where = f"trial {i} (query source, {phase}, seed {SEED})"
        child = h.Child(pg_uri, QUERY[new], strategy=strategy, run_key=f"crash-{i}", pause_at=phase, query=True)
        if child.wait_line("PAUSED") is None:
            child.kill()
            _, _, err = child.finish()
            pytest.fail(f"{where}: the loader never reached the crash point\n{err[-3000:]}")
        assert child.kill(), f"{where}: the loader had already ended"
        landed += 1
        h.wait_backends_gone(pg)
        h.wait_backends_gone(pg, app="safeload-source")  # the source's transaction ended too
        got = h.version(pg)
        assert got in (versions[current], versions[new]), f"{where}: a mix of versions: {got}"
        if point in BEFORE_PUBLISH_COMMIT:
            assert got == versions[current], f"{where}: killed before the publish committed, yet changed"
        else:
            assert got == versions[new], f"{where}: the publish committed, yet the new version is not there"
        outcomes["old" if got == versions[current] else "new"] += 1
        assert h.advisory_locks(pg) == 0, f"{where}: a lock was left behind"
        from safeload.loads.loader import QuerySource

        result = h.loader(pg_uri, strategy=strategy, run_key=f"crash-{i}").run(
            QuerySource.from_conninfo(pg_uri, QUERY[new]))
        assert (result.rows, h.version(pg)) == (versions[new][0], versions[new]), f"{where}: not loaded exactly once"
        assert h.staging_leftovers(pg) == (0, 0), f"{where}: staging left behind"
        current = new
    assert landed >= kills
    record("client crash, SIGKILL (query source, auto)", trials=n, faults=landed,
           held=f"old or new partition, never a mix (old {outcomes['old']}, new {outcomes['new']}); no loader or "
                "source backend left; no lock; retry loads once; no staging left")
