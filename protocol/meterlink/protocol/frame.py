"""Radio payloads of wire format v2: header || AES-CTR(body) || MIC (spec 2 and 3)."""

from __future__ import annotations

import dataclasses
import hmac
import struct
from dataclasses import dataclass, replace
from typing import Any

from .bodies import STATUS_PRIORITY, Body, Reading, Status, body_from_map, body_to_map
from .cbor_body import decode_body_map, encode_body_map
from .constants import (
    HEADER_LEN,
    MAX_BODY,
    MAX_DELTAS,
    MAX_DOWNLINK,
    MAX_UPLINK,
    MIC_LEN,
    ON_AIR_COUNTER_MOD,
    OVERHEAD,
    PROTOCOL_VERSION,
    UINT32_LIMIT,
    FrameType,
)
from .crypto import DeviceKeys, as_device_keys, compute_mic, ctr_xor
from .errors import (
    AuthenticationError,
    BadDirection,
    BadType,
    BadVersion,
    MalformedError,
    Oversized,
    Truncated,
)
from .replay import counter_candidates
from .varint import encode_varint

__all__ = [
    "Frame",
    "Header",
    "auth_header",
    "decode_frame",
    "decode_received",
    "encode_frame",
    "seal",
]

_HEADER = struct.Struct(">BIH")  # on air
_AUTH_HEADER = struct.Struct(">BII")  # inside the MIC and the CTR blocks


@dataclass(frozen=True)
class Header:
    """The 7 header bytes on air; `counter` is the low 16 bits of the frame counter."""

    version: int
    frame_type: FrameType
    device_id: int
    counter: int

    def pack(self) -> bytes:
        """The 7 header bytes; ValueError if a field is out of range."""
        if not 0 <= self.version <= 15:
            raise ValueError(f"version {self.version} does not fit a nibble")
        if not 0 <= self.device_id < UINT32_LIMIT:
            raise ValueError(f"device_id {self.device_id} is outside 0 .. 2^32-1")
        if not 0 <= self.counter < ON_AIR_COUNTER_MOD:
            raise ValueError(f"on-air counter {self.counter} is outside 0 .. 65535")
        return _HEADER.pack(
            (self.version << 4) | FrameType(self.frame_type), self.device_id, self.counter
        )

    @classmethod
    def parse(cls, payload: bytes, *, uplink: bool | None = None) -> Header:
        """Spec 2.3 steps 1-5: length, version, type, direction, uplink length.

        `uplink` True (a gateway) or False (a module) rejects the other direction's types
        as `bad_direction`; None (inspection tools) accepts both.
        """
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
        if uplink is not None and frame_type.is_uplink != uplink:
            expected = "uplink" if uplink else "downlink"
            raise BadDirection(
                f"{frame_type.name.lower()} (type {type_number}) is not an {expected} type; "
                f"this path carries {expected}s only"
            )
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
    counter: int  # the whole 32-bit frame counter (the header has its low 16 bits)

    @property
    def device_id(self) -> int:
        return self.header.device_id

    @property
    def frame_type(self) -> FrameType:
        return self.header.frame_type


def auth_header(frame_type: FrameType, device_id: int, counter: int) -> bytes:
    """The 9 bytes the MIC covers in front of the ciphertext: vt, device id, 32-bit counter."""
    if not 0 <= counter < UINT32_LIMIT:
        raise ValueError(f"counter {counter} is outside 0 .. 2^32-1")
    if not 0 <= device_id < UINT32_LIMIT:
        raise ValueError(f"device_id {device_id} is outside 0 .. 2^32-1")
    return _AUTH_HEADER.pack((PROTOCOL_VERSION << 4) | frame_type, device_id, counter)


def seal(frame_type: FrameType, device_id: int, counter: int, body_bytes: bytes,
         keys: DeviceKeys) -> bytes:
    """Header (low 16 bits of the counter), AES-CTR body, MIC over the 9-byte header."""
    header = Header(PROTOCOL_VERSION, frame_type, device_id, counter % ON_AIR_COUNTER_MOD).pack()
    ciphertext = ctr_xor(keys.enc, frame_type.direction, device_id, counter, body_bytes)
    mic = compute_mic(keys.mic, auth_header(frame_type, device_id, counter) + ciphertext)
    return header + ciphertext + mic


def _body_bytes(frame_type: FrameType, body: Body) -> bytes:
    if frame_type is FrameType.ACK:
        return b""
    return encode_body_map(body_to_map(body))


def _fit_status(body: Status, limit: int) -> bytes:
    """Spec 4.4: the required keys, then each optional key in STATUS_PRIORITY that fits."""
    kept: dict[str, Any] = {}
    names = {f.metadata["key"]: f.name for f in dataclasses.fields(body) if "key" in f.metadata}
    base = replace(body, **{names[k]: None for k in STATUS_PRIORITY})  # type: ignore[arg-type]
    body_bytes = _body_bytes(FrameType.STATUS, base)
    for key in STATUS_PRIORITY:
        value = getattr(body, names[key])
        if value is None:
            continue
        trial = _body_bytes(FrameType.STATUS, replace(base, **kept, **{names[key]: value}))
        if OVERHEAD + len(trial) <= limit:
            kept[names[key]] = value
            body_bytes = trial
    return body_bytes


def encode_frame(
    frame_type: FrameType, device_id: int, counter: int, body: Body, key: bytes | DeviceKeys
) -> bytes:
    """Build a radio payload; `counter` is the whole 32-bit frame counter.

    A reading keeps as many newest deltas as fit 51 bytes (spec 4.2); a status keeps its
    optional keys in the order of spec 4.4 while they fit.
    """
    frame_type = FrameType(frame_type)
    if body.FRAME_TYPE is not frame_type:
        raise ValueError(
            f"a {type(body).__name__} body cannot be sent as a {frame_type.name.lower()} frame"
        )
    keys = as_device_keys(key)
    auth_header(frame_type, device_id, counter)  # range checks
    limit = frame_type.max_payload
    if isinstance(body, Status):
        body_bytes = _fit_status(body, limit)
    elif isinstance(body, Reading):
        deltas, room = body.deltas[:MAX_DELTAS], limit - OVERHEAD
        while len(deltas) > 1 and sum(len(encode_varint(d)) for d in deltas) > room:
            deltas = deltas[:-1]  # more than can ever fit: the oldest go first
        body = replace(body, deltas=deltas)
        body_bytes = _body_bytes(frame_type, body)
    else:
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
            body_from_map(frame_type, decode_body_map(body_bytes))  # what a decoder checks
        except MalformedError as exc:
            raise ValueError(f"body would not decode: {exc}") from None
    return seal(frame_type, device_id, counter, body_bytes, keys)


def decode_frame(payload: bytes, key: bytes | DeviceKeys, *, counter: int | None = None,
                 uplink: bool | None = None) -> Frame:
    """Check and decode a radio payload; raises only ProtocolError subclasses for bad input.

    `counter` is the whole frame counter the receiver extended from the 16 bits on air
    (spec 3.4; `extend_counter`); None takes the on-air value itself (high part 0).
    """
    keys = as_device_keys(key)  # a bad key is the caller's error: ValueError, whatever the input
    payload = bytes(payload)
    header = Header.parse(payload, uplink=uplink)
    if counter is None:
        counter = header.counter
    elif not 0 <= counter < UINT32_LIMIT or counter % ON_AIR_COUNTER_MOD != header.counter:
        raise ValueError(f"counter {counter} does not end in the on-air {header.counter}")
    frame_type = header.frame_type
    ciphertext, mic = payload[HEADER_LEN:-MIC_LEN], payload[-MIC_LEN:]
    signed = auth_header(frame_type, header.device_id, counter) + ciphertext
    if not hmac.compare_digest(compute_mic(keys.mic, signed), mic):
        raise AuthenticationError(
            f"MIC mismatch for device 0x{header.device_id:08x} counter {counter}: "
            "wrong key, altered frame, or a counter this receiver cannot place"
        )
    where = f"device 0x{header.device_id:08x} counter {counter}"
    if frame_type is FrameType.ACK:
        if ciphertext:
            raise MalformedError(
                f"ack from {where} carries {len(ciphertext)} body bytes; an ack has none"
            )
        return Frame(header, body_from_map(frame_type, {}), payload, counter)
    plaintext = ctr_xor(keys.enc, frame_type.direction, header.device_id, counter, ciphertext)
    try:
        body = body_from_map(frame_type, decode_body_map(plaintext))
    except MalformedError as exc:
        raise MalformedError(f"{frame_type.name.lower()} from {where}: {exc}") from None
    return Frame(header, body, payload, counter)


def decode_received(payload: bytes, key: bytes | DeviceKeys, *, highest: int = -1,
                    uplink: bool | None = None) -> Frame:
    """Decode a payload as a receiver does (spec 3.4): extend its counter from `highest`
    (the highest accepted; -1 none, then the first 16 high parts are tried in turn)."""
    keys = as_device_keys(key)
    header = Header.parse(bytes(payload), uplink=uplink)
    failure: AuthenticationError | None = None
    for counter in counter_candidates(header.counter, highest):
        try:
            return decode_frame(payload, keys, counter=counter, uplink=uplink)
        except AuthenticationError as exc:
            failure = failure or exc
    assert failure is not None
    raise failure
