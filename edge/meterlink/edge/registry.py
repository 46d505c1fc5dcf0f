"""The device registry: the key file that provisioning exports (`meterlink-keys/1`).

Loaded at start and again on SIGHUP; a reload that fails keeps the registry in use, so a
half-written file never takes the gateway's keys away.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY_FILE_FORMAT = "meterlink-keys/1"
UNIT_NAMES = {0: "mL", 1: "L", 2: "m3"}
LITRES_PER_UNIT = {0: 0.001, 1: 1.0, 2: 1000.0}


class RegistryError(ValueError):
    """The key file cannot be used; the message says which entry and why."""


@dataclass(frozen=True)
class Device:
    device_id: int
    key: bytes
    meter_serial: str = ""
    pulse_weight: int = 1
    unit: int = 1
    interval_s: int = 900


def _device(entry: Any, index: int) -> Device:
    where = f"devices[{index}]"
    if not isinstance(entry, dict):
        raise RegistryError(f"{where}: expected an object")
    device_id = entry.get("device_id")
    if isinstance(device_id, bool) or not isinstance(device_id, int) or not (
        0 <= device_id < 2**32
    ):
        raise RegistryError(f"{where}.device_id: expected an integer 0..4294967295, "
                            f"got {device_id!r}")
    key_hex = entry.get("key")
    try:
        key = bytes.fromhex(key_hex) if isinstance(key_hex, str) else b""
    except ValueError:
        key = b""
    if len(key) != 16:
        raise RegistryError(f"{where}.key (device {device_id}): expected 32 hex digits")
    values: dict[str, int] = {}
    for name, default in (("pulse_weight", 1), ("unit", 1), ("interval_s", 900)):
        value = entry.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RegistryError(f"{where}.{name} (device {device_id}): expected an "
                                f"unsigned integer, got {value!r}")
        values[name] = value
    if values["unit"] not in UNIT_NAMES:
        raise RegistryError(f"{where}.unit (device {device_id}): expected 0 (mL), 1 (L) or "
                            f"2 (m3), got {values['unit']}")
    serial = entry.get("meter_serial", "")
    return Device(device_id=device_id, key=key, meter_serial=str(serial), **values)


def parse_registry(data: Any) -> dict[int, Device]:
    if not isinstance(data, dict) or data.get("format") != KEY_FILE_FORMAT:
        raise RegistryError(f'expected a JSON object with "format": "{KEY_FILE_FORMAT}"')
    entries = data.get("devices")
    if not isinstance(entries, list):
        raise RegistryError('"devices": expected a list')
    devices: dict[int, Device] = {}
    for i, entry in enumerate(entries):
        device = _device(entry, i)
        if device.device_id in devices:
            raise RegistryError(f"devices[{i}].device_id: device {device.device_id} is listed "
                                "twice")
        devices[device.device_id] = device
    return devices


class DeviceRegistry:
    """Device id -> key and meter facts, from the key file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.devices: dict[int, Device] = {}
        self.warnings: list[str] = []
        self.rekeyed: set[int] = set()  # devices whose key the last load changed

    def load(self) -> int:
        """(Re)loads the file; on any error raises RegistryError and keeps the old devices."""
        try:
            raw = self.path.read_bytes()
            mode = os.stat(self.path).st_mode
        except OSError as exc:
            raise RegistryError(f"{self.path}: cannot read: {exc.strerror}") from None
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{self.path}: not valid JSON: {exc}") from None
        try:
            devices = parse_registry(data)
        except RegistryError as exc:
            raise RegistryError(f"{self.path}: {exc}") from None
        self.warnings = []
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            self.warnings.append(f"{self.path}: readable by others (mode "
                                 f"{stat.S_IMODE(mode):o}); run chmod 600 on it")
        self.rekeyed = {dev for dev, d in devices.items()
                        if dev in self.devices and self.devices[dev].key != d.key}
        self.devices = devices
        return len(devices)

    def get(self, device_id: int) -> Device | None:
        return self.devices.get(device_id)

    def __len__(self) -> int:
        return len(self.devices)
