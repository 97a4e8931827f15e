import asyncio
import os
import time

import pytest

from safeload.loads.readiness import file_ready


def test_missing_file_is_not_ready(tmp_path):
    r = file_ready(str(tmp_path / "x.csv"))
    assert not r.ready and "does not exist" in r.reason


def test_small_file_is_not_ready(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("")
    r = file_ready(str(p), settle_seconds=0)
    assert not r.ready and "min_bytes" in r.reason


def test_marker_decides_when_given(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a\n1\n")
    assert not file_ready(str(p), marker="{path}.done").ready
    (tmp_path / "x.csv.done").write_text("")
    assert file_ready(str(p), marker="{path}.done").ready


def test_without_marker_the_file_must_settle(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a\n1\n")
    now = time.time()
    os.utime(p, (now, now))
    assert not file_ready(str(p), settle_seconds=30, now=now + 5).ready
    assert file_ready(str(p), settle_seconds=30, now=now + 31).ready


def test_trigger_round_trips_through_serialize():
    from safeload.triggers.source import SourceReadyTrigger

    t = SourceReadyTrigger("/data/x.csv", marker="{path}.done", min_bytes=10, settle_seconds=5, poll_interval=2)
    classpath, kwargs = t.serialize()
    assert classpath == "safeload.triggers.source.SourceReadyTrigger"
    module, _, name = classpath.rpartition(".")
    clone = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    assert clone.serialize() == (classpath, kwargs)
    assert all(isinstance(v, (str, int, float, type(None))) for v in kwargs.values())


def test_trigger_fires_when_the_marker_appears(tmp_path):
    from safeload.triggers.source import SourceReadyTrigger

    p = tmp_path / "x.csv"
    p.write_text("a\n1\n")

    async def run():
        trigger = SourceReadyTrigger(str(p), marker="{path}.done", poll_interval=0.05)
        gen = trigger.run()
        task = asyncio.ensure_future(gen.__anext__())
        await asyncio.sleep(0.2)
        assert not task.done()  # still waiting: no marker yet
        (tmp_path / "x.csv.done").write_text("")
        event = await asyncio.wait_for(task, timeout=5)
        return event.payload

    payload = asyncio.run(run())
    assert payload["status"] == "ready"


def test_sensor_needs_exactly_one_source():
    from safeload.sensors.source import SourceReadySensor

    with pytest.raises(ValueError, match="exactly one of path= or sql="):
        SourceReadySensor(task_id="s")
