"""Bodies as JSON-ready objects keyed by the spec's field names (CLI, test vectors)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .bodies import BODY_TYPES, Body, body_to_map
from .constants import AlarmFlags, FrameType, Unit

__all__ = ["body_from_fields", "body_to_fields", "map_to_json", "parse_alarm_flags", "parse_unit"]


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value


def body_to_fields(body: Body) -> dict[str, Any]:
    """Field name -> value; enums as ints, deltas as a list, absent optionals left out.

    Keys the type does not define go under "extra", keyed by the key number as a string.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(body):
        value = getattr(body, f.name)
        if f.name == "extra":
            if value:
                out["extra"] = {str(k): _json_value(v) for k, v in value.items()}
        elif value is not None:
            out[f.name] = _json_value(value)
    return out


def map_to_json(m: Mapping[int, Any]) -> dict[str, Any]:
    """A body map with the key numbers as strings and byte strings as hex."""
    return {str(k): _json_value(m[k]) for k in sorted(m)}


def body_map_json(body: Body) -> dict[str, Any]:
    return map_to_json(body_to_map(body))


def parse_unit(value: Any) -> Unit:
    if isinstance(value, str) and not value.isdigit():
        try:
            return Unit[value.upper().replace("³", "3")]
        except KeyError:
            raise ValueError(f"unit {value!r}: use 0/ML, 1/L or 2/M3") from None
    try:
        return Unit(int(value))
    except ValueError:
        raise ValueError(f"unit {value!r}: use 0/ML, 1/L or 2/M3") from None


def parse_alarm_flags(value: Any) -> AlarmFlags:
    """An int, a list of flag names, or names joined by '|' or ','."""
    if isinstance(value, int) and not isinstance(value, bool):
        return AlarmFlags(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() or text.lower().startswith("0x"):
            return AlarmFlags(int(text, 0))
        value = [p for p in text.replace(",", "|").split("|") if p.strip()]
    flags = AlarmFlags(0)
    for name in value:
        try:
            flags |= AlarmFlags[str(name).strip().upper()]
        except KeyError:
            known = ", ".join(f.name.lower() for f in AlarmFlags if f.name)
            raise ValueError(f"alarm flag {name!r} is unknown; known: {known}") from None
    return flags


def _parse_deltas(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        return tuple(int(p, 0) for p in value.replace(" ", "").split(",") if p)
    return tuple(int(v) for v in value)


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, str):
        return int(value, 0)
    if isinstance(value, int):
        return value
    raise ValueError(f"{value!r} is not an integer")


def body_from_fields(frame_type: FrameType, fields: Mapping[str, Any]) -> Body:
    """Build a body from field names; ValueError naming the field if anything is wrong."""
    cls = BODY_TYPES[FrameType(frame_type)]
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in known:
            allowed = ", ".join(sorted(known - {"extra"})) or "none"
            raise ValueError(
                f"{FrameType(frame_type).name.lower()} has no field {name!r}; fields: {allowed}"
            )
        try:
            if name == "extra":
                kwargs[name] = {  # byte strings as hex, as body_to_fields writes them
                    int(k): bytes.fromhex(v) if isinstance(v, str) else v
                    for k, v in dict(value).items()
                }
            elif name == "unit":
                kwargs[name] = parse_unit(value)
            elif name in ("alarms", "raised"):
                kwargs[name] = parse_alarm_flags(value)
            elif name == "deltas":
                kwargs[name] = _parse_deltas(value)
            else:
                kwargs[name] = _parse_int(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"field {name}: {exc}") from None
    try:
        return cls(**kwargs)
    except TypeError as exc:
        missing = sorted(
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.name not in kwargs
        )
        raise ValueError(
            f"{FrameType(frame_type).name.lower()} needs field(s) {', '.join(missing)}"
        ) from exc
