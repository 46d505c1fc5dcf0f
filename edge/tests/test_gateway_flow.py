"""End to end in one process: serial (pty) and UDP ingress -> verify -> outbox -> a real
Mosquitto; acks back on the serial line; commands as downlinks."""

from __future__ import annotations

import asyncio
import random
import socket
import time

from meterlink.protocol import (
    FrameType,
    LinkDecoder,
    LinkFrame,
    decode_frame,
    encode_rxinfo,
    encode_rxinfo_datagram,
)


def _udp_send(port: int, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data, ("127.0.0.1", port))


def test_readings_alarm_status_reach_the_broker(broker, central, fleet, write_config,
                                                 pty_pair, running_gateway, until):
    cfg = write_config(serial=[pty_pair.path], broker_port=broker.port)
    dev = fleet.devices[0]

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            assert await until(lambda: gw.receivers["rx0"].connected)
            pty_pair.write(encode_rxinfo(dev.reading(deltas=(7, 0, 2)), -71, 24))
            pty_pair.write(encode_rxinfo(dev.status(), -72, 20))
            assert await until(lambda: gw.metrics.published.total() >= 2)

    received_at = time.time()
    asyncio.run(main())
    reading = central.wait_for(lambda m: m.topic == f"meterlink/v1/readings/{dev.device_id}")
    body = reading.json()
    assert body["key"] == f"{dev.device_id}:1"
    assert body["device_id"] == dev.device_id
    assert body["register"] == dev.register and body["volume_l"] == float(body["register"])
    assert body["unit"] == "L" and body["pulse_weight"] == 1
    assert [i["pulses"] for i in body["intervals"]] == [7, 0, 2]
    assert [i["seq"] for i in body["intervals"]] == [11, 10, 9]
    assert [i["litres"] for i in body["intervals"]] == [7.0, 0.0, 2.0]
    assert body["rssi"] == -71 and body["receivers"] == ["rx0"]
    assert reading.qos == 1
    end0 = body["intervals"][0]["end"]
    # the newest interval ended age_s (4 s) before reception, the next one 900 s earlier
    from datetime import datetime

    t0 = datetime.fromisoformat(end0.replace("Z", "+00:00")).timestamp()
    t1 = datetime.fromisoformat(body["intervals"][1]["end"].replace("Z", "+00:00")).timestamp()
    assert abs(t0 - (received_at - 4)) < 5 and abs((t0 - t1) - 900) < 0.01
    status = central.wait_for(lambda m: m.topic == f"meterlink/v1/status/{dev.device_id}").json()
    assert status["battery_pct"] == 87 and status["fw_version"] == "1.2"
    assert status["reason"] == "boot" and status["key"] == f"{dev.device_id}:2"
    gw_status = central.wait_for(lambda m: m.topic == "meterlink/v1/gateways/gw-test/status"
                                 and m.json()["state"] == "offline")
    assert gw_status.json()["reason"] == "shutdown"


def test_alarm_is_acked_on_the_serial_line_after_it_is_durable(broker, central, fleet,
                                                               write_config, pty_pair,
                                                               running_gateway, until):
    cfg = write_config(serial=[pty_pair.path], broker_port=broker.port)
    dev = fleet.devices[1]
    alarm = dev.alarm()

    async def main() -> list[LinkFrame]:
        async with running_gateway(cfg) as gw:
            assert await until(lambda: gw.receivers["rx0"].connected)
            sent = time.monotonic()
            pty_pair.write(encode_rxinfo(alarm, -90, 4))
            raw = await asyncio.to_thread(pty_pair.read_available, 2.0,
                                          lambda b: b.count(b"\xc0") >= 2)
            elapsed = time.monotonic() - sent
            assert gw.snapshot()["backlog"]["messages"] + gw.metrics.published.total() >= 1
            print(f"ack after {elapsed * 1000:.0f} ms")
            # a retransmission (same bytes) is acked again and not stored twice
            pty_pair.write(encode_rxinfo(alarm, -88, 4))
            raw += await asyncio.to_thread(pty_pair.read_available, 2.0,
                                           lambda b: b.count(b"\xc0") >= 2)
            assert await until(lambda: gw.metrics.published.total() >= 1)
            assert gw.metrics.duplicates.total() == 1
            frames = [f for f in LinkDecoder().feed(raw) if isinstance(f, LinkFrame)]
            return frames

    frames = asyncio.run(main())
    assert len(frames) == 2
    for f in frames:
        ack = decode_frame(f.payload, dev.key)
        assert ack.frame_type == FrameType.ACK and ack.counter == dev.counter
    # PUBACK came back to the gateway; the subscriber's copy may still be on its way
    central.wait_for(lambda m: m.topic == f"meterlink/v1/alarms/{dev.device_id}")
    alarms = central.on_topic(f"meterlink/v1/alarms/{dev.device_id}")
    assert len({m.json()["key"] for m in alarms}) == 1
    body = alarms[0].json()
    assert body["raised"] == ["leak"] and body["active"] == ["leak"]


def test_same_frame_from_two_receivers_is_one_reading_with_both(broker, central, fleet,
                                                                write_config, pty_pair,
                                                                running_gateway, until):
    cfg = write_config(serial=[pty_pair.path], broker_port=broker.port,
                       outbox="commit_interval_ms = 200")
    dev = fleet.devices[0]
    frame = dev.reading()

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            assert await until(lambda: gw.receivers["rx0"].connected)
            pty_pair.write(encode_rxinfo(frame, -95, 0))
            _udp_send(gw.udp_ports["net"], encode_rxinfo_datagram(frame, -60, 30))
            assert await until(lambda: gw.metrics.published.total() >= 1)
            await asyncio.sleep(0.3)
            assert gw.metrics.frames.get(outcome="duplicate", reason="duplicate") == 1

    asyncio.run(main())
    msgs = central.on_topic(f"meterlink/v1/readings/{dev.device_id}")
    assert len(msgs) == 1
    body = msgs[0].json()
    assert body["rssi"] == -60 and sorted(body["receivers"]) == ["net", "rx0"]


def test_forged_replayed_unknown_and_garbage_are_rejected(broker, central, fleet,
                                                          write_config, pty_pair,
                                                          running_gateway, until):
    cfg = write_config(serial=[pty_pair.path], broker_port=broker.port)
    dev = fleet.devices[0]
    good1, good2 = dev.reading(), dev.reading()
    forged = bytearray(dev.reading())
    forged[12] ^= 0x01  # one ciphertext bit: the MIC no longer matches
    dev.counter = 0  # a different frame re-using counter 1: a replay
    replayed = dev.reading(deltas=(99,))
    stranger = Device(0x7EADBEEF, b"\x01" * 16).reading()
    wrong_key = Device(dev.device_id, b"\x02" * 16, counter=50).reading()
    rng = random.Random(7)
    garbage = bytes(rng.randrange(256) for _ in range(3000))

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            assert await until(lambda: gw.receivers["rx0"].connected)
            pty_pair.write(encode_rxinfo(good1, -70, 0))
            pty_pair.write(garbage)
            pty_pair.write(b"\xc0" + b"\x02\x10\x20\x00\x01\xc0")  # bad CRC
            pty_pair.write(b"\xc0" + b"\x55" * 400 + b"\xc0")  # oversized link frame
            for payload in (bytes(forged), replayed, stranger, wrong_key, good1, b"\x10" * 5):
                pty_pair.write(encode_rxinfo(payload, -70, 0))
            pty_pair.write(encode_rxinfo(good2, -70, 0))
            assert await until(lambda: gw.metrics.published.total() >= 2)
            await asyncio.sleep(0.2)
            m = gw.metrics.frames
            assert m.get(outcome="rejected", reason="bad_mic") == 2  # forged, wrong key
            assert m.get(outcome="rejected", reason="replay") == 1
            assert m.get(outcome="rejected", reason="unknown_device") == 1
            assert m.get(outcome="rejected", reason="truncated") >= 1
            assert m.get(outcome="duplicate", reason="duplicate") == 1
            assert gw.metrics.link_errors.total() >= 2
            assert gw.receivers["rx0"].connected

    asyncio.run(main())
    keys = [m.json()["key"] for m in central.on_topic("meterlink/v1/readings/")]
    assert keys == [f"{dev.device_id}:1", f"{dev.device_id}:2"]


class Device:  # a device absent from the key file, or with the wrong key
    def __init__(self, device_id: int, key: bytes, counter: int = 0) -> None:
        self.device_id, self.key, self.counter = device_id, key, counter

    def reading(self) -> bytes:
        from meterlink.protocol import AlarmFlags, Reading, Unit, encode_frame

        self.counter += 1
        body = Reading(register=1, pulse_weight=1, unit=Unit.L, interval_s=900, deltas=(1,),
                       age_s=0, interval_seq=1, alarms=AlarmFlags(0))
        return encode_frame(FrameType.READING, self.device_id, self.counter, body, self.key)


def test_pipeline_returns_a_verdict_for_every_frame_and_counts_it_once(fleet, write_config):
    """`Pipeline.handle` says what became of each frame; the counts follow the verdicts
    (recorded in one place), link errors included."""
    import io
    import time

    from meterlink.edge.app import Gateway
    from meterlink.edge.config import load_config
    from meterlink.edge.ingress import Heard
    from meterlink.edge.logs import Logger

    dev = fleet.devices[0]
    good = dev.reading()
    forged = bytearray(dev.reading())
    forged[12] ^= 0x01
    stranger = Device(0x7EADBEEF, b"\x01" * 16).reading()

    def heard(payload: bytes) -> Heard:
        return Heard("net", payload, -70, None, time.time(), time.monotonic())

    async def main() -> list[tuple[str, str, int | None]]:
        gw = Gateway(load_config(write_config()), log=Logger("info", io.StringIO()))
        try:
            verdicts = [gw.pipeline.handle(heard(p))
                        for p in (good, good, bytes(forged), stranger, b"\x10" * 5)]
            verdicts.append(gw.pipeline.link_error("net", "bad_crc"))
            m = gw.metrics
            assert m.frames.get(outcome="duplicate", reason="duplicate") == 1
            assert m.duplicates.get(receiver="net") == 1
            assert m.frames.get(outcome="rejected", reason="bad_mic") == 1
            assert m.frames.get(outcome="rejected", reason="unknown_device") == 1
            assert m.frames.get(outcome="rejected", reason="bad_crc") == 1
            assert m.link_errors.get(receiver="net", reason="bad_crc") == 1
            assert gw.snapshot()["receivers"][0]["link_errors"] == 1
            await gw.pipeline.flush()
            assert m.frames.get(outcome="accepted", reason="reading") == 1
            return [(v.outcome, v.reason, v.device_id) for v in verdicts]
        finally:
            gw.close()

    got = asyncio.run(main())
    assert got[:4] == [("accepted", "reading", dev.device_id),
                       ("duplicate", "duplicate", dev.device_id),
                       ("rejected", "bad_mic", dev.device_id),
                       ("rejected", "unknown_device", 0x7EADBEEF)]
    assert got[4][0] == "rejected" and got[4][2] is None
    assert got[5] == ("rejected", "bad_crc", None)
