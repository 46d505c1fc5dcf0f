"""The radio channel between module UARTs and gateway receiver ptys. Boards here are pty
pairs (PtyBoard) written to as the firmware would: no QEMU needed."""

from __future__ import annotations

import json
import os
import select
import time
from pathlib import Path

import pytest

from meterlink.hil.pty_board import PtyBoard
from meterlink.hil.radio import RadioChannel, TraceEntry
from meterlink.protocol import LinkDecoder, LinkFrame, LinkType, encode_link


def payload(device: int, counter: int) -> bytes:
    """A radio payload shaped like an uplink (header, 8 body bytes, MIC); content is
    irrelevant to the channel."""
    return bytes([0x10]) + device.to_bytes(4, "big") + counter.to_bytes(4, "big") + bytes(12)


class ReceiverPort:
    """The gateway's end of a receiver pty: decodes what arrives."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        self.decoder = LinkDecoder()
        self.frames: list[LinkFrame] = []

    def drain(self, until: int, timeout: float = 10.0) -> list[LinkFrame]:
        """Reads frames until `until` have arrived in all (or timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.frames) < until and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                for item in self.decoder.feed(os.read(self.fd, 65536)):
                    assert isinstance(item, LinkFrame), item
                    self.frames.append(item)
        return self.frames

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        os.close(self.fd)


def wait_trace(channel: RadioChannel, n: int, timeout: float = 10.0) -> list[TraceEntry]:
    """Waits until n frames have been decided (duplicate copies not counted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(e.outcome != "duplicated" for e in channel.trace) >= n:
            break
        time.sleep(0.01)
    channel.settle()
    return list(channel.trace)


def run_uplinks(tmp_path: Path, seed: int, frames: int, **impairments: float) -> RadioChannel:
    """Sends `frames` uplinks from one PtyBoard through a channel; returns it closed."""
    trace_path = tmp_path / f"trace-{seed}-{time.monotonic_ns()}.jsonl"
    with PtyBoard("m1") as module, RadioChannel(
        seed=seed, trace_path=trace_path, **impairments
    ) as channel:
        channel.attach_board(module)
        rx = ReceiverPort(channel.add_receiver("rx1"))
        try:
            for i in range(frames):
                module.send(encode_link(LinkType.DATA, payload(0x1234, i)))
                if i % 50 == 49:  # let the channel keep up; nothing is timed
                    wait_trace(channel, i + 1)
            wait_trace(channel, frames)
            rx.drain(channel.stats["up"].delivered)
        finally:
            rx.close()
    return channel


def outcomes(trace: list[TraceEntry]) -> list[tuple[str, str]]:
    """What happened to each frame; the interleaving of entries depends on thread timing
    (a loss is traced when decided, a delivery when written), so compare sorted."""
    return sorted((e.payload_hex, e.outcome) for e in trace)


def test_same_seed_gives_the_same_decisions_and_loss_matches_the_setting(
    tmp_path: Path,
) -> None:
    a = run_uplinks(tmp_path, seed=7, frames=1000, loss=0.3)
    b = run_uplinks(tmp_path, seed=7, frames=1000, loss=0.3)
    c = run_uplinks(tmp_path, seed=8, frames=1000, loss=0.3)
    assert outcomes(a.trace) == outcomes(b.trace)
    assert outcomes(a.trace) != outcomes(c.trace)
    up = a.stats["up"]
    assert up.offered == 1000
    assert up.lost + up.delivered == 1000
    assert 0.25 < up.lost / up.offered < 0.35  # 1000 draws: 3.5 standard deviations
    # the trace file holds the same entries as JSON lines
    lines = a.trace_path.read_text().splitlines() if a.trace_path else []
    assert [json.loads(x)["outcome"] for x in lines] == [e.outcome for e in a.trace]


def test_duplicates_and_corruption_are_counted_and_visible_at_the_receiver(
    tmp_path: Path,
) -> None:
    with PtyBoard("m1") as module, RadioChannel(seed=3, duplicate=0.2, corrupt=0.2) as channel:
        channel.attach_board(module, rssi=-101)
        rx = ReceiverPort(channel.add_receiver("rx1"))
        sent = [payload(0xABCDEF01, i) for i in range(300)]
        for i, p in enumerate(sent):
            module.send(encode_link(LinkType.DATA, p))
            if i % 50 == 49:
                wait_trace(channel, i + 1)
        wait_trace(channel, 300)
        up = channel.stats["up"]
        frames = rx.drain(up.delivered)
        rx.close()
    assert up.lost == 0 and up.offered == 300
    assert 30 < up.duplicated < 90 and 30 < up.corrupted < 90
    assert len(frames) == up.delivered == 300 + up.duplicated
    assert all(f.link_type == LinkType.RXINFO and f.rssi == -101 for f in frames)
    # deliveries are traced in the order they are written: line them up
    deliveries = [e for e in channel.trace if e.outcome in ("delivered", "corrupted", "duplicated")]
    assert len(deliveries) == len(frames)
    first_copy: dict[bytes, bytes] = {}
    for entry, frame in zip(deliveries, frames, strict=True):
        offered = bytes.fromhex(entry.payload_hex)
        flipped = int.from_bytes(offered, "big") ^ int.from_bytes(frame.payload, "big")
        if entry.outcome == "delivered":
            assert frame.payload == offered
        elif entry.outcome == "corrupted":
            assert bin(flipped).count("1") == 1  # exactly one bit flipped
        else:  # a second copy of the frame as first delivered, corrupted or not
            assert frame.payload == first_copy[offered]
        first_copy.setdefault(offered, frame.payload)


def test_downlinks_reach_only_the_addressed_board_and_receivers_hear_their_boards() -> None:
    with PtyBoard("a") as a, PtyBoard("b") as b, RadioChannel() as channel:
        channel.attach_board(a)
        channel.attach_board(b)
        near = ReceiverPort(channel.add_receiver("near", hears=["a"]))
        far = ReceiverPort(channel.add_receiver("far"))
        a.send(encode_link(LinkType.DATA, payload(1, 0)))
        b.send(encode_link(LinkType.DATA, payload(2, 0)))
        assert [f.payload[1:5] for f in far.drain(2)] != []
        assert len(near.drain(1)) == 1 and near.frames[0].payload == payload(1, 0)
        assert {f.payload for f in far.frames} == {payload(1, 0), payload(2, 0)}
        # the gateway transmits to device 2 through the far receiver
        down = bytes([0x18]) + (2).to_bytes(4, "big") + bytes(8)
        far.send(encode_link(LinkType.DATA, down))
        b_port = ReceiverPort(b.port_path)
        got = b_port.drain(1)
        assert got[0].link_type == LinkType.DATA and got[0].payload == down
        # to a device no board has sent from: not delivered, traced as no_route
        far.send(encode_link(LinkType.DATA, bytes([0x18]) + (99).to_bytes(4, "big") + bytes(8)))
        entry = channel.wait_for(lambda e: e.outcome == "no_route")
        assert entry.direction == "down" and entry.receiver == "far"
        assert channel.stats["down"].delivered == 1
        for port in (near, far, b_port):
            port.close()


def test_nothing_crosses_while_the_radio_is_down() -> None:
    with PtyBoard("a") as a, RadioChannel() as channel:
        channel.attach_board(a)
        rx = ReceiverPort(channel.add_receiver("rx"))
        channel.set_radio(False)
        a.send(encode_link(LinkType.DATA, payload(1, 0)))
        channel.wait_for(lambda e: e.outcome == "radio_down")
        rx.send(encode_link(LinkType.DATA, bytes([0x18]) + (1).to_bytes(4, "big") + bytes(8)))
        channel.wait_for(lambda e: e.direction == "down" and e.outcome == "radio_down")
        channel.set_radio(True)
        a.send(encode_link(LinkType.DATA, payload(1, 1)))
        assert [f.payload for f in rx.drain(1)] == [payload(1, 1)]
        assert channel.stats["up"].lost == 1 and channel.stats["down"].lost == 1
        rx.close()


def test_impossible_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="probability"):
        RadioChannel(loss=1.5)
    with pytest.raises(ValueError, match="delay_s"):
        RadioChannel(delay_s=(0.2, 0.1))
