"""SourceReadySensor on an object in storage, against a real S3 API on 127.0.0.1 (moto's
server mode), reached through the Airflow connection named in the URL: poke (missing,
too small, no marker yet, marker, settle time from the object's last-modified time) and
deferred (the trigger round-trips through serialize() and fires when the marker lands)."""

from __future__ import annotations

import asyncio

import pytest
from airflow.sdk import ObjectStoragePath

from safeload.sensors.source import SourceReadySensor
from safeload.triggers.source import SourceReadyTrigger, source_readiness


def poke(path, **kw):
    """The sensor's poke, and the reason it logs (what :func:`source_readiness` says)."""
    ready = SourceReadySensor(task_id="wait", path=path, **kw).poke({})
    reason = source_readiness(str(path), kw.get("marker"), kw.get("min_bytes", 1), kw.get("settle_seconds", 30.0))
    assert reason.ready is ready
    return ready, reason.reason


def test_poke_waits_for_the_object_and_its_marker(s3):
    url = s3.airflow_url("orders/2024-05-02.csv")
    assert poke(url, marker="{path}.done") == (False, f"{url} does not exist yet")
    s3.put("orders/2024-05-02.csv", b"")
    assert poke(url, marker="{path}.done") == (False, f"{url} has 0 bytes, fewer than min_bytes=1")
    s3.put("orders/2024-05-02.csv", b"order_id\n1\n")
    assert poke(url, marker="{path}.done") == (
        False, f"{url} exists but its marker {url}.done does not (still being written?)")
    s3.put("orders/2024-05-02.csv.done", b"")
    assert poke(url, marker="{path}.done") == (True, f"{url} (11 bytes) and its marker {url}.done exist")
    path = ObjectStoragePath(s3.url("orders/2024-05-02.csv"), conn_id="s3_test")  # the connection beside the URL
    assert poke(path, marker="{dir}/_SUCCESS")[0] is False
    s3.put("orders/_SUCCESS", b"")
    assert poke(path, marker="{dir}/_SUCCESS")[0] is True


def test_without_a_marker_the_object_must_settle(s3):
    url = s3.airflow_url("x.csv")
    s3.put("x.csv", b"order_id\n1\n")
    ready, reason = poke(url, settle_seconds=3600)
    assert not ready and "was modified" in reason and "waiting until it is 3600s old" in reason
    assert poke(url, settle_seconds=0)[0]


def test_deferred_sensor_fires_when_the_marker_lands(s3):
    from airflow.sdk.exceptions import TaskDeferred

    url = s3.airflow_url("orders/2024-05-02.csv")
    s3.put("orders/2024-05-02.csv", b"order_id\n1\n")
    sensor = SourceReadySensor(task_id="wait", path=url, marker="{path}.done", deferrable=True, poke_interval=0.05,
                               timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "safeload.triggers.source.SourceReadyTrigger"
    assert all(isinstance(v, (str, int, float, type(None))) for v in kwargs.values())
    trigger = SourceReadyTrigger(**kwargs)  # as the triggerer rebuilds it
    assert trigger.serialize() == (classpath, kwargs)

    async def run():
        gen = trigger.run()
        task = asyncio.ensure_future(gen.__anext__())
        await asyncio.sleep(0.5)
        assert not task.done()  # still waiting: no marker yet
        await asyncio.to_thread(s3.put, "orders/2024-05-02.csv.done", b"")
        event = await asyncio.wait_for(task, timeout=30)
        await gen.aclose()
        return event.payload

    payload = asyncio.run(run())
    assert payload["status"] == "ready" and f"its marker {url}.done exist" in payload["reason"]
    sensor.execute_complete({}, payload)
