"""The self-test: after the reset, watch for the module's own frames arriving at a local
receiver (serial link frames with RXINFO) or at a gateway (its MQTT topics), and report
PASS or FAIL with the signal strength.

Start the watcher *before* resetting the module: the boot status frame is sent at once.
"""

from __future__ import annotations

import json
import queue
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import serial

from meterlink.protocol.errors import ProtocolError
from meterlink.protocol.frame import Header, decode_received
from meterlink.protocol.link import LinkFrame
from meterlink.protocol.link_stream import LinkDecoder

MQTT_PREFIX = "meterlink/v1"


@dataclass(frozen=True)
class Heard:
    """One frame of the module, as the receiver or the gateway reported it."""

    kind: str  # "status" | "reading" | "alarm"
    rssi: int | None
    snr_db: float | None
    register: int | None
    via: str
    details: dict[str, Any] = field(default_factory=dict)


class Watcher(Protocol):
    def poll(self, timeout: float) -> list[Heard]: ...
    def close(self) -> None: ...


class ReceiverWatcher:
    """Reads link frames from a receiver's serial port and keeps this device's frames
    whose MIC checks with its key (so a neighbour's module cannot pass the test)."""

    def __init__(self, path: str, device_id: int, key: bytes) -> None:
        self.path = path
        self._device_id = device_id
        self._key = key
        self._decoder = LinkDecoder()
        self._port = serial.Serial(path, 115200, timeout=0)
        self.rejected = 0

    def poll(self, timeout: float) -> list[Heard]:
        self._port.timeout = timeout
        data = self._port.read(4096)
        heard = []
        for item in self._decoder.feed(data):
            if isinstance(item, LinkFrame):
                got = self._heard(item)
                if got is not None:
                    heard.append(got)
        return heard

    def _heard(self, link: LinkFrame) -> Heard | None:
        try:
            if Header.parse(link.payload).device_id != self._device_id:
                return None
            # a re-provisioned module keeps its counters: restore their high half (3.4)
            frame = decode_received(link.payload, self._key, uplink=True)
        except ProtocolError:
            self.rejected += 1
            return None
        body = frame.body
        snr = link.snr_qdb / 4 if link.snr_qdb is not None else None
        return Heard(
            kind=frame.frame_type.name.lower(),
            rssi=link.rssi,
            snr_db=snr,
            register=getattr(body, "register", None),
            via=f"receiver {self.path}",
            details={"counter": frame.counter},
        )

    def close(self) -> None:
        self._port.close()


class MqttWatcher:
    """Subscribes to the gateway's status/readings/alarms topics for this device."""

    def __init__(self, host: str, port: int, device_id: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self._queue: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._subscribed = queue.Queue[int]()
        self.where = f"MQTT {host}:{port}"
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = lambda _c, _u, msg: self._queue.put(
            (msg.topic, bytes(msg.payload))
        )
        self._client.on_subscribe = lambda _c, _u, mid, _rc, _p: self._subscribed.put(mid)
        self._client.connect(host, port, keepalive=30)
        self._client.loop_start()
        topics = [(f"{MQTT_PREFIX}/{k}/{device_id}", 1) for k in ("status", "readings", "alarms")]
        self._client.subscribe(topics)
        try:
            self._subscribed.get(timeout=10)
        except queue.Empty:
            self.close()
            raise OSError(f"the broker at {host}:{port} did not confirm the subscription") from None

    def poll(self, timeout: float) -> list[Heard]:
        try:
            topic, payload = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        try:
            msg = json.loads(payload)
        except ValueError:
            return []
        kind = topic.split("/")[-2]
        kind = {"readings": "reading", "alarms": "alarm"}.get(kind, kind)
        snr = msg.get("snr_db", msg.get("snr"))
        return [
            Heard(
                kind=kind,
                rssi=msg.get("rssi"),
                snr_db=snr if isinstance(snr, int | float) else None,
                register=msg.get("register"),
                via=self.where,
                details=msg,
            )
        ]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@dataclass(frozen=True)
class SelfTestResult:
    passed: bool
    heard: list[Heard]
    message: str


WEAK_RSSI_DBM = -120  # below this a LoRa SF12 link has little margin left


def run_selftest(
    watcher: Watcher,
    *,
    initial_register: int,
    timeout: float,
    want_reading: bool = False,
) -> SelfTestResult:
    """Waits for a status frame (or, with want_reading, a reading frame) of the module and
    checks that the register it reports is not below the one provisioned."""
    deadline = time.monotonic() + timeout
    heard: list[Heard] = []
    while time.monotonic() < deadline:
        for h in watcher.poll(min(0.5, max(0.0, deadline - time.monotonic()))):
            heard.append(h)
            if h.register is not None and h.register < initial_register:
                return SelfTestResult(
                    False,
                    heard,
                    f"FAIL: the module reports register {h.register}, below the "
                    f"{initial_register} provisioned",
                )
            done = h.kind == "reading" if want_reading else h.kind in ("status", "reading")
            if done:
                return SelfTestResult(True, heard, "PASS: " + describe(h))
    what = "a reading" if want_reading else "a status or reading frame"
    seen = f" (heard only: {', '.join(h.kind for h in heard)})" if heard else ""
    return SelfTestResult(False, heard, f"FAIL: no {what} within {timeout:.0f} s{seen}")


def describe(h: Heard) -> str:
    parts = [f"{h.kind} frame heard via {h.via}"]
    if h.rssi is not None:
        quality = "weak" if h.rssi < WEAK_RSSI_DBM else "good"
        parts.append(f"RSSI {h.rssi} dBm ({quality})")
    if h.snr_db is not None:
        parts.append(f"SNR {h.snr_db:+.1f} dB")
    if h.register is not None:
        parts.append(f"register {h.register}")
    return ", ".join(parts)
