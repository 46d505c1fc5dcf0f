"""Fixtures for the gateway tests: devices with keys, key files, configs, frames, ptys,
a real Mosquitto and an MQTT subscriber standing in for the central system."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import tty
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from meterlink.edge.app import Gateway
from meterlink.edge.config import load_config
from meterlink.edge.logs import Logger
from meterlink.hil.broker import Mosquitto
from meterlink.hil.central import Central
from meterlink.protocol import (
    Alarm,
    AlarmFlags,
    FrameType,
    Header,
    Reading,
    Status,
    Unit,
    decode_link_datagram,
    encode_frame,
)
from meterlink.protocol.features import ALL_FEATURES


@dataclass
class Device:
    device_id: int
    key: bytes
    counter: int = 0
    register: int = 1000
    seq: int = 10

    # what its key-file entry records of the firmware (None: not recorded, as in a file
    # written before they were); every optional feature unless a test says otherwise
    board: str = "rp2"
    features: frozenset[str] | None = ALL_FEATURES

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device_id": self.device_id, "key": self.key.hex(),
                               "meter_serial": f"WM-{self.device_id}", "pulse_weight": 1,
                               "unit": 1, "interval_s": 900}
        if self.features is not None:
            out.update(board=self.board, firmware_version=0x0100,
                       features=sorted(self.features))
        return out

    def reading(self, deltas: tuple[int, ...] = (3, 0, 5), age_s: int = 4,
                alarms: int = 0) -> bytes:
        self.counter += 1
        self.seq += 1
        self.register += deltas[0]
        body = Reading(register=self.register, pulse_weight=1, unit=Unit.L, interval_s=900,
                       deltas=deltas, age_s=age_s, interval_seq=self.seq,
                       alarms=AlarmFlags(alarms))
        return encode_frame(FrameType.READING, self.device_id, self.counter, body, self.key)

    def alarm(self, raised: int = AlarmFlags.LEAK) -> bytes:
        self.counter += 1
        body = Alarm(register=self.register, interval_seq=self.seq, alarms=AlarmFlags(raised),
                     raised=AlarmFlags(raised))
        return encode_frame(FrameType.ALARM, self.device_id, self.counter, body, self.key)

    def status(self) -> bytes:
        self.counter += 1
        body = Status(battery_pct=87, fw_version=0x0102, resets=1, reason=1,
                      register=self.register)
        return encode_frame(FrameType.STATUS, self.device_id, self.counter, body, self.key)


@dataclass
class Fleet:
    devices: list[Device] = field(default_factory=list)

    def write_keys(self, path: Path) -> Path:
        path.write_text(json.dumps({"format": "meterlink-keys/1",
                                    "devices": [d.entry() for d in self.devices]}))
        path.chmod(0o600)
        return path


@pytest.fixture
def fleet() -> Fleet:
    return Fleet([Device(0x10000000 + i, secrets.token_bytes(16)) for i in range(3)])


@pytest.fixture
def keys_file(tmp_path: Path, fleet: Fleet) -> Path:
    return fleet.write_keys(tmp_path / "keys.json")


def config_text(tmp_path: Path, keys_file: Path, *, serial: list[str] = (),  # type: ignore[assignment]
                udp: bool = True, broker_port: int = 1, extra: str = "",
                outbox: str = "", mqtt: str = "") -> str:
    lines = ['[gateway]', 'id = "gw-test"', f'keys_file = "{keys_file}"']
    for i, port in enumerate(serial):
        lines += ["[[serial]]", f'name = "rx{i}"', f'port = "{port}"']
    if udp:
        lines += ["[[udp]]", 'name = "net"', 'host = "127.0.0.1"', "port = 0"]
    lines += ["[mqtt]", 'host = "127.0.0.1"', f"port = {broker_port}", "backoff_min_s = 0.1",
              "backoff_max_s = 1.0", mqtt]
    lines += ["[outbox]", f'path = "{tmp_path / "gateway.sqlite"}"', outbox]
    lines += ["[http]", 'host = "127.0.0.1"', "port = 0", extra]
    return "\n".join(lines) + "\n"


@pytest.fixture
def write_config(tmp_path: Path, keys_file: Path) -> Callable[..., Path]:
    def write(**kwargs: Any) -> Path:
        path = tmp_path / "gateway.toml"
        path.write_text(config_text(tmp_path, keys_file, **kwargs))
        return path
    return write


@dataclass
class Pty:
    """A pty pair: the gateway opens `path`; the test writes link frames to `master`."""

    master: int
    slave: int
    path: str

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def read_available(self, timeout: float = 2.0, until: Callable[[bytes], bool] | None = None
                       ) -> bytes:
        import select

        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.05)
            if r:
                out += os.read(self.master, 4096)
                if until is not None and until(out):
                    break
        return out


@pytest.fixture
def pty_pair() -> Iterator[Pty]:
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    p = Pty(master, slave, os.ttyname(slave))
    yield p
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker with persistence, so that sessions survive its restart."""
    b = Mosquitto(tmp_path / "broker", persistence=True)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def central(broker: Mosquitto) -> Iterator[Central]:
    c = Central(broker.host, broker.port)
    c.start()
    yield c
    c.close()




@contextlib.asynccontextmanager
async def _running(config: Path, log_path: Path | None = None) -> AsyncIterator[Gateway]:
    stream = (log_path or config.with_suffix(".log")).open("a")
    gw = Gateway(load_config(config), log=Logger("debug", stream), drain_s=1.0)
    task = asyncio.create_task(gw.run())
    ready = asyncio.create_task(gw.ready.wait())
    await asyncio.wait({task, ready}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # raises the startup error
    assert gw.ready.is_set(), "gateway did not become ready in 15 s"
    try:
        yield gw
    finally:
        gw.stopping.set()
        await asyncio.wait_for(task, 30)
        stream.close()


@pytest.fixture
def running_gateway() -> Callable[..., contextlib.AbstractAsyncContextManager[Gateway]]:
    """`async with running_gateway(config_path) as gw:` runs the gateway in this loop."""
    return _running


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


@pytest.fixture
def until() -> Callable[..., Any]:
    """`await until(lambda: cond, timeout)`: polls; True when cond became true."""
    return wait_until


class PersistentCentral:
    """A central-system subscriber with a persistent session (clean_session false), so
    that the broker queues QoS 1 messages for it across its own restarts."""

    def __init__(self, host: str, port: int) -> None:
        import threading
        import uuid

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes]] = []
        self.stamped: list[tuple[str, bytes, float]] = []  # with time.time() of receipt
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"central-{uuid.uuid4().hex[:8]}",
                                  clean_session=False)
        self.client.on_connect = lambda c, *a: c.subscribe("meterlink/v1/#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        deadline = time.monotonic() + 10
        while not self.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # SUBACK

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self.stamped.append((msg.topic, bytes(msg.payload), time.time()))

    def on_topic(self, prefix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(p) for t, p in self.messages if t.startswith(prefix)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def durable_central(broker: Mosquitto) -> Iterator[PersistentCentral]:
    c = PersistentCentral(broker.host, broker.port)
    yield c
    c.close()


# -- the gateway as a real process (kill -9, overload, full disk) -------------------------

METERLINK = [str(Path(sys.executable).with_name("meterlink"))]


def start_gateway(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """`meterlink gateway run` as a child process; returns it and its ready line."""
    from meterlink.hil.processes import spawn_child

    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        proc = spawn_child([*METERLINK, "gateway", "run", "--config", str(config)],
                           stdout=out, stderr=out)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in log.read_bytes()[offset:].decode(errors="replace").splitlines():
            if '"event": "ready"' in line:
                return proc, json.loads(line)
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited {proc.returncode}: {log.read_text()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no ready line in 20 s")


@pytest.fixture
def gateway_process() -> Callable[..., tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    return start_gateway


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET on the gateway's HTTP server; 503 is an answer too."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(port: int) -> dict[str, float]:
    """/metrics as {series with labels: value}."""
    _, text = http_get(port, "/metrics")
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value.replace("+Inf", "inf"))
    return out


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def make_fleet(n: int) -> Fleet:
    return Fleet([Device(0x20000000 + i, secrets.token_bytes(16)) for i in range(n)])


@contextlib.contextmanager
def small_filesystem(size_mib: int) -> Iterator[Path]:
    """A tmpfs of `size_mib` mounted for the test (root, as CI runs) and removed after."""
    import subprocess as sp
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mnt = Path(tempfile.mkdtemp(prefix="meterlink-smallfs-"))
    sp.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(mnt)],
           check=True)
    try:
        yield mnt
    finally:
        sp.run(["umount", "-l", str(mnt)], check=False)
        mnt.rmdir()


def ack_key(datagram: bytes) -> str:
    """`device:counter` of the ack in a UDP datagram from the gateway (the on-air counter:
    these tests keep each device's counters below 2^16)."""
    header = Header.parse(decode_link_datagram(datagram).payload, uplink=False)
    assert header.frame_type == FrameType.ACK, header
    return f"{header.device_id}:{header.counter}"


@pytest.fixture
def tools() -> Any:
    """The process-level helpers above, for tests that drive `meterlink gateway run`."""
    import types

    return types.SimpleNamespace(start_gateway=start_gateway, http_get=http_get,
                                 scrape=scrape, rss_mib=rss_mib, make_fleet=make_fleet,
                                 config_text=config_text, small_filesystem=small_filesystem,
                                 ack_key=ack_key,
                                 PersistentCentral=PersistentCentral)
