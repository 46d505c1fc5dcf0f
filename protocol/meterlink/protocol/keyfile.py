"""The gateway key file, `meterlink-keys/1`: the one definition of its format.

Provisioning writes it (`key_file_document`), the gateway and `meterlink frame decode
--keys` read it (`parse_key_file`, `load_key_file`). JSON, file mode 0600:

    {"format": "meterlink-keys/1",
     "devices": [{"device_id": 305419896, "key": "000102...0f", "key_gen": 1,
                  "meter_serial": "WM-2024-001", "pulse_weight": 1, "unit": 1,
                  "interval_s": 900, "board": "nrf51", "firmware_version": 256,
                  "features": []}]}

`key_gen` counts the keys a module has been given: it goes up by one on every re-key,
and a reader that sees it change knows the module may start its counters again.
`board`, `firmware_version` (major * 256 + minor, as in a status frame) and `features`
(the optional features of `meterlink.protocol.features` its firmware has) say what the
module can take. A file written before they were recorded still loads: `board` is then
"" and `firmware_version` 0 (unknown), and `features` is None, for which a reader assumes
ASSUMED_FEATURES (none: no `config` or `time` downlink is sent to such a module until
the file is exported again from the device registry).
Parsing is strict and every error names the entry and the field; a feature name this
reader does not know is kept (a newer firmware may have it) and needs no command.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .constants import UINT32_LIMIT, Unit
from .features import FEATURE_NAME

__all__ = [
    "ASSUMED_FEATURES",
    "KEY_FILE_FORMAT",
    "KeyEntry",
    "KeyFileError",
    "key_file_document",
    "load_key_file",
    "parse_key_file",
]

KEY_FILE_FORMAT = "meterlink-keys/1"

# What a reader assumes of a module whose entry records no features (a file written
# before they were recorded): none of the optional ones. That is what the nRF51 build,
# the one the demo and most provisioning flashed, ships; a module that has more gets
# its commands refused with a hint to export the file again, never sent and ignored.
ASSUMED_FEATURES: frozenset[str] = frozenset()
_BOARD = re.compile(r"[a-z0-9_]{0,32}")


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
    board: str = ""  # "" unknown
    firmware_version: int = 0  # major * 256 + minor; 0 unknown
    features: frozenset[str] | None = None  # None: not recorded (see ASSUMED_FEATURES)

    @property
    def known_features(self) -> frozenset[str]:
        """The features to go by: those recorded, else ASSUMED_FEATURES."""
        return ASSUMED_FEATURES if self.features is None else self.features

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "device_id": self.device_id, "key": self.key.hex(), "key_gen": self.key_gen,
            "meter_serial": self.meter_serial, "pulse_weight": self.pulse_weight,
            "unit": int(self.unit), "interval_s": self.interval_s, "board": self.board,
            "firmware_version": self.firmware_version}
        if self.features is not None:
            out["features"] = sorted(self.features)
        return out


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
    board = raw.get("board", "")
    if not isinstance(board, str) or not _BOARD.fullmatch(board):
        raise KeyFileError(f"{where}.board (device {device_id}): expected a board name "
                           f"like \"nrf51\" (a-z, 0-9, _), got {board!r}")
    version = raw.get("firmware_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= 65535:
        raise KeyFileError(f"{where}.firmware_version (device {device_id}): expected "
                           f"major * 256 + minor, 0..65535, got {version!r}")
    return KeyEntry(device_id=device_id, key=key, meter_serial=serial, board=board,
                    firmware_version=version, features=_features(raw, where, device_id),
                    **values)


def _features(raw: dict[str, Any], where: str, device_id: int) -> frozenset[str] | None:
    if "features" not in raw:
        return None
    names = raw["features"]
    if not isinstance(names, list):
        raise KeyFileError(f"{where}.features (device {device_id}): expected a list of "
                           f"feature names, got {names!r}")
    for name in names:
        if not isinstance(name, str) or not FEATURE_NAME.fullmatch(name):
            raise KeyFileError(f"{where}.features (device {device_id}): {name!r} is not a "
                               "feature name (a-z, 0-9, _)")
    if len(set(names)) != len(names):
        raise KeyFileError(f"{where}.features (device {device_id}): a feature is listed "
                           "twice")
    return frozenset(names)


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
