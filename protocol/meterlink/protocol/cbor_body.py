"""CBOR body maps: bounded decoding and canonical encoding (spec section 4).

The bounds are checked by a structural scan of the item heads *before* cbor2 sees the
bytes, so no claimed length can make the decoder allocate or recurse more than the
spec allows. Tags, indefinite lengths and non-integer top-level keys are rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cbor2

from .constants import MAX_BODY, UINT32_LIMIT
from .errors import MalformedError

__all__ = ["MAX_DEPTH", "MAX_ENTRIES", "MAX_STRING", "decode_body_map", "encode_body_map"]

MAX_DEPTH = 2  # the body map, and containers directly inside it
MAX_ENTRIES = 32  # per map (and per array)
MAX_STRING = 64  # byte or text string length

_SIMPLE_OK = {20, 21, 22, 23, 25, 26, 27}  # false, true, null, undefined, floats


def _head(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """Return (major, additional info, argument, next position) of the item at pos."""
    if pos >= len(data):
        raise MalformedError(f"CBOR body ends at byte {pos} in the middle of an item")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if info < 24:
        return major, info, info, pos
    if info <= 27:
        size = 1 << (info - 24)
        if pos + size > len(data):
            raise MalformedError(f"CBOR body ends at byte {len(data)} inside an item head")
        return major, info, int.from_bytes(data[pos : pos + size], "big"), pos + size
    if info == 31:
        raise MalformedError(f"indefinite-length CBOR item at byte {pos - 1}: not allowed")
    raise MalformedError(f"reserved CBOR additional info {info} at byte {pos - 1}")


def _scan(data: bytes, pos: int, depth: int) -> int:
    start = pos
    major, info, arg, pos = _head(data, pos)
    if major in (0, 1):
        if arg >= UINT32_LIMIT:
            raise MalformedError(f"integer at byte {start} is not below 2^32")
        return pos
    if major in (2, 3):
        if arg > MAX_STRING:
            raise MalformedError(
                f"string of {arg} bytes at byte {start} exceeds the {MAX_STRING}-byte limit"
            )
        if pos + arg > len(data):
            raise MalformedError(f"string at byte {start} runs past the end of the body")
        return pos + arg
    if major in (4, 5):
        if depth >= MAX_DEPTH:
            raise MalformedError(f"container at byte {start} nests deeper than {MAX_DEPTH}")
        if arg > MAX_ENTRIES:
            raise MalformedError(
                f"container at byte {start} has {arg} entries; at most {MAX_ENTRIES}"
            )
        items = arg * 2 if major == 5 else arg
        for _ in range(items):
            pos = _scan(data, pos, depth + 1)
        return pos
    if major == 6:
        raise MalformedError(f"CBOR tag at byte {start}: tags are not used in v1 bodies")
    if info not in _SIMPLE_OK:
        raise MalformedError(f"CBOR simple value {arg} at byte {start} is not allowed")
    return pos


def _scan_top_map(data: bytes) -> None:
    if not data:
        raise MalformedError("empty body: a CBOR map is required")
    if len(data) > MAX_BODY:
        raise MalformedError(f"body of {len(data)} bytes exceeds {MAX_BODY}")
    major, _, count, pos = _head(data, 0)
    if major != 5:
        raise MalformedError(f"body is CBOR major type {major}, not a map")
    if count > MAX_ENTRIES:
        raise MalformedError(f"body map has {count} entries; at most {MAX_ENTRIES}")
    for _ in range(count):
        key_major, _, _, _ = _head(data, pos)
        if key_major != 0:
            raise MalformedError(f"body map key at byte {pos} is not an unsigned integer")
        pos = _scan(data, pos, 1)
        pos = _scan(data, pos, 1)
    if pos != len(data):
        raise MalformedError(f"{len(data) - pos} trailing byte(s) after the body map")


def decode_body_map(data: bytes) -> dict[int, Any]:
    """Decode a body into a dict with int keys; MalformedError on anything else."""
    _scan_top_map(data)
    try:
        value = cbor2.loads(data, allow_indefinite=False, allow_duplicate_keys=False)
    except Exception as exc:  # cbor2 raises several types; all mean malformed
        raise MalformedError(f"body is not valid CBOR: {exc}") from None
    if not isinstance(value, dict):  # pragma: no cover - excluded by the scan
        raise MalformedError("body is not a CBOR map")
    return value


def encode_body_map(m: Mapping[int, Any]) -> bytes:
    """Shortest integers, definite lengths, keys in ascending order."""
    try:
        return cbor2.dumps({k: m[k] for k in sorted(m)})
    except Exception as exc:
        raise ValueError(f"body cannot be encoded as CBOR: {exc}") from None
