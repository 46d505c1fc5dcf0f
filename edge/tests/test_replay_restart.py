"""Protocol 3.5 on the real gateway: the replay sequence of protocol/vectors/v2.json (real
frames of one device, an alarm whose ack is lost, a gateway restart, re-keying) sent over
UDP, each frame giving the outcome the vector states, counted in the metrics, and every
retransmitted alarm acked again, also after the restart."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

from meterlink.edge.app import Gateway
from meterlink.protocol import FrameType, Header, decode_link_datagram, encode_rxinfo_datagram

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "v2.json").read_text()
)
(SEQUENCE,) = VECTORS["replay_sequences"]


def _outcomes(gw: Gateway) -> dict[str, float]:
    f = gw.metrics.frames
    return {
        "accepted": sum(f.get(outcome="accepted", reason=k) for k in ("reading", "alarm",
                                                                      "status")),
        "duplicate": f.get(outcome="duplicate", reason="duplicate"),
        "replay": f.get(outcome="rejected", reason="replay"),
        "bad_mic": f.get(outcome="rejected", reason="bad_mic"),
    }


def _acks(sock: socket.socket) -> list[int]:
    out = []
    while True:
        try:
            data = sock.recv(512)
        except (TimeoutError, BlockingIOError):
            return out
        header = Header.parse(decode_link_datagram(data).payload, uplink=False)
        assert header.frame_type == FrameType.ACK
        out.append(header.counter)


def test_retransmitted_alarm_is_acked_again_after_a_restart(
        broker: Any, fleet: Any, keys_file: Path, write_config: Any, running_gateway: Any,
        until: Any) -> None:
    device = type(fleet.devices[0])(SEQUENCE["device_id"], bytes.fromhex(SEQUENCE["root_key"]))
    fleet.devices[:] = [device]  # the vector's device and key
    fleet.write_keys(keys_file)
    cfg = write_config(broker_port=broker.port, udp=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    steps: list[dict[str, Any]] = SEQUENCE["steps"]
    done: list[tuple[str, str, bool]] = []

    async def run_until_restart(start: int) -> int:
        async with running_gateway(cfg) as gw:
            port = gw.udp_ports["net"]
            for i in range(start, len(steps)):
                step = steps[i]
                if step.get("restart"):
                    return i + 1
                if "rekey" in step:
                    device.key = bytes.fromhex(step["rekey"])
                    fleet.write_keys(keys_file)
                    gw.reload_keys()
                    await asyncio.sleep(0.3)  # the window's removal is written
                    continue
                before = _outcomes(gw)
                sock.sendto(encode_rxinfo_datagram(bytes.fromhex(step["payload"]), -70, 0),
                            ("127.0.0.1", port))
                want = step["outcome"]
                assert await until(lambda w=want, b=before: _outcomes(gw)[w] == b[w] + 1), (
                    step["description"], _outcomes(gw), before)
                await asyncio.sleep(0.25)  # a commit interval and the ack's way back
                acks = _acks(sock)
                assert acks == ([step["counter"] % 65536] if step["ack"] else []), (
                    step["description"], acks)
                assert _outcomes(gw) == {**before, want: before[want] + 1}
                done.append((step["description"], want, bool(acks)))
            return len(steps)

    async def main() -> None:
        start = 0
        while start < len(steps):
            start = await run_until_restart(start)

    asyncio.run(main())
    sock.close()
    restart = next(i for i, s in enumerate(steps) if s.get("restart"))
    after = [d for d in done[restart:] if d[1] == "duplicate"]
    assert after and all(acked for _, _, acked in after)
    print(f"\n{len(done)} frames through the gateway, restart after {restart}: "
          + ", ".join(f"{o}{'+ack' if a else ''}" for _, o, a in done))
