"""A full disk: the outbox cap and its policy, the free-space floor, and SQLite itself
refusing to grow (SQLITE_FULL)."""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.error
import urllib.request

import pytest

from meterlink.hil.broker import Mosquitto, free_port
from meterlink.protocol import encode_rxinfo_datagram


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def _send(port: int, frames: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for f in frames:
            s.sendto(encode_rxinfo_datagram(f, -70, 0), ("127.0.0.1", port))


@pytest.mark.parametrize("policy", ["drop_oldest_readings", "refuse_readings"])
def test_tiny_cap_keeps_every_alarm_and_applies_the_policy(policy, fleet, write_config,
                                                           running_gateway, until, tmp_path):
    broker = Mosquitto(tmp_path / "late-broker", port=free_port())  # not started yet
    cfg = write_config(broker_port=broker.port,
                       outbox=f'max_bytes = 8192\npolicy = "{policy}"')
    dev = fleet.devices[0]
    frames, alarm_keys, reading_keys = [], [], []
    for i in range(120):
        if i % 20 == 5:
            frames.append(dev.alarm())
            alarm_keys.append(f"{dev.device_id}:{dev.counter}")
        else:
            frames.append(dev.reading())
            reading_keys.append(f"{dev.device_id}:{dev.counter}")

    async def main() -> list[str]:
        async with running_gateway(cfg) as gw:
            for i in range(0, len(frames), 10):  # in several commits
                _send(gw.udp_ports["net"], frames[i:i + 10])
                n = min(i + 10, len(frames))
                assert await until(lambda n=n: gw.metrics.frames.total() >= n)
                await gw.pipeline.flush()
            outbox = gw.db.outbox
            stored = await gw.db.call(outbox.fetch, 0, 1000)
            assert gw.metrics.outbox_full.get() == 1
            dropped = gw.metrics.dropped.total()
            assert dropped > 0
            assert outbox.bytes <= 8192 + sum(m.size for m in stored if m.kind == "alarm")
            metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{gw.http_port}/metrics")
            assert "meterlink_outbox_full 1" in metrics
            return [f"{m.device_id}:{m.counter}" for m in stored]

    stored = asyncio.run(main())
    assert set(alarm_keys) <= set(stored), "an alarm was dropped"
    kept = [k for k in stored if k in reading_keys]
    assert 0 < len(kept) < len(reading_keys)
    if policy == "drop_oldest_readings":
        assert kept == reading_keys[-len(kept):]  # the newest survive
    else:
        assert kept == reading_keys[:len(kept)]  # the oldest survive
    log = (tmp_path / "gateway.log").read_text()
    assert '"event": "outbox_full"' in log and '"level": "critical"' in log


def test_free_space_floor_triggers_the_policy(fleet, write_config, running_gateway, until,
                                              tmp_path):
    st = os.statvfs(tmp_path)
    never_free = st.f_blocks * st.f_frsize - 4096  # below the filesystem's size, never free
    cfg = write_config(outbox=f"min_free_bytes = {never_free}\n"
                              'policy = "refuse_readings"')
    dev = fleet.devices[0]
    frames = [dev.reading() for _ in range(5)] + [dev.alarm()]

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            _send(gw.udp_ports["net"], frames)
            assert await until(lambda: gw.metrics.frames.total() >= 6)
            await gw.pipeline.flush()
            stored = await gw.db.call(gw.db.outbox.fetch, 0, 100)
            assert [m.kind for m in stored] == ["alarm"]
            assert gw.metrics.dropped.get(reason="refused") == 5
            assert gw.status.outbox_full

    asyncio.run(main())


def test_sqlite_full_is_reported_and_alarms_are_acked_once_writing_works(
        fleet, write_config, running_gateway, until, tmp_path):
    cfg = write_config()
    dev = fleet.devices[2]
    first = dev.alarm()

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            outbox = gw.db.outbox
            pages = await gw.db.call(lambda: outbox.db.execute(
                "PRAGMA page_count").fetchone()[0])
            # the database may not grow by a single page: real SQLITE_FULL on commit
            await gw.db.call(lambda: outbox.db.execute(f"PRAGMA max_page_count={pages}"))
            filler = [dev.reading(deltas=tuple(range(40))) for _ in range(200)]
            _send(gw.udp_ports["net"], [*filler, first])
            assert await until(lambda: not gw.pipeline.commit_ok)
            url = f"http://127.0.0.1:{gw.http_port}/healthz"
            with pytest.raises(urllib.error.HTTPError) as err:
                await asyncio.to_thread(_get, url)
            assert err.value.code == 503
            await asyncio.sleep(0.3)
            assert gw.metrics.acks_sent.total() == 0  # nothing acked that is not durable
            await gw.db.call(lambda: outbox.db.execute("PRAGMA max_page_count=1073741823"))
            _send(gw.udp_ports["net"], [first])  # the module retries its alarm
            assert await until(lambda: gw.metrics.acks_sent.total() == 1)
            assert gw.pipeline.commit_ok
            assert '"status": "ok"' in await asyncio.to_thread(_get, url)
            stored = await gw.db.call(outbox.fetch, 0, 1000)
            assert [m.kind for m in stored] == ["alarm"]

    asyncio.run(main())
    log = (tmp_path / "gateway.log").read_text()
    assert '"event": "outbox_commit_failed"' in log
