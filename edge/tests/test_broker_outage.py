"""The broker stops for a while under load, then comes back: the backlog drains in order,
nothing is lost, and no reading is published under two keys."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from meterlink.protocol import encode_rxinfo_datagram


def _outage_run(broker, durable_central, fleet, write_config, running_gateway, until,
                outage_s: float, rate_hz: float) -> None:
    cfg = write_config(broker_port=broker.port, udp=True)
    sent: dict[str, int] = {}  # key -> register in the frame

    async def stream(gw, stop: asyncio.Event) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        port = gw.udp_ports["net"]
        i = 0
        while not stop.is_set():
            dev = fleet.devices[i % len(fleet.devices)]
            sock.sendto(encode_rxinfo_datagram(dev.reading(), -80, 10), ("127.0.0.1", port))
            sent[f"{dev.device_id}:{dev.counter}"] = dev.register
            i += 1
            await asyncio.sleep(1 / rate_hz)
        sock.close()

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            stop = asyncio.Event()
            sender = asyncio.create_task(stream(gw, stop))
            await asyncio.sleep(1.0)
            await asyncio.to_thread(broker.stop)
            assert await until(lambda: not gw.status.broker_connected, 10)
            await asyncio.sleep(outage_s)
            backlog_during = gw.db.outbox.count
            await asyncio.to_thread(broker.start)
            await asyncio.sleep(1.0)
            stop.set()
            await sender
            assert await until(lambda: gw.db.outbox.count == 0, 60), gw.db.outbox.count
            assert backlog_during > rate_hz * outage_s * 0.5
            assert gw.metrics.broker_connects.total() >= 2
            print(f"backlog during the outage: {backlog_during} messages")

    asyncio.run(main())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(
            {m["key"] for m in durable_central.on_topic("meterlink/v1/readings/")}) < len(sent):
        time.sleep(0.1)
    readings = durable_central.on_topic("meterlink/v1/readings/")
    keys = [m["key"] for m in readings]
    assert set(keys) == set(sent), f"missing {len(set(sent) - set(keys))}"
    for m in readings:  # a key always names the same reading
        assert m["register"] == sent[m["key"]]
    # in order per device: counters of first publications never go backwards
    for dev in fleet.devices:
        counters = [int(k.split(":")[1]) for k in dict.fromkeys(keys)
                    if k.startswith(f"{dev.device_id}:")]
        assert counters == sorted(counters)
    print(f"{len(sent)} readings, {len(keys)} publications, "
          f"{len(keys) - len(set(keys))} republished with the same key")


def test_broker_outage_under_load(broker, durable_central, fleet, write_config,
                                  running_gateway, until):
    _outage_run(broker, durable_central, fleet, write_config, running_gateway, until,
                outage_s=12, rate_hz=100)


@pytest.mark.slow
def test_broker_outage_for_minutes(broker, durable_central, fleet, write_config,
                                   running_gateway, until):
    _outage_run(broker, durable_central, fleet, write_config, running_gateway, until,
                outage_s=180, rate_hz=50)
