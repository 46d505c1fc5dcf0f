"""The outbox on a small filesystem (a tmpfs mounted by the test): the size policy keeps
the newest backlog and drops only what it must; SQLite really running out of space (disk
full, broker down then up) is survived without a restart, without a republish loop, and
ends by itself when space returns; check-config refuses limits the filesystem cannot meet.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meterlink.hil.broker import Mosquitto, free_port
from meterlink.protocol import encode_rxinfo_datagram

MIB = 1024 * 1024


def _config(tools, tmp_path: Path, outbox_dir: Path, fleet, broker_port: int,
            outbox: str = "") -> Path:
    keys = fleet.write_keys(tmp_path / "keys.json")
    text = tools.config_text(tmp_path, keys, broker_port=broker_port, outbox=outbox)
    text = text.replace(f'path = "{tmp_path / "gateway.sqlite"}"',
                        f'path = "{outbox_dir / "gateway.sqlite"}"')
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(text)
    return cfg


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.mark.parametrize("min_free", [2 * MIB, None], ids=["floor_2MiB", "all_defaults"])
def test_drop_oldest_keeps_the_newest_readings_within_the_free_space_floor(
        min_free, tmp_path, tools, running_gateway, until):
    """8 MiB filesystem, broker down, 4,000 readings of ~1.5 KB: the policy drops only
    what the floor needs. With every outbox key at its default the floor (64 MiB) cannot be
    met: a tenth of the filesystem is used instead (before: only the newest reading was
    ever kept)."""
    fleet = tools.make_fleet(50)
    n = 4_000
    datagrams, keys = [], []
    for i in range(n):
        dev = fleet.devices[i % len(fleet.devices)]
        datagrams.append(encode_rxinfo_datagram(dev.reading(deltas=tuple(range(20))), -70, 0))
        keys.append(f"{dev.device_id}:{dev.counter}")
    floor = min_free if min_free is not None else 8 * MIB // 10
    with tools.small_filesystem(8) as mnt:
        cfg = _config(tools, tmp_path, mnt, fleet, free_port(),  # broker down
                      outbox="" if min_free is None else f"min_free_bytes = {min_free}")

        async def main() -> dict[str, float]:
            async with running_gateway(cfg) as gw:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                addr = ("127.0.0.1", gw.udp_ports["net"])
                for i in range(0, n, 500):
                    for d in datagrams[i:i + 500]:
                        sock.sendto(d, addr)
                    done = min(n, i + 500)
                    assert await until(lambda done=done: gw.metrics.frames.total() >= done, 30)
                sock.close()
                await gw.pipeline.flush()
                assert gw.pipeline.commit_ok, gw.pipeline.last_commit_error
                return {"dropped": gw.metrics.dropped.get(reason="dropped_oldest"),
                        "free": _free(mnt), "bytes": gw.db.outbox.bytes}

        figures = asyncio.run(main())
        db = sqlite3.connect(mnt / "gateway.sqlite")
        kept = [f"{d}:{c}" for d, c in db.execute(
            "SELECT device_id, counter FROM outbox ORDER BY id")]
        file_bytes = (mnt / "gateway.sqlite").stat().st_size
        db.close()
    print(f"\n{n} readings into an 8 MiB filesystem, floor {floor / MIB:.1f} MiB: {len(kept)} "
          f"survive (the newest), {figures['dropped']:.0f} dropped; {figures['free'] / MIB:.1f} "
          f"MiB free at the end; database file {file_bytes / MIB:.1f} MiB for "
          f"{figures['bytes'] / MIB:.1f} MiB of messages")
    assert kept == keys[-len(kept):], "the survivors are not the newest readings"
    assert len(kept) + figures["dropped"] == n
    assert figures["dropped"] > 0 and len(kept) >= 1000
    assert figures["free"] <= floor + MIB, "the policy dropped far more than the floor needs"
    assert figures["free"] >= floor - MIB, "the free-space floor was not kept"


def test_check_config_refuses_limits_the_filesystem_cannot_meet(tmp_path, tools):
    fleet = tools.make_fleet(1)
    meterlink = str(Path(sys.executable).with_name("meterlink"))
    with tools.small_filesystem(32) as mnt:
        cfg = _config(tools, tmp_path, mnt, fleet, 1883)  # every outbox key at its default
        out = subprocess.run([meterlink, "gateway", "check-config", "--config", str(cfg)],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 2, out
        assert "outbox.min_free_bytes" in out.stderr and "32.0 MiB" in out.stderr
        print(f"\n{out.stderr.strip()}")
        cfg = _config(tools, tmp_path, mnt, fleet, 1883,
                      outbox=f"min_free_bytes = {4 * MIB}")
        out = subprocess.run([meterlink, "gateway", "check-config", "--config", str(cfg)],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out
        assert "warning:" in out.stderr and "outbox.max_bytes" in out.stderr
        cfg = _config(tools, tmp_path, mnt, fleet, 1883,
                      outbox=f"min_free_bytes = {4 * MIB}\nmax_bytes = {8 * MIB}")
        out = subprocess.run([meterlink, "gateway", "check-config", "--config", str(cfg)],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and "warning" not in out.stderr, out


def _fill(mnt: Path, leave: int) -> Path:
    """A filler file taking all but `leave` bytes of the filesystem."""
    filler = mnt / "filler"
    with filler.open("wb") as f:
        chunk = b"\0" * MIB
        while _free(mnt) > leave + MIB:
            f.write(chunk)
            f.flush()
        f.write(b"\0" * max(0, _free(mnt) - leave))
    return filler


def test_disk_full_with_the_broker_down_then_up_is_survived_without_restart(tmp_path, tools):
    """SQLite itself runs out of space (min_free_bytes 0, a filler file takes the rest):
    the gateway stays up, /healthz answers 503, nothing unwritten is acked; when the broker
    returns, messages are published but cannot be deleted: no crash, no republish loop;
    once space returns everything resumes without a restart."""
    fleet = tools.make_fleet(60)
    log = tmp_path / "gw.log"
    broker = Mosquitto(tmp_path / "late-broker", port=free_port(), persistence=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    acked: set[str] = set()
    alarms: dict[str, bytes] = {}
    central = None

    def read_acks() -> None:
        while True:
            try:
                data = sock.recv(512)
            except TimeoutError:
                return
            acked.add(tools.ack_key(data))

    def send(frames: list[bytes]) -> None:
        for f in frames:
            sock.sendto(encode_rxinfo_datagram(f, -70, 0), ("127.0.0.1", port))
        read_acks()

    with tools.small_filesystem(16) as mnt:
        cfg = _config(tools, tmp_path, mnt, fleet, broker.port,
                      outbox='min_free_bytes = 0\npolicy = "refuse_readings"')
        proc, ready = tools.start_gateway(cfg, log)
        port, http = ready["udp_ports"]["net"], ready["http_port"]
        try:
            backlog = [fleet.devices[i % 20].reading(deltas=tuple(range(24)))
                       for i in range(1000)]
            for i in range(0, len(backlog), 250):
                send(backlog[i:i + 250])
                time.sleep(0.1)
            deadline = time.monotonic() + 20
            while tools.scrape(http)["meterlink_backlog_messages"] < len(backlog):
                assert time.monotonic() < deadline, "the backlog was not stored"
                time.sleep(0.1)
            filler = _fill(mnt, 0)
            sent = len(backlog)
            status = 200
            deadline = time.monotonic() + 30
            while status == 200 and time.monotonic() < deadline:
                frames = [fleet.devices[i % 20].reading(deltas=tuple(range(24)))
                          for i in range(50)]
                for dev in fleet.devices:  # alarms are stored whatever the policy
                    frames.append(dev.alarm())
                    alarms[f"{dev.device_id}:{dev.counter}"] = frames[-1]
                send(frames)
                sent += len(frames)
                time.sleep(0.1)
                status, body = tools.http_get(http, "/healthz")
            assert status == 503, "the disk never filled"
            assert "full" in json.loads(body)["error"]
            assert proc.poll() is None
            unacked_full = {k for k in alarms if k not in acked}
            assert unacked_full, "an alarm was acked while nothing could be written"
            # the broker returns while the disk is still full
            broker.start()
            central = tools.PersistentCentral(broker.host, broker.port)
            time.sleep(2.5)  # reconnect (backoff <= 1 s), publish, deletes fail and retry
            assert proc.poll() is None, "the gateway died when the broker returned"
            during = len(central.on_topic("meterlink/v1/"))
            # space returns: the modules retry their alarms
            filler.unlink()
            for _ in range(10):
                send([alarms[k] for k in alarms if k not in acked])
                if alarms.keys() <= acked:
                    break
                time.sleep(0.3)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                status, _ = tools.http_get(http, "/healthz")
                backlog = tools.scrape(http)["meterlink_backlog_messages"]
                if status == 200 and backlog == 0:
                    break
                time.sleep(0.2)
            assert status == 200 and backlog == 0, (status, backlog)
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            sock.close()
            if central is not None:
                central.close()
            broker.stop()
    published = central.on_topic("meterlink/v1/alarms/") + central.on_topic(
        "meterlink/v1/readings/")
    per_key: dict[str, int] = {}
    for m in published:
        per_key[m["key"]] = per_key.get(m["key"], 0) + 1
    text = log.read_text()
    print(f"\n{sent} frames sent until /healthz said 503; {during} published while the disk "
          f"was full; {len(per_key)} keys published, at most {max(per_key.values())} times "
          f"each; alarms {len(alarms)}, all acked after space returned: "
          f"{alarms.keys() <= acked}; delete failures logged: "
          f"{text.count('outbox_delete_failed')}")
    assert alarms.keys() <= acked, "an alarm was never acked once space returned"
    assert alarms.keys() <= set(per_key), "an acked alarm was not published"
    assert max(per_key.values()) <= 2, "messages were republished in a loop"
    assert "Traceback" not in text and text.count('"event": "ready"') == 1
