"""The gateway key file, `meterlink-keys/1`: the one definition of its format.

Provisioning writes it (`key_file_document`), the gateway and `meterlink frame decode
--keys` read it (`parse_key_file`, `load_key_file`). JSON, file mode 0600:

    {"format": "meterlink-keys/1",
     "devices": [{"device_id": 305419896, "key": "000102...0f", "key_gen": 1,
                  "meter_serial": "WM-2024-001", "pulse_weight": 1, "unit": 1,
                  "interval_s": 900}]}

`key_gen` counts the keys a module has been given: it goes up by one on every re-key,
and a reader that sees it change knows the module may start its counters again.
Parsing is strict and every error names the entry and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .constants import UINT32_LIMIT, Unit

__all__ = [
    "KEY_FILE_FORMAT",
    "KeyEntry",
    "KeyFileError",
    "key_file_document",
    "load_key_file",
    "parse_key_file",
]

KEY_FILE_FORMAT = "meterlink-keys/1"


class KeyFileError(ValueError):
    """The key file cannot be used; the message says which entry and why."""


@dataclass(frozen=True)
class KeyEntry:
    """One module in the key file."""

    device_id: int
    key: bytes
    key_gen: int = 1
    meter_serial: str = ""
    pulse_weight: int = 1
    unit: int = Unit.L
    interval_s: int = 900

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "key": self.key.hex(), "key_gen": self.key_gen,
                "meter_serial": self.meter_serial, "pulse_weight": self.pulse_weight,
                "unit": int(self.unit), "interval_s": self.interval_s}


# Optional unsigned fields and their defaults (KeyEntry's).
_UINTS = (("key_gen", 1), ("pulse_weight", 1), ("unit", int(Unit.L)), ("interval_s", 900))


def _entry(raw: Any, index: int) -> KeyEntry:
    where = f"devices[{index}]"
    if not isinstance(raw, dict):
        raise KeyFileError(f"{where}: expected an object, got {type(raw).__name__}")
    device_id = raw.get("device_id")
    if isinstance(device_id, bool) or not isinstance(device_id, int) or not (
            0 <= device_id < UINT32_LIMIT):
        raise KeyFileError(f"{where}.device_id: expected an integer 0..{UINT32_LIMIT - 1}, "
                           f"got {device_id!r}")
    key_hex = raw.get("key")
    try:
        key = bytes.fromhex(key_hex) if isinstance(key_hex, str) else b""
    except ValueError:
        key = b""
    if len(key) != 16:
        raise KeyFileError(f"{where}.key (device {device_id}): expected 32 hex digits")
    values: dict[str, int] = {}
    for name, default in _UINTS:
        value = raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not (
                0 <= value < UINT32_LIMIT):
            raise KeyFileError(f"{where}.{name} (device {device_id}): expected an "
                               f"unsigned integer, got {value!r}")
        values[name] = value
    if values["unit"] not in set(Unit):
        *first, last = (f"{u.value} ({u.symbol})" for u in Unit)
        raise KeyFileError(f"{where}.unit (device {device_id}): expected {', '.join(first)} "
                           f"or {last}, got {values['unit']}")
    serial = raw.get("meter_serial", "")
    if not isinstance(serial, str):
        raise KeyFileError(f"{where}.meter_serial (device {device_id}): expected a string")
    return KeyEntry(device_id=device_id, key=key, meter_serial=serial, **values)


def parse_key_file(data: Any) -> dict[int, KeyEntry]:
    """The entries of a decoded key file by device id; KeyFileError naming the entry."""
    if not isinstance(data, dict) or data.get("format") != KEY_FILE_FORMAT:
        raise KeyFileError(f'expected a JSON object with "format": "{KEY_FILE_FORMAT}"')
    raw_entries = data.get("devices")
    if not isinstance(raw_entries, list):
        raise KeyFileError('"devices": expected a list')
    entries: dict[int, KeyEntry] = {}
    for i, raw in enumerate(raw_entries):
        entry = _entry(raw, i)
        if entry.device_id in entries:
            raise KeyFileError(f"devices[{i}].device_id: device {entry.device_id} is listed "
                               "twice")
        entries[entry.device_id] = entry
    return entries


def load_key_file(path: str | Path) -> dict[int, KeyEntry]:
    """Reads and parses a key file; KeyFileError starting with the path."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: not valid JSON: {exc}") from None
    try:
        return parse_key_file(data)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None


def key_file_document(entries: Iterable[KeyEntry]) -> Mapping[str, Any]:
    """The key file's content for these modules, sorted by device id."""
    return {"format": KEY_FILE_FORMAT,
            "devices": [e.to_json() for e in sorted(entries, key=lambda e: e.device_id)]}
