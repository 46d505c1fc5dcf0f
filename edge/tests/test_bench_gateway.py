"""Benchmark (prints figures, asserts only correctness): run with
`.venv/bin/python -m pytest -s -m bench edge/tests/test_bench_gateway.py`.

- throughput ingress (UDP link frames) -> verify -> outbox -> PUBACK, this process pinned
  to one core, beside the ceiling: the same MQTT client publishing prebuilt messages;
- p50/p99 latency from sending a frame to the central system receiving it, at a fixed rate;
- disk bytes written per frame (/proc/self/io), RSS.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import statistics
import time

import aiomqtt
import pytest

from meterlink.protocol import encode_rxinfo_datagram

N_FRAMES = int(os.environ.get("BENCH_FRAMES", "5000"))


def _io() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _ceiling(host: str, port: int, n: int, inflight: int) -> float:
    payload = b'{"key":"1:1","device_id":1,"register":1000,"intervals":[]}' + b" " * 300
    async with aiomqtt.Client(host, port, identifier="bench-ceiling",
                              protocol=aiomqtt.ProtocolVersion.V5,
                              max_inflight_messages=inflight) as client:
        client.pending_calls_threshold = inflight * 4
        t0 = time.perf_counter()
        for i in range(0, n, inflight):
            await asyncio.gather(*(client.publish("bench/ceiling", payload, qos=1)
                                   for _ in range(min(inflight, n - i))))
        return n / (time.perf_counter() - t0)


@pytest.mark.bench
def test_bench_end_to_end(broker, durable_central, fleet, write_config, running_gateway,
                          until):
    cfg = write_config(broker_port=broker.port)
    frames = []
    for i in range(N_FRAMES):
        frames.append(fleet.devices[i % 3].reading())
    rate_frames = [fleet.devices[i % 3].reading() for i in range(1000)]
    sent_at: dict[str, float] = {}
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})  # the gateway (and its DB thread) on one core
    figures: dict[str, float] = {}

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            addr = ("127.0.0.1", gw.udp_ports["net"])
            datagrams = [encode_rxinfo_datagram(f, -80, 0) for f in frames]
            figures["ceiling"] = await _ceiling(broker.host, broker.port, N_FRAMES,
                                                gw.cfg.mqtt.max_inflight)
            io0, t0 = _io(), time.perf_counter()
            for i, d in enumerate(datagrams):
                sock.sendto(d, addr)
                if i % 100 == 99:  # keep at most ~200 frames ahead of the gateway
                    while gw.metrics.frames.total() < i - 100:
                        await asyncio.sleep(0.001)
            assert await until(lambda: gw.forwarder.published >= N_FRAMES, 120)
            elapsed = time.perf_counter() - t0
            io1 = _io()
            figures["fps"] = N_FRAMES / elapsed
            figures["write_bytes_per_frame"] = (io1["write_bytes"] - io0["write_bytes"]) / N_FRAMES
            figures["wchar_per_frame"] = (io1["wchar"] - io0["wchar"]) / N_FRAMES
            figures["commits"] = gw.metrics.commit_batch.count
            # latency at a fixed rate of 100 frames/s
            for f in rate_frames:
                sent_at[f"{int.from_bytes(f[1:5], 'big')}:{int.from_bytes(f[5:7], 'big')}"] = \
                    time.time()
                sock.sendto(encode_rxinfo_datagram(f, -80, 0), addr)
                await asyncio.sleep(0.01)
            assert await until(lambda: gw.forwarder.published >= N_FRAMES + len(rate_frames), 60)
            figures["rss_mb"] = _rss_mb()
            figures["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            sock.close()

    try:
        asyncio.run(main())
    finally:
        os.sched_setaffinity(0, cpus)
    deadline = time.monotonic() + 20
    latencies: list[float] = []
    while time.monotonic() < deadline:
        with durable_central.lock:
            got = {json_key(p): t for t, p, in_ in _stamped(durable_central) if in_}
        if all(k in got for k in sent_at):
            latencies = [got[k] - sent_at[k] for k in sent_at]
            break
        time.sleep(0.2)
    assert latencies, "not every fixed-rate frame reached the central system"
    q = statistics.quantiles(latencies, n=100)
    print(f"\nend to end (UDP ingress -> PUBACK), one core: {figures['fps']:.0f} frames/s; "
          f"ceiling (same client, prebuilt messages): {figures['ceiling']:.0f} msg/s")
    print(f"latency at 100 frames/s, send -> central receives: p50 {q[49] * 1000:.1f} ms, "
          f"p99 {q[98] * 1000:.1f} ms")
    print(f"disk: {figures['write_bytes_per_frame']:.0f} B/frame written to the block layer, "
          f"{figures['wchar_per_frame']:.0f} B/frame through write(); "
          f"{figures['commits']:.0f} commits for {N_FRAMES} frames")
    print(f"RSS {figures['rss_mb']:.1f} MiB (peak {figures['maxrss_mb']:.1f} MiB, "
          "includes pytest)")


def json_key(payload: bytes) -> str:
    import json

    return str(json.loads(payload)["key"])


def _stamped(central) -> list[tuple[float, bytes, bool]]:
    return [(t, p, topic.startswith("meterlink/v1/readings/"))
            for topic, p, t in central.stamped]
