"""Frame bodies as typed values, and their CBOR maps (spec section 4)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from .constants import (
    MAX_AGE_S,
    MAX_ALARM_FLAGS,
    MAX_DELTAS,
    MAX_INTERVAL_S,
    MAX_PULSE_WEIGHT,
    MIN_INTERVAL_S,
    UINT32_LIMIT,
    AlarmFlags,
    FrameType,
    Unit,
)
from .errors import MalformedError
from .varint import decode_varints, encode_varints

__all__ = [
    "BODY_TYPES",
    "KEY_NAMES",
    "RANGES",
    "STATUS_PRIORITY",
    "Ack",
    "Alarm",
    "Body",
    "Config",
    "Reading",
    "Status",
    "TimeSync",
    "body_from_map",
    "body_to_map",
]

# Every key of spec section 4, by number. Key 5 is a byte string, all others uint.
KEY_NAMES: Mapping[int, str] = MappingProxyType(
    {
        1: "register",
        2: "pulse_weight",
        3: "unit",
        4: "interval_s",
        5: "deltas",
        6: "age_s",
        7: "interval_seq",
        8: "alarms",
        9: "battery_pct",
        10: "fw_version",
        11: "resets",
        12: "raised",
        13: "reverse",
        14: "reason",
        15: "error",
        16: "acked",
        20: "leak_intervals",
        21: "burst_pulses",
        22: "burst_intervals",
        23: "backflow_pulses",
        30: "unix_time",
    }
)
KEY_NUMBERS: Mapping[str, int] = MappingProxyType({v: k for k, v in KEY_NAMES.items()})
DELTAS_KEY = 5

# Spec 4.1: known keys whose values are bounded more tightly than uint32; a decoder
# rejects a value outside as `malformed`, an encoder refuses it.
RANGES: Mapping[int, tuple[int, int]] = MappingProxyType(
    {
        2: (1, MAX_PULSE_WEIGHT),
        3: (0, 2),
        4: (MIN_INTERVAL_S, MAX_INTERVAL_S),
        6: (0, MAX_AGE_S),
        8: (0, MAX_ALARM_FLAGS),
        9: (0, 100),
        12: (0, MAX_ALARM_FLAGS),
        14: (0, 2),
    }
)

# Spec 4.4: a status frame carries its required keys, then these optional keys in this
# order, each only if the frame still fits 51 bytes with it (skipped keys are left out).
STATUS_PRIORITY: tuple[int, ...] = (15, 8, 4, 20, 21, 22, 23, 1, 13, 2, 3)


def _empty() -> Mapping[int, Any]:
    return MappingProxyType({})


def _key(number: int) -> dict[str, int]:
    return {"key": number}


class _BodyBase:
    """Normalises field values of the body dataclasses (enums, tuples, read-only extra)."""

    FRAME_TYPE: ClassVar[FrameType]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "extra":
                value = MappingProxyType(dict(value))
            elif f.name == "unit":
                if value not in Unit._value2member_map_:
                    raise ValueError(f"unit {value!r}: must be 0 (mL), 1 (L) or 2 (m3)")
                value = Unit(value)
            elif f.name in ("alarms", "raised"):
                value = AlarmFlags(value)
            elif f.name == "deltas":
                value = tuple(value)
            object.__setattr__(self, f.name, value)


@dataclass(frozen=True)
class Reading(_BodyBase):
    FRAME_TYPE: ClassVar[FrameType] = FrameType.READING
    register: int = field(metadata=_key(1))
    pulse_weight: int = field(metadata=_key(2))
    unit: Unit = field(metadata=_key(3))
    interval_s: int = field(metadata=_key(4))
    deltas: tuple[int, ...] = field(metadata=_key(5))
    age_s: int = field(metadata=_key(6))
    interval_seq: int = field(metadata=_key(7))
    alarms: AlarmFlags = field(metadata=_key(8))
    extra: Mapping[int, Any] = field(default_factory=_empty, hash=False)


@dataclass(frozen=True)
class Alarm(_BodyBase):
    FRAME_TYPE: ClassVar[FrameType] = FrameType.ALARM
    register: int = field(metadata=_key(1))
    interval_seq: int = field(metadata=_key(7))
    alarms: AlarmFlags = field(metadata=_key(8))
    raised: AlarmFlags = field(metadata=_key(12))
    reverse: int | None = field(default=None, metadata=_key(13))
    extra: Mapping[int, Any] = field(default_factory=_empty, hash=False)


@dataclass(frozen=True)
class Status(_BodyBase):
    FRAME_TYPE: ClassVar[FrameType] = FrameType.STATUS
    battery_pct: int = field(metadata=_key(9))
    fw_version: int = field(metadata=_key(10))
    resets: int = field(metadata=_key(11))
    reason: int = field(metadata=_key(14))
    register: int | None = field(default=None, metadata=_key(1))
    pulse_weight: int | None = field(default=None, metadata=_key(2))
    unit: Unit | None = field(default=None, metadata=_key(3))
    interval_s: int | None = field(default=None, metadata=_key(4))
    alarms: AlarmFlags | None = field(default=None, metadata=_key(8))
    reverse: int | None = field(default=None, metadata=_key(13))
    error: int | None = field(default=None, metadata=_key(15))
    leak_intervals: int | None = field(default=None, metadata=_key(20))
    burst_pulses: int | None = field(default=None, metadata=_key(21))
    burst_intervals: int | None = field(default=None, metadata=_key(22))
    backflow_pulses: int | None = field(default=None, metadata=_key(23))
    extra: Mapping[int, Any] = field(default_factory=_empty, hash=False)


@dataclass(frozen=True)
class Ack(_BodyBase):
    """An ack has no body: zero bytes of ciphertext."""

    FRAME_TYPE: ClassVar[FrameType] = FrameType.ACK


@dataclass(frozen=True)
class Config(_BodyBase):
    FRAME_TYPE: ClassVar[FrameType] = FrameType.CONFIG
    interval_s: int | None = field(default=None, metadata=_key(4))
    leak_intervals: int | None = field(default=None, metadata=_key(20))
    burst_pulses: int | None = field(default=None, metadata=_key(21))
    burst_intervals: int | None = field(default=None, metadata=_key(22))
    backflow_pulses: int | None = field(default=None, metadata=_key(23))
    extra: Mapping[int, Any] = field(default_factory=_empty, hash=False)


@dataclass(frozen=True)
class TimeSync(_BodyBase):
    FRAME_TYPE: ClassVar[FrameType] = FrameType.TIME
    unix_time: int = field(metadata=_key(30))
    extra: Mapping[int, Any] = field(default_factory=_empty, hash=False)


Body = Reading | Alarm | Status | Ack | Config | TimeSync

BODY_TYPES: Mapping[FrameType, type[Body]] = MappingProxyType(
    {cls.FRAME_TYPE: cls for cls in (Reading, Alarm, Status, Ack, Config, TimeSync)}
)


def _keyed_fields(cls: type[Body]) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if "key" in f.metadata]


def _is_required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _check_uint(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an unsigned integer, got {value!r}")
    if not 0 <= value < UINT32_LIMIT:
        raise ValueError(f"{name} = {value} is outside 0 .. 2^32-1")
    return int(value)


def _encode_value(number: int, value: Any) -> Any:
    name = KEY_NAMES.get(number, f"key {number}")
    if number == DELTAS_KEY:
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        deltas = tuple(value)
        if len(deltas) > MAX_DELTAS:  # the decoder refuses such a map (spec 8)
            raise ValueError(f"deltas: {len(deltas)} intervals; at most {MAX_DELTAS} fit a "
                             "reading (spec 8)")
        return encode_varints(_check_uint("delta", d) for d in deltas)
    if number in KEY_NAMES:
        value = _check_uint(name, value)
        low, high = RANGES.get(number, (0, UINT32_LIMIT - 1))
        if not low <= value <= high:
            raise ValueError(f"{name} = {value} is outside {low} .. {high} (spec 4.1)")
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return _check_uint(name, value)


def body_to_map(body: Body) -> dict[int, Any]:
    """The CBOR map of a body: int keys, deltas as varint bytes; ValueError if invalid."""
    cls = type(body)
    if cls not in BODY_TYPES.values():
        raise ValueError(f"not a frame body: {body!r}")
    m: dict[int, Any] = {}
    for f in _keyed_fields(cls):
        value = getattr(body, f.name)
        if value is not None:
            m[f.metadata["key"]] = _encode_value(f.metadata["key"], value)
    for number, value in getattr(body, "extra", {}).items():
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ValueError(f"extra key {number!r} must be an unsigned integer")
        if number in m:
            raise ValueError(f"extra key {number} duplicates the field {KEY_NAMES[number]}")
        m[number] = _encode_value(number, value)
    return m


def _decode_value(number: int, value: Any) -> Any:
    """Type and range check of a known key's value (spec 4.1: else malformed)."""
    name = KEY_NAMES[number]
    if number == DELTAS_KEY:
        if not isinstance(value, bytes):
            kind = type(value).__name__
            raise MalformedError(f"deltas (key 5) must be a byte string, got {kind}")
        deltas = decode_varints(value)
        if len(deltas) > MAX_DELTAS:
            raise MalformedError(f"deltas: {len(deltas)} intervals; at most {MAX_DELTAS}")
        return deltas
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedError(f"{name} (key {number}) must be an unsigned integer, got {value!r}")
    if number == 3 and value not in Unit._value2member_map_:
        raise MalformedError(f"unit (key 3) = {value}: must be 0 (mL), 1 (L) or 2 (m3)")
    low, high = RANGES.get(number, (0, UINT32_LIMIT - 1))
    if not low <= value <= high:
        raise MalformedError(f"{name} (key {number}) = {value} is outside {low} .. {high}")
    return value


def body_from_map(frame_type: FrameType, m: Mapping[int, Any]) -> Body:
    """Build the body of `frame_type` from a decoded map; MalformedError if it does not fit."""
    try:
        cls = BODY_TYPES[FrameType(frame_type)]
    except ValueError:
        raise MalformedError(f"frame type {frame_type} has no body definition") from None
    if cls is Ack:
        if m:
            raise MalformedError(f"an ack has no body, got keys {sorted(m)}")
        return Ack()
    values: dict[str, Any] = {}
    extra: dict[int, Any] = {}
    fields_by_key = {f.metadata["key"]: f for f in _keyed_fields(cls)}
    for number, value in m.items():
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise MalformedError(f"body key {number!r} is not an unsigned integer")
        decoded = _decode_value(number, value) if number in KEY_NAMES else value
        if number in fields_by_key:
            values[fields_by_key[number].name] = decoded
        else:
            extra[number] = decoded
    missing = [
        f"{f.name} (key {f.metadata['key']})"
        for f in fields_by_key.values()
        if _is_required(f) and f.name not in values
    ]
    if missing:
        raise MalformedError(
            f"{FrameType(frame_type).name.lower()} body lacks required {', '.join(missing)}"
        )
    built: Body = cls(**values, extra=extra)  # type: ignore[call-arg]  # Ack returned above
    return built
