"""`meterlink gateway run` as a real process, killed with SIGKILL in the middle of a stream
of readings and alarms, then restarted on the same state file."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import time

from meterlink.protocol import FrameType, Header, decode_link_datagram, encode_rxinfo_datagram


def test_kill9_mid_stream_loses_no_acked_alarm_and_publishes_no_key_twice_differently(
        broker, durable_central, fleet, write_config, tmp_path, gateway_process):
    start_gateway = gateway_process
    cfg = write_config(broker_port=broker.port, udp=True)
    log = tmp_path / "gw.log"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.002)
    alarms: dict[str, bytes] = {}  # key -> frame bytes (the module keeps them until acked)
    acked: set[str] = set()
    readings: dict[str, int] = {}
    sent_while_down: set[str] = set()

    def pump(port: int, n: int, kill_after: int | None = None,
             proc: subprocess.Popen[bytes] | None = None) -> None:
        for i in range(n):
            dev = fleet.devices[i % 3]
            if i % 10 == 0:
                frame = dev.alarm()
                alarms[f"{dev.device_id}:{dev.counter}"] = frame
            else:
                frame = dev.reading()
                readings[f"{dev.device_id}:{dev.counter}"] = dev.register
                if proc is not None and proc.returncode is not None:
                    sent_while_down.add(f"{dev.device_id}:{dev.counter}")
            sock.sendto(encode_rxinfo_datagram(frame, -70, 0), ("127.0.0.1", port))
            drain_acks()
            if kill_after is not None and i == kill_after and proc is not None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            time.sleep(0.003)

    def drain_acks() -> None:
        while True:
            try:
                data = sock.recv(512)
            except (TimeoutError, BlockingIOError):
                return
            link = decode_link_datagram(data)
            header = Header.parse(link.payload, uplink=False)
            dev_id, ctr = header.device_id, header.counter  # counters stay below 2^16 here
            assert header.frame_type == FrameType.ACK
            acked.add(f"{dev_id}:{ctr}")

    proc, ready = start_gateway(cfg, log)
    pump(ready["udp_ports"]["net"], 600, kill_after=400, proc=proc)
    assert proc.returncode == -signal.SIGKILL
    acked_before_kill = set(acked)
    db = sqlite3.connect(tmp_path / "gateway.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()

    proc, ready = start_gateway(cfg, log)
    port = ready["udp_ports"]["net"]
    # the modules retransmit every alarm not yet acked (same bytes), a few times
    for _ in range(5):
        for key, frame in alarms.items():
            if key not in acked:
                sock.sendto(encode_rxinfo_datagram(frame, -70, 0), ("127.0.0.1", port))
        time.sleep(0.3)
        drain_acks()
    # an old frame heard again after the restart is a duplicate, never a new reading
    old = next(iter(alarms.values()))
    sock.sendto(encode_rxinfo_datagram(old, -70, 0), ("127.0.0.1", port))
    pump(port, 60)
    time.sleep(0.5)
    drain_acks()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert alarms.keys() <= acked, f"alarms never acked: {sorted(alarms.keys() - acked)}"

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = {m["key"] for m in durable_central.on_topic("meterlink/v1/alarms/")}
        if alarms.keys() <= got:
            break
        time.sleep(0.1)
    published_alarms = durable_central.on_topic("meterlink/v1/alarms/")
    assert alarms.keys() <= {m["key"] for m in published_alarms}
    assert acked_before_kill <= {m["key"] for m in published_alarms}
    for m in durable_central.on_topic("meterlink/v1/readings/"):
        assert m["register"] == readings[m["key"]]  # one key, one reading
    lost = set(readings) - sent_while_down - {
        m["key"] for m in durable_central.on_topic("meterlink/v1/readings/")}
    print(f"alarms {len(alarms)} all acked and published; readings {len(readings)}, "
          f"{len(sent_while_down)} sent while the gateway was dead, "
          f"{len(lost)} in flight at the kill (not yet committed, never acked)")
    text = log.read_text()
    assert '"event": "stopped"' in text and "Traceback" not in text
