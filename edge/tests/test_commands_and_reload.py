"""Commands from the central system become downlinks in the device's next receive window;
the key file is reloaded on SIGHUP without a restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import paho.mqtt.publish as publish

from meterlink.protocol import (
    Config,
    FrameType,
    LinkDecoder,
    LinkFrame,
    TimeSync,
    decode_frame,
    encode_rxinfo,
)


def _downlinks(raw: bytes, key: bytes) -> list:
    return [decode_frame(f.payload, key) for f in LinkDecoder().feed(raw)
            if isinstance(f, LinkFrame)]


def test_config_and_time_commands_wait_for_the_next_uplink(broker, central, fleet,
                                                           write_config, pty_pair,
                                                           running_gateway, until):
    cfg = write_config(serial=[pty_pair.path], broker_port=broker.port)
    dev = fleet.devices[0]
    topic = f"meterlink/v1/commands/{dev.device_id}"

    async def main() -> list:
        async with running_gateway(cfg) as gw:
            assert await until(lambda: gw.status.broker_connected)
            assert await until(lambda: gw.receivers["rx0"].connected)
            await asyncio.sleep(0.3)  # SUBACK
            for body in ({"type": "config", "interval_s": 600, "leak_intervals": 48},
                         {"type": "time"}, {"type": "config", "colour": 3}, "not json"):
                payload = body if isinstance(body, str) else json.dumps(body)
                await asyncio.to_thread(publish.single, topic, payload, qos=1,
                                        hostname=broker.host, port=broker.port)
            assert await until(lambda: gw.downlink.pending(dev.device_id) == 2)
            assert await until(lambda: gw.metrics.commands.get(outcome="invalid") == 2)
            # nothing is sent before the device speaks
            assert await asyncio.to_thread(pty_pair.read_available, 0.3) == b""
            out = []
            for _ in range(2):
                pty_pair.write(encode_rxinfo(dev.reading(), -70, 0))
                raw = await asyncio.to_thread(pty_pair.read_available, 2.0,
                                              lambda b: b.count(b"\xc0") >= 2)
                out += _downlinks(raw, dev.key)
            assert gw.downlink.pending(dev.device_id) == 0
            return out

    frames = asyncio.run(main())
    assert [f.frame_type for f in frames] == [FrameType.CONFIG, FrameType.TIME]
    assert isinstance(frames[0].body, Config)
    assert frames[0].body.interval_s == 600 and frames[0].body.leak_intervals == 48
    assert isinstance(frames[1].body, TimeSync)
    assert abs(frames[1].body.unix_time - time.time()) < 10
    assert frames[1].counter > frames[0].counter  # downlink counters only increase


def test_downlink_counters_survive_a_restart(broker, fleet, write_config, pty_pair,
                                             running_gateway, until):
    cfg = write_config(serial=[pty_pair.path], broker_port=broker.port)
    dev = fleet.devices[1]
    topic = f"meterlink/v1/commands/{dev.device_id}"
    counters = []

    async def one_round() -> None:
        async with running_gateway(cfg) as gw:
            assert await until(lambda: gw.status.broker_connected)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(publish.single, topic, '{"type": "time"}', qos=1,
                                    hostname=broker.host, port=broker.port)
            assert await until(lambda: gw.downlink.pending(dev.device_id) == 1)
            assert await until(lambda: gw.receivers["rx0"].connected)
            pty_pair.write(encode_rxinfo(dev.reading(), -70, 0))
            raw = await asyncio.to_thread(pty_pair.read_available, 2.0,
                                          lambda b: b.count(b"\xc0") >= 2)
            counters.extend(f.counter for f in _downlinks(raw, dev.key))

    asyncio.run(one_round())
    asyncio.run(one_round())
    assert len(counters) == 2 and counters[1] > counters[0]


def test_sighup_reloads_the_key_file(fleet, write_config, keys_file, running_gateway, until,
                                     tmp_path):
    cfg = write_config()
    newcomer = fleet.devices.pop()  # not in the key file at start
    fleet.write_keys(keys_file)
    import socket

    from meterlink.protocol import encode_rxinfo_datagram

    def send(frame: bytes, port: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(encode_rxinfo_datagram(frame, -70, 0), ("127.0.0.1", port))

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            port = gw.udp_ports["net"]
            send(newcomer.reading(), port)
            assert await until(lambda: gw.metrics.frames.get(
                outcome="rejected", reason="unknown_device") == 1)
            keys_file.write_text("{ half written")
            os.kill(os.getpid(), signal.SIGHUP)
            assert await until(lambda: gw.metrics.registry_reloads.get(outcome="failed") == 1)
            assert len(gw.registry) == 2  # the old keys stay in use
            fleet.devices.append(newcomer)
            fleet.write_keys(keys_file)
            os.kill(os.getpid(), signal.SIGHUP)
            assert await until(lambda: gw.metrics.registry_reloads.get(outcome="ok") == 1)
            send(newcomer.reading(), port)
            assert await until(lambda: gw.metrics.frames.get(
                outcome="accepted", reason="reading") == 1)

    asyncio.run(main())
    log = (tmp_path / "gateway.log").read_text()
    assert '"event": "keys_reload_failed"' in log and '"event": "keys_reloaded"' in log


def test_a_new_key_restarts_the_replay_window(fleet, write_config, keys_file, running_gateway,
                                              until):
    """A module given a new key (provisioning --rekey, or a replacement module for the
    same meter) may count from a lower counter: under the new key that is no replay."""
    import socket

    from meterlink.protocol import encode_rxinfo_datagram

    cfg = write_config()
    dev = fleet.devices[0]

    def send(frame: bytes, port: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(encode_rxinfo_datagram(frame, -70, 0), ("127.0.0.1", port))

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            port = gw.udp_ports["net"]
            dev.counter = 100
            send(dev.reading(), port)
            assert await until(lambda: gw.metrics.frames.get(
                outcome="accepted", reason="reading") == 1)
            dev.counter = 0
            send(dev.reading(), port)  # same key, lower counter: a replay
            assert await until(lambda: gw.metrics.frames.get(
                outcome="rejected", reason="replay") == 1)
            dev.key = bytes(reversed(dev.key))
            fleet.write_keys(keys_file)
            os.kill(os.getpid(), signal.SIGHUP)
            assert await until(lambda: gw.metrics.registry_reloads.get(outcome="ok") == 1)
            dev.counter = 0
            send(dev.reading(), port)  # new key, counter 1: accepted
            assert await until(lambda: gw.metrics.frames.get(
                outcome="accepted", reason="reading") == 2)
            assert gw.pipeline.guard.window(dev.device_id).highest == 1
            for _ in range(50):  # the replay state on disk follows once committed
                stored = await gw.db.call(gw.db.outbox.load_replay)
                if stored.get(dev.device_id, (0, 0))[0] == 1:
                    break
                await asyncio.sleep(0.1)
            assert stored[dev.device_id][0] == 1

    asyncio.run(main())
