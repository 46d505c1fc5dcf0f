"""Radio payloads: header || AES-CTR(body) || MIC (spec sections 2 and 3)."""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass, replace

from .bodies import Body, Reading, body_from_map, body_to_map
from .cbor_body import decode_body_map, encode_body_map
from .constants import (
    HEADER_LEN,
    MAX_BODY,
    MAX_DOWNLINK,
    MAX_UPLINK,
    MIC_LEN,
    OVERHEAD,
    PROTOCOL_VERSION,
    UINT32_LIMIT,
    FrameType,
)
from .crypto import DeviceKeys, as_device_keys, compute_mic, ctr_xor
from .errors import (
    AuthenticationError,
    BadType,
    BadVersion,
    MalformedError,
    Oversized,
    Truncated,
)

__all__ = ["Frame", "Header", "decode_frame", "encode_frame"]

_HEADER = struct.Struct(">BII")


@dataclass(frozen=True)
class Header:
    version: int
    frame_type: FrameType
    device_id: int
    counter: int

    def pack(self) -> bytes:
        """The 9 header bytes; ValueError if a field is out of range."""
        if not 0 <= self.version <= 15:
            raise ValueError(f"version {self.version} does not fit a nibble")
        for name in ("device_id", "counter"):
            value = getattr(self, name)
            if not 0 <= value < UINT32_LIMIT:
                raise ValueError(f"{name} {value} is outside 0 .. 2^32-1")
        return _HEADER.pack(
            (self.version << 4) | FrameType(self.frame_type), self.device_id, self.counter
        )

    @classmethod
    def parse(cls, payload: bytes) -> Header:
        """Check a whole radio payload's length, version and type; return its header."""
        size = len(payload)
        if size < OVERHEAD:
            raise Truncated(
                f"radio payload of {size} bytes is shorter than the {OVERHEAD}-byte minimum"
            )
        if size > MAX_DOWNLINK:
            raise Oversized(f"radio payload of {size} bytes exceeds {MAX_DOWNLINK} bytes")
        vt, device_id, counter = _HEADER.unpack_from(payload)
        version, type_number = vt >> 4, vt & 0x0F
        if version != PROTOCOL_VERSION:
            raise BadVersion(
                f"protocol version {version} (first byte 0x{vt:02x}); "
                f"this decoder speaks version {PROTOCOL_VERSION}"
            )
        try:
            frame_type = FrameType(type_number)
        except ValueError:
            raise BadType(
                f"frame type {type_number} is reserved (device 0x{device_id:08x})"
            ) from None
        if frame_type.is_uplink and size > MAX_UPLINK:
            raise Oversized(
                f"{frame_type.name.lower()} payload of {size} bytes exceeds the "
                f"uplink limit of {MAX_UPLINK} bytes"
            )
        return cls(version, frame_type, device_id, counter)


@dataclass(frozen=True)
class Frame:
    header: Header
    body: Body
    payload: bytes

    @property
    def device_id(self) -> int:
        return self.header.device_id

    @property
    def counter(self) -> int:
        return self.header.counter

    @property
    def frame_type(self) -> FrameType:
        return self.header.frame_type


def _seal(header: bytes, frame_type: FrameType, body_bytes: bytes, keys: DeviceKeys) -> bytes:
    _, device_id, counter = _HEADER.unpack(header)
    ciphertext = ctr_xor(keys.enc, frame_type.direction, device_id, counter, body_bytes)
    signed = header + ciphertext
    return signed + compute_mic(keys.mic, signed)


def _body_bytes(frame_type: FrameType, body: Body) -> bytes:
    if frame_type is FrameType.ACK:
        return b""
    return encode_body_map(body_to_map(body))


def encode_frame(
    frame_type: FrameType, device_id: int, counter: int, body: Body, key: bytes | DeviceKeys
) -> bytes:
    """Build a radio payload. A reading keeps as many newest deltas as fit 51 bytes."""
    frame_type = FrameType(frame_type)
    if body.FRAME_TYPE is not frame_type:
        raise ValueError(
            f"a {type(body).__name__} body cannot be sent as a {frame_type.name.lower()} frame"
        )
    keys = as_device_keys(key)
    header = Header(PROTOCOL_VERSION, frame_type, device_id, counter).pack()
    limit = frame_type.max_payload
    body_bytes = _body_bytes(frame_type, body)
    if isinstance(body, Reading):
        deltas = body.deltas
        while OVERHEAD + len(body_bytes) > limit and len(deltas) > 1:
            deltas = deltas[:-1]  # drop the oldest: newest come first
            body_bytes = _body_bytes(frame_type, replace(body, deltas=deltas))
    size = OVERHEAD + len(body_bytes)
    if size > limit or len(body_bytes) > MAX_BODY:
        raise Oversized(
            f"{frame_type.name.lower()} frame would be {size} bytes; the limit is {limit}"
        )
    if body_bytes:
        try:
            decode_body_map(body_bytes)  # the bounds a decoder applies, checked before sending
        except MalformedError as exc:
            raise ValueError(f"body would not decode: {exc}") from None
    return _seal(header, frame_type, body_bytes, keys)


def decode_frame(payload: bytes, key: bytes | DeviceKeys) -> Frame:
    """Check and decode a radio payload; raises only ProtocolError subclasses for bad input."""
    keys = as_device_keys(key)  # a bad key is the caller's error: ValueError, whatever the input
    payload = bytes(payload)
    header = Header.parse(payload)
    signed, mic = payload[:-MIC_LEN], payload[-MIC_LEN:]
    if not hmac.compare_digest(compute_mic(keys.mic, signed), mic):
        raise AuthenticationError(
            f"MIC mismatch for device 0x{header.device_id:08x} counter {header.counter}: "
            "wrong key or altered frame"
        )
    ciphertext = signed[HEADER_LEN:]
    frame_type = header.frame_type
    where = f"device 0x{header.device_id:08x} counter {header.counter}"
    if frame_type is FrameType.ACK:
        if ciphertext:
            raise MalformedError(
                f"ack from {where} carries {len(ciphertext)} body bytes; an ack has none"
            )
        return Frame(header, body_from_map(frame_type, {}), payload)
    plaintext = ctr_xor(
        keys.enc, frame_type.direction, header.device_id, header.counter, ciphertext
    )
    try:
        body = body_from_map(frame_type, decode_body_map(plaintext))
    except MalformedError as exc:
        raise MalformedError(f"{frame_type.name.lower()} from {where}: {exc}") from None
    return Frame(header, body, payload)
