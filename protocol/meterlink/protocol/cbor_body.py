"""CBOR body maps of wire format v2: one strict decoder and one deterministic encoder.

v2 bodies use a small, deterministic subset of CBOR (RFC 8949 section 4.2.1): one
definite-length map whose keys are unsigned integers in strictly ascending order and whose
values are unsigned integers below 2^32 or byte strings of at most 64 bytes, every head in
its shortest form, nothing after the map. Anything else is `malformed` (spec 4.1). The
decoder is written out here rather than delegated to a general CBOR library because such a
library accepts what v2 forbids (tags, indefinite lengths, duplicate keys where the last
wins, `1.0` as a key, `true` where an integer belongs, trailing bytes).
"""

from __future__ import annotations

from collections.abc import Mapping

from .constants import MAX_BODY, UINT32_LIMIT
from .errors import MalformedError

__all__ = ["MAX_ENTRIES", "MAX_STRING", "Value", "decode_body_map", "encode_body_map"]

MAX_ENTRIES = 32  # entries in the body map
MAX_STRING = 64  # bytes in a byte string

Value = int | bytes

_MAJOR_NAMES = {
    1: "a negative integer",
    3: "a text string",
    4: "an array",
    5: "a map inside the map",
    6: "a tag",
    7: "a float or simple value (true, false, null)",
}


def _head(data: bytes, pos: int) -> tuple[int, int, int]:
    """(major type, argument, next position) of the head at pos; shortest form only."""
    if pos >= len(data):
        raise MalformedError(f"body ends at byte {pos} where a CBOR item should start")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    if info < 24:
        return major, info, pos + 1
    if info == 31:
        raise MalformedError(f"indefinite-length CBOR item at byte {pos}: not allowed in v2")
    if info > 27:
        raise MalformedError(f"reserved CBOR additional information {info} at byte {pos}")
    if major in (6, 7):  # say what it is rather than how long its argument is
        raise MalformedError(f"{_MAJOR_NAMES[major]} at byte {pos}: not allowed in v2 bodies")
    size = 1 << (info - 24)
    if pos + 1 + size > len(data):
        raise MalformedError(f"body ends inside the CBOR head at byte {pos}")
    arg = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
    if info == 27 or arg >= UINT32_LIMIT:
        raise MalformedError(f"integer at byte {pos} is not below 2^32")
    smallest = (24, 1 << 8, 1 << 16)[info - 24]
    if arg < smallest:
        raise MalformedError(
            f"CBOR head at byte {pos} is not in its shortest form ({arg} in {size + 1} bytes)"
        )
    return major, arg, pos + 1 + size


def decode_body_map(data: bytes) -> dict[int, Value]:
    """Decode a v2 body into {key: int or bytes}; MalformedError naming the first fault."""
    data = bytes(data)
    if not data:
        raise MalformedError("empty body: this frame type needs a CBOR map")
    if len(data) > MAX_BODY:
        raise MalformedError(f"body of {len(data)} bytes exceeds {MAX_BODY}")
    major, count, pos = _head(data, 0)
    if major != 5:
        raise MalformedError(f"body is {_MAJOR_NAMES.get(major, f'CBOR major type {major}')},"
                             " not a map")
    if count > MAX_ENTRIES:
        raise MalformedError(f"body map has {count} entries; at most {MAX_ENTRIES}")
    out: dict[int, Value] = {}
    previous = -1
    for _ in range(count):
        key_at = pos
        major, key, pos = _head(data, pos)
        if major != 0:
            raise MalformedError(
                f"map key at byte {key_at} is {_MAJOR_NAMES.get(major, 'a byte string')}; "
                "keys are unsigned integers"
            )
        if key == previous:
            raise MalformedError(f"key {key} appears twice (byte {key_at})")
        if key < previous:
            raise MalformedError(f"key {key} at byte {key_at} follows key {previous}: "
                                 "keys must be in ascending order")
        previous = key
        value_at = pos
        major, arg, pos = _head(data, pos)
        if major == 0:
            out[key] = arg
        elif major == 2:
            if arg > MAX_STRING:
                raise MalformedError(f"byte string of {arg} bytes at byte {value_at}; "
                                     f"at most {MAX_STRING}")
            if pos + arg > len(data):
                raise MalformedError(f"byte string at byte {value_at} runs past the body")
            out[key] = data[pos : pos + arg]
            pos += arg
        else:
            raise MalformedError(
                f"value of key {key} (byte {value_at}) is {_MAJOR_NAMES[major]}; "
                "v2 values are unsigned integers or byte strings"
            )
    if pos != len(data):
        raise MalformedError(f"{len(data) - pos} byte(s) after the body map")
    return out


def _write_head(out: bytearray, major: int, arg: int) -> None:
    if arg < 24:
        out.append(major << 5 | arg)
    elif arg < 1 << 8:
        out += bytes((major << 5 | 24, arg))
    elif arg < 1 << 16:
        out.append(major << 5 | 25)
        out += arg.to_bytes(2, "big")
    else:
        out.append(major << 5 | 26)
        out += arg.to_bytes(4, "big")


def encode_body_map(m: Mapping[int, Value]) -> bytes:
    """The one v2 encoding of a map: keys ascending, shortest heads; ValueError if invalid."""
    if len(m) > MAX_ENTRIES:
        raise ValueError(f"body map of {len(m)} entries; at most {MAX_ENTRIES}")
    out = bytearray()
    _write_head(out, 5, len(m))
    for key in sorted(m):
        value = m[key]
        if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < UINT32_LIMIT:
            raise ValueError(f"body key {key!r} is not an unsigned integer below 2^32")
        _write_head(out, 0, key)
        if isinstance(value, bytes | bytearray):
            if len(value) > MAX_STRING:
                raise ValueError(f"byte string of key {key} is {len(value)} bytes; "
                                 f"at most {MAX_STRING}")
            _write_head(out, 2, len(value))
            out += value
        elif isinstance(value, int) and not isinstance(value, bool) \
                and 0 <= value < UINT32_LIMIT:
            _write_head(out, 0, value)
        else:
            raise ValueError(f"value of key {key} ({value!r}) is not an unsigned integer "
                             "below 2^32 or a byte string")
    return bytes(out)
