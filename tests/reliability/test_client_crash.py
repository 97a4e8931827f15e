"""Client crash: the loader, a child process, SIGKILLed at random points of a load.

Each trial replaces the partition with the *other* of two versions (A: 150,000 rows,
B: 120,000 other rows) and kills the loader at a crash point drawn by a seeded RNG: a
named phase (mid-COPY after a random block, around the staging COMMIT, between DELETE and
INSERT or DETACH and ATTACH, between a direct load's DELETE and COPY and its COMMIT, around
each parallel stream's COMMIT and the audit of the streams, around the publish COMMIT; see
harness.py) or a random delay after start (anywhere, including before or after the
interesting parts). The loads run in each of harness.MODES: DELETE + INSERT, swap, direct
(a plain table, no staging), staging filled by two parallel streams, and a direct load in
two streams (a helper fills a side table beside the publishing transaction). After each kill:

* the published partition is exactly the old version or the new one (count and checksum),
  and the old one whenever the kill came before the publish's COMMIT;
* the server holds no advisory lock of the dead loader;
* the next run (same run key: a retry) succeeds and loads the new version exactly once,
  and leaves no staging table or staging registry row behind;
* the neighbouring partition is untouched throughout.
"""

from __future__ import annotations

import json
import os
import random
import time

import pytest

from reliability import harness as h
from reliability.figures import SEED, record, trials
from safeload.loads.loader import COPY_BLOCK

STAGE = ["copy", "stage:before-commit", "stage:after-commit"]
STREAMS = ["reserve:after-commit", "copy", "stream:before-commit", "stream:after-commit", "complete:before-commit",
           "complete:after-commit"]
COMMIT = ["publish:before-commit", "publish:after-commit"]
PHASES = {
    "delete_insert": STAGE + ["publish:after-delete", "publish:after-insert"] + COMMIT,
    # staging that becomes the partition commits its rows, then its audit (indexes, statistics)
    "swap": STAGE + ["complete:before-commit", "complete:after-commit", "publish:after-detach",
                     "publish:after-attach"] + COMMIT,
    "direct": ["publish:after-delete", "copy", "publish:after-copy"] + COMMIT,
    "swap, 2 streams": STREAMS + ["publish:after-detach", "publish:after-attach"] + COMMIT,
    "delete_insert, 2 streams": STREAMS + ["publish:after-delete", "publish:after-insert"] + COMMIT,
    # the side table reserved, the helper's COPY and COMMIT, the transaction's DELETE, COPY
    # and INSERT of the helper's rows
    "direct, 2 streams": ["reserve:after-commit", "copy", "stream:before-commit", "stream:after-commit",
                          "publish:after-delete", "publish:after-copy", "publish:after-insert"] + COMMIT,
}
# a kill at any named phase but this one leaves the old partition: the publish had not committed
AFTER_PUBLISH_COMMIT = "publish:after-commit"


def plan(rng: random.Random, mode: str, n: int) -> list[str]:
    """``n`` crash points: every named phase once (when n allows), the rest drawn at random."""
    named = PHASES[mode]
    points = rng.sample(named, k=min(n, len(named)))
    points += rng.choices(named + ["random-time"] * 3, k=n - len(points))
    return points


@pytest.mark.timeout(1200)  # full mode on a busy 2-core machine
@pytest.mark.parametrize("mode", list(h.MODES))
def test_sigkill_at_random_points_leaves_old_or_new_and_the_retry_loads_once(mode, pg, pg_uri, tmp_path):
    kills = trials(fast=2, full=30)  # kills that land; a random delay may outlast the load
    rng = random.Random(f"{SEED}/client-crash/{mode}")
    print(f"seed {SEED} (SAFELOAD_RELIABILITY_SEED={SEED} replays these crash points)")
    strategy, _, streams = h.MODES[mode]
    h.create_target(pg, mode)
    h.mode_loader(pg_uri, mode, run_key="neighbour", day=h.NEIGHBOUR).run(
        h.write_csv(tmp_path / "neighbour.csv", h.NEIGHBOUR, 1000, start=5_000_000))
    neighbour = h.version(pg, h.NEIGHBOUR)
    sources = {"A": h.write_csv(tmp_path / "a.csv", h.DAY, 150_000),
               "B": h.write_csv(tmp_path / "b.csv", h.DAY, 120_000, start=1_000_000, status="paid")}
    blocks = {k: -(-os.path.getsize(p) // COPY_BLOCK) for k, p in sources.items()}
    assert min(blocks.values()) >= 3, "the sources must span several COPY blocks to stop mid-COPY"

    # the two versions, loaded by the child exactly as the trials load them; their run
    # time bounds the random delays
    versions, durations = {}, []
    for key in ("A", "B"):
        child = h.Child(pg_uri, sources[key], strategy=strategy, run_key=f"setup-{key}", parallel=streams)
        rc, out, err = child.finish()
        assert rc == 0, err
        durations.append(json.loads(out.split("DONE ", 1)[1])["elapsed"])
        versions[key] = h.version(pg)
    assert versions["A"] != versions["B"]
    current, landed, outcomes = "B", 0, {"old": 0, "new": 0}
    points = plan(rng, mode, 2 * kills)  # bounded: at most twice as many trials as kills
    n = 0
    for i, point in enumerate(points):
        if landed >= kills:
            break
        n += 1
        new = "A" if current == "B" else "B"
        # a stream COPYs every other block: its K-th block is about the (streams * K)-th of the file
        phase = f"copy:{rng.randint(1, (blocks[new] - 1) // streams)}" if point == "copy" else point
        where = f"trial {i} ({mode}, {phase}, seed {SEED})"
        run_key = f"crash-{i}"
        child = h.Child(pg_uri, sources[new], strategy=strategy, run_key=run_key, parallel=streams,
                        pause_at=None if phase == "random-time" else phase)
        if phase == "random-time":
            # anywhere from start-up to (usually) past the end of the load
            time.sleep(rng.uniform(0.0, 1.3 * max(durations) + 0.5))
        else:
            line = child.wait_line("PAUSED")
            if line is None:
                child.kill()
                _, _, err = child.finish()
                pytest.fail(f"{where}: the loader never reached the crash point\n{err[-3000:]}")
        if child.kill():
            landed += 1
        else:
            rc, out, err = child.finish()
            assert rc == 0 and "DONE" in out, f"{where}: {err[-3000:]}"
        h.wait_backends_gone(pg)

        got = h.version(pg)
        assert got in (versions[current], versions[new]), f"{where}: a mix of versions: {got}"
        if point not in ("random-time", AFTER_PUBLISH_COMMIT):
            assert got == versions[current], f"{where}: killed before the publish committed, yet changed"
        if point == AFTER_PUBLISH_COMMIT:
            assert got == versions[new], f"{where}: the publish committed, yet the new version is not there"
        outcomes["old" if got == versions[current] else "new"] += 1
        assert h.advisory_locks(pg) == 0, f"{where}: a lock was left behind"

        # the retry: same run key, as Airflow's next try of the task would use
        result = h.mode_loader(pg_uri, mode, run_key=run_key).run(sources[new])
        assert (result.rows, h.version(pg)) == (versions[new][0], versions[new]), f"{where}: not loaded exactly once"
        assert h.staging_leftovers(pg) == (0, 0), f"{where}: staging left behind"
        assert h.version(pg, h.NEIGHBOUR) == neighbour, f"{where}: the neighbouring partition changed"
        current = new

    assert landed >= kills, f"only {landed} of {n} kills landed ({mode}, seed {SEED})"
    print(f"{mode}: {n} trials, {landed} kills landed, outcomes {outcomes}, points {points[:n]}")
    record(f"client crash, SIGKILL ({mode})", trials=n, faults=landed,
           held=f"old or new partition, never a mix (old {outcomes['old']}, new {outcomes['new']}); "
                "no lock left; retry loads once; no staging left")
