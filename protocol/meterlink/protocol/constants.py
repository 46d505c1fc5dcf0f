"""Numbers fixed by wire format v1: frame and link types, units, alarm flags, status
codes, limits, and the names the gateway publishes them under (docs/mqtt.md)."""

from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = [
    "HEADER_LEN",
    "MAX_BODY",
    "MAX_DELTAS",
    "MAX_DOWNLINK",
    "MAX_LINK_FRAME",
    "MAX_UPLINK",
    "MIC_LEN",
    "OVERHEAD",
    "PROTOCOL_VERSION",
    "SAFE_MODE_ERRORS",
    "STATUS_REASONS",
    "UINT32_LIMIT",
    "AlarmFlags",
    "FrameType",
    "LinkType",
    "Unit",
]

PROTOCOL_VERSION = 1
HEADER_LEN = 9
MIC_LEN = 4
OVERHEAD = HEADER_LEN + MIC_LEN
MAX_UPLINK = 51
MAX_DOWNLINK = 64
MAX_BODY = 64  # 4 AES blocks: the CTR block index is 1..4
MAX_DELTAS = 48
MAX_LINK_FRAME = 300  # bytes between two ENDs, before unescaping
UINT32_LIMIT = 1 << 32


class FrameType(IntEnum):
    READING = 0
    ALARM = 1
    STATUS = 2
    ACK = 8
    CONFIG = 9
    TIME = 10

    @property
    def is_uplink(self) -> bool:
        """Bit 3 of the type is the direction: 0 uplink, 1 downlink."""
        return not self.value & 0x08

    @property
    def direction(self) -> int:
        """The `dir` byte of the CTR counter block: 0 uplink, 1 downlink."""
        return 0 if self.is_uplink else 1

    @property
    def confirmed(self) -> bool:
        """Only alarms are retried until acked."""
        return self is FrameType.ALARM

    @property
    def max_payload(self) -> int:
        return MAX_UPLINK if self.is_uplink else MAX_DOWNLINK


class LinkType(IntEnum):
    DATA = 1
    RXINFO = 2


class Unit(IntEnum):
    ML = 0
    L = 1
    M3 = 2

    @property
    def symbol(self) -> str:
        """The unit as published and as installers type it: mL, L, m3."""
        return _UNIT_SYMBOLS[self]

    @property
    def millilitres(self) -> int:
        """One of this unit in millilitres (exact)."""
        return _UNIT_IN_ML[self]

    def litres(self, value: float) -> float:
        """Convert `value` in this unit to litres."""
        return value * _UNIT_IN_ML[self] / 1000


_UNIT_SYMBOLS = {Unit.ML: "mL", Unit.L: "L", Unit.M3: "m3"}
_UNIT_IN_ML = {Unit.ML: 1, Unit.L: 1000, Unit.M3: 1_000_000}


class AlarmFlags(IntFlag):
    LEAK = 1
    BURST = 2
    BACKFLOW = 4
    TAMPER = 8
    LOW_BATTERY = 16
    UNEXPECTED_RESET = 32

    def names(self) -> list[str]:
        """The raised alarms' names, lowest bit first: ["leak", "backflow"]."""
        return [f.name.lower() for f in AlarmFlags if f.name and self & f]


# Status frame `reason` and safe-mode `error` codes (spec 4.3) and their published names.
STATUS_REASONS = {0: "periodic", 1: "boot", 2: "safe_mode"}
SAFE_MODE_ERRORS = {1: "config_missing", 2: "config_unreadable", 3: "config_invalid",
                    4: "store_corrupt"}
