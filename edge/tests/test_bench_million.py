"""Long campaign (slow, prints figures): 1,000,000 readings from 10,000 devices into
`meterlink gateway run` with the broker down, as fast as the gateway takes them without
loss, then the broker comes back and the whole backlog drains.

Run: `.venv/bin/python -m pytest -s -m slow edge/tests/test_bench_million.py`
(`BENCH_READINGS`, `BENCH_DEVICES` to change the size). Asserts what must hold at any
size: every commit within `commit_max_frames`, nothing lost, RSS flat (issue 14: it
ended at 1.96 GiB and stayed at 1.8-1.9 GiB through the drain).
"""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from meterlink.hil.broker import Mosquitto, free_port
from meterlink.protocol import encode_rxinfo_datagram

READINGS = int(os.environ.get("BENCH_READINGS", "1000000"))
DEVICES = int(os.environ.get("BENCH_DEVICES", "10000"))
AHEAD = 1000  # datagrams in flight at most: well below the shedding threshold, no loss


def _total(m: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in m.items() if k.startswith(prefix))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_million_readings_ingest_and_drain_with_flat_memory(tmp_path, tools):
    fleet = tools.make_fleet(DEVICES)
    keys = fleet.write_keys(tmp_path / "keys.json")
    broker = Mosquitto(tmp_path / "broker", port=free_port())
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(tools.config_text(tmp_path, keys, broker_port=broker.port,  # all kept
                                     outbox=f"max_bytes = {4 << 30}"))
    log = tmp_path / "gw.log"
    proc, ready = tools.start_gateway(cfg, log)
    port, http = ready["udp_ports"]["net"], ready["http_port"]
    ingest_rss: list[float] = []
    drain_rss: list[float] = []
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        addr = ("127.0.0.1", port)
        sent = 0
        done_at = 0.0
        t0 = time.monotonic()
        next_sample = t0
        while sent < READINGS:
            m = tools.scrape(http)
            handled = _total(m, "meterlink_frames_total") + m.get(
                "meterlink_pending_frames", 0)
            now = time.monotonic()
            if now >= next_sample:
                ingest_rss.append(tools.rss_mib(proc.pid))
                next_sample = now + 1.0
            burst = min(READINGS - sent, max(0, int(AHEAD - (sent - handled))))
            for i in range(sent, sent + burst):
                dev = fleet.devices[i % DEVICES]
                sock.sendto(encode_rxinfo_datagram(dev.reading(), -70, 0), addr)
            sent += burst
            if burst < 200:
                time.sleep(0.02)
        deadline = time.monotonic() + 60
        while True:
            m = tools.scrape(http)
            if _total(m, "meterlink_frames_total") >= READINGS:
                break
            assert time.monotonic() < deadline, {k: v for k, v in m.items() if k.startswith(
                ("meterlink_frames", "meterlink_udp", "meterlink_pending"))}
            time.sleep(0.1)
        done_at = time.monotonic()
        sock.close()
        ingest_s = done_at - t0
        end_rss = tools.rss_mib(proc.pid)
        ingest = m
        broker.start()
        t1 = time.monotonic()
        while m["meterlink_backlog_messages"] > 0:
            assert time.monotonic() - t1 < 3600
            drain_rss.append(tools.rss_mib(proc.pid))
            time.sleep(1.0)
            m = tools.scrape(http)
        drain_s = time.monotonic() - t1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        broker.stop()
    accepted = _total(ingest, 'meterlink_frames_total{outcome="accepted"')
    commits = ingest["meterlink_commit_batch_frames_count"]
    within = ingest['meterlink_commit_batch_frames_bucket{le="500"}']
    shed = ingest.get('meterlink_udp_shed{receiver="net"}', 0)
    drops = ingest.get('meterlink_udp_kernel_drops{receiver="net"}', 0)
    published = _total(m, "meterlink_published_total")
    print(f"\n{READINGS} readings from {DEVICES} devices: ingested in {ingest_s:.0f} s "
          f"({accepted / ingest_s:.0f}/s sustained, no loss: shed {shed:.0f}, kernel drops "
          f"{drops:.0f}); {commits:.0f} commits, all within 500: {within == commits}")
    print(f"RSS during ingest {min(ingest_rss):.1f}..{max(ingest_rss):.1f} MiB, at the end "
          f"{end_rss:.1f} MiB; drain {published:.0f} in {drain_s:.0f} s "
          f"({published / drain_s:.0f}/s), RSS during drain {min(drain_rss):.1f}.."
          f"{max(drain_rss):.1f} MiB")
    assert accepted == READINGS and shed == 0 and drops == 0
    assert within == commits
    assert published >= READINGS
    assert max(drain_rss + ingest_rss) < 1.5 * end_rss + 10
