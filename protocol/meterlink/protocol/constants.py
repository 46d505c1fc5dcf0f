"""Numbers fixed by wire format v2: frame and link types, units, alarm flags, status
codes, limits, and the names the gateway publishes them under (docs/mqtt.md)."""

from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = [
    "AUTH_HEADER_LEN",
    "COUNTER_SEARCH",
    "HEADER_LEN",
    "MAX_AGE_S",
    "MAX_ALARM_FLAGS",
    "MAX_BODY",
    "MAX_DELTAS",
    "MAX_DOWNLINK",
    "MAX_INTERVAL_S",
    "MAX_LINK_FRAME",
    "MAX_PULSE_WEIGHT",
    "MAX_UPLINK",
    "MIC_LEN",
    "MIN_INTERVAL_S",
    "ON_AIR_COUNTER_MOD",
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

PROTOCOL_VERSION = 2
HEADER_LEN = 7  # on air: vt, device id, the low 16 bits of the frame counter
AUTH_HEADER_LEN = 9  # authenticated: vt, device id, the whole 32-bit frame counter
MIC_LEN = 4
OVERHEAD = HEADER_LEN + MIC_LEN
MAX_UPLINK = 51
MAX_DOWNLINK = 64
MAX_BODY = MAX_DOWNLINK - OVERHEAD  # 53; 4 AES blocks at most (CTR block index 1..4)
# The most deltas any reading can carry in 51 bytes (spec 8): 23 one-byte deltas with
# every fixed field at its smallest; 24 would need a 2-byte byte-string head.
MAX_DELTAS = 23
MAX_LINK_FRAME = 300  # bytes between two ENDs, before unescaping
UINT32_LIMIT = 1 << 32
ON_AIR_COUNTER_MOD = 1 << 16
# A receiver with no window for a device tries this many high parts of the counter
# (counters below 2^20: 30 years of one frame every 15 minutes), spec 3.4.
COUNTER_SEARCH = 16

# Limits that make "at least one delta fits a reading" true (spec 8). The configuration
# owner (issue 11) must not allow more; reconcile there.
MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 86_400
MAX_PULSE_WEIGHT = 65_535
MAX_AGE_S = 65_535  # an older reading is sent with 65535: "this old or older"
MAX_ALARM_FLAGS = 255


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


# Status frame `reason` and safe-mode `error` codes (spec 4.4, 4.8) and their published names.
STATUS_REASONS = {0: "periodic", 1: "boot", 2: "safe_mode"}
SAFE_MODE_ERRORS = {1: "config_missing", 2: "config_unreadable", 3: "config_invalid",
                    4: "store_corrupt"}
