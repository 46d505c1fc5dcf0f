"""Unsigned LEB128 varints, the encoding of a reading's interval deltas (spec 4)."""

from __future__ import annotations

from collections.abc import Iterable

from .constants import MAX_DELTAS, UINT32_LIMIT
from .errors import MalformedError

__all__ = ["decode_varints", "encode_varint", "encode_varints"]

_MAX_VARINT_LEN = 5  # ceil(32 / 7)


def encode_varint(value: int) -> bytes:
    if not 0 <= value < UINT32_LIMIT:
        raise ValueError(f"delta {value} is outside 0 .. 2^32-1")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_varints(values: Iterable[int]) -> bytes:
    return b"".join(encode_varint(v) for v in values)


def decode_varints(data: bytes) -> tuple[int, ...]:
    """Decode a deltas byte string; MalformedError if a varint is cut, padded, too long or big."""
    values: list[int] = []
    value = shift = length = 0
    for index, byte in enumerate(data):
        value |= (byte & 0x7F) << shift
        shift += 7
        length += 1
        if length > _MAX_VARINT_LEN or value >= UINT32_LIMIT:
            raise MalformedError(f"deltas: varint ending at byte {index} exceeds 32 bits")
        if not byte & 0x80:
            if length > 1 and byte == 0:
                raise MalformedError(
                    f"deltas: varint ending at byte {index} is longer than needed "
                    "(v2 allows only the shortest form)"
                )
            values.append(value)
            if len(values) > MAX_DELTAS:
                raise MalformedError(f"deltas: more than {MAX_DELTAS} intervals")
            value = shift = length = 0
    if length:
        raise MalformedError(
            f"deltas: the last varint is cut off after {length} byte(s) "
            f"(continuation bit set on the final byte)"
        )
    return tuple(values)
