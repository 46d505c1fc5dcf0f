"""What the status page and /api/status show: modules heard, receivers, alarms, broker.

Bounded: one entry per registered device that was heard, one per receiver, and the last
50 alarms.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModuleView:
    device_id: int
    meter_serial: str = ""
    frames: int = 0
    last_seen: float = 0.0
    last_kind: str = ""
    register: int | None = None
    volume_l: float | None = None
    unit: str | None = None
    rssi: int | None = None
    receivers: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    battery_pct: int | None = None
    last_key: str = ""


class LiveStatus:
    def __init__(self, gateway_id: str) -> None:
        self.gateway_id = gateway_id
        self.started = time.time()
        self.modules: dict[int, ModuleView] = {}
        self.alarms: deque[dict[str, Any]] = deque(maxlen=50)
        self.broker_connected = False
        self.broker_since: float | None = None
        self.broker_error: str | None = None
        self.outbox_full = False

    def on_message(self, kind: str, data: dict[str, Any], rssi: int | None,
                   receiver: str) -> None:
        """Updates the view from an accepted frame's message body."""
        m = self.modules.get(data["device_id"])
        if m is None:
            m = self.modules[data["device_id"]] = ModuleView(data["device_id"])
        m.meter_serial = data.get("meter_serial", "")
        m.frames += 1
        m.last_seen = time.time()
        m.last_kind = kind
        m.last_key = data["key"]
        m.rssi = rssi
        m.receivers = [receiver]
        if "register" in data:
            m.register = data["register"]
            m.volume_l = data.get("volume_l")
            m.unit = data.get("unit")
        if kind == "reading":
            m.alarms = data.get("alarms", [])
        elif kind == "alarm":
            m.alarms = data.get("active", [])
            self.alarms.appendleft({"device_id": m.device_id, "raised": data.get("raised", []),
                                    "active": m.alarms, "at": data.get("received_at")})
        elif kind == "status":
            m.battery_pct = data.get("battery_pct")
            if "alarms" in data:
                m.alarms = data["alarms"]

    def on_duplicate(self, device_id: int, receiver: str, best_rssi: int | None) -> None:
        m = self.modules.get(device_id)
        if m is not None:
            if receiver not in m.receivers:
                m.receivers.append(receiver)
            m.rssi = best_rssi

    def set_broker(self, connected: bool, error: str | None = None) -> None:
        if connected != self.broker_connected:
            self.broker_since = time.time()
        self.broker_connected = connected
        self.broker_error = error

    def snapshot(self, extra: dict[str, Any]) -> dict[str, Any]:
        modules = sorted(self.modules.values(), key=lambda m: m.device_id)
        return {
            "gateway_id": self.gateway_id,
            "now": time.time(),
            "uptime_s": round(time.time() - self.started, 1),
            "broker": {"connected": self.broker_connected, "since": self.broker_since,
                       "error": self.broker_error},
            "modules": [vars(m) for m in modules],
            "alarms": list(self.alarms),
            **extra,
        }
