"""encode_frame / decode_frame behaviour beyond the vectors: limits, errors, messages."""

from __future__ import annotations

import re
import struct

import cbor2
import pytest

from meterlink.protocol import (
    Ack,
    Alarm,
    AlarmFlags,
    AuthenticationError,
    BadType,
    BadVersion,
    Config,
    DeviceKeys,
    FrameType,
    Header,
    MalformedError,
    Oversized,
    Reading,
    Status,
    TimeSync,
    Truncated,
    Unit,
    body_from_map,
    decode_frame,
    encode_frame,
)
from meterlink.protocol.crypto import compute_mic, ctr_xor

KEY = bytes(range(16))
KEYS = DeviceKeys.derive(KEY)
READING = Reading(
    register=1,
    pulse_weight=1,
    unit=Unit.L,
    interval_s=900,
    deltas=(1, 2),
    age_s=0,
    interval_seq=0,
    alarms=AlarmFlags(0),
)


def seal(vt: int, device: int, counter: int, plaintext: bytes) -> bytes:
    header = struct.pack(">BII", vt, device, counter)
    ct = ctr_xor(KEYS.enc, vt >> 3 & 1, device, counter, plaintext)
    return header + ct + compute_mic(KEYS.mic, header + ct)


def test_mic_mismatch_message_names_device_and_counter() -> None:
    payload = encode_frame(FrameType.READING, 0x12345678, 41, READING, KEY)
    with pytest.raises(AuthenticationError) as info:
        decode_frame(payload, bytes(16))
    assert str(info.value) == (
        "MIC mismatch for device 0x12345678 counter 41: wrong key or altered frame"
    )
    assert info.value.code == "bad_mic"


@pytest.mark.parametrize("index", range(13))
def test_every_header_or_mic_byte_is_authenticated(index: int) -> None:
    payload = bytearray(encode_frame(FrameType.ACK, 7, 8, Ack(), KEY))
    payload[index] ^= 0x01
    with pytest.raises((AuthenticationError, BadType, BadVersion)):
        decode_frame(bytes(payload), KEY)


def test_ack_is_13_bytes_and_has_no_ciphertext() -> None:
    payload = encode_frame(FrameType.ACK, 7, 8, Ack(), KEY)
    assert len(payload) == 13
    assert decode_frame(payload, KEY).body == Ack()


def test_body_type_must_match_frame_type() -> None:
    with pytest.raises(ValueError, match="cannot be sent as a alarm frame"):
        encode_frame(FrameType.ALARM, 1, 1, READING, KEY)


def test_out_of_range_values_are_refused_by_the_encoder() -> None:
    with pytest.raises(ValueError, match="register"):
        encode_frame(FrameType.READING, 1, 1, Reading(**{**READING.__dict__, "register": -1}), KEY)
    with pytest.raises(ValueError, match="device_id"):
        encode_frame(FrameType.READING, 2**32, 1, READING, KEY)
    with pytest.raises(ValueError, match="delta"):
        encode_frame(
            FrameType.READING, 1, 1, Reading(**{**READING.__dict__, "deltas": (2**32,)}), KEY
        )
    with pytest.raises(ValueError, match="unit"):
        Reading(**{**READING.__dict__, "unit": 7})


def test_oversized_non_reading_is_refused() -> None:
    status = Status(battery_pct=1, fw_version=1, resets=1, reason=0, extra={99: bytes(40)})
    with pytest.raises(Oversized, match="limit is 51"):
        encode_frame(FrameType.STATUS, 1, 1, status, KEY)
    # the same body fits a downlink's 64 bytes
    config = Config(interval_s=60, extra={99: bytes(40)})
    assert len(encode_frame(FrameType.CONFIG, 1, 1, config, KEY)) <= 64


def test_reading_that_cannot_fit_even_one_delta() -> None:
    big = Reading(**{**READING.__dict__, "extra": {99: bytes(40)}})
    with pytest.raises(Oversized):
        encode_frame(FrameType.READING, 1, 1, big, KEY)


def test_key_validation() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        DeviceKeys.derive(b"short")
    with pytest.raises(ValueError, match="got 17 bytes"):
        DeviceKeys.derive(bytes(17))
    with pytest.raises(ValueError, match="root key"):
        decode_frame(bytes(20), bytes(15))
    assert "hidden" in repr(KEYS) and KEYS.enc.hex() not in repr(KEYS)


def test_header_parse_and_pack() -> None:
    payload = encode_frame(FrameType.TIME, 0xAABBCCDD, 5, TimeSync(unix_time=1), KEY)
    header = Header.parse(payload)
    assert header == Header(1, FrameType.TIME, 0xAABBCCDD, 5)
    assert header.pack() == payload[:9]
    with pytest.raises(Truncated, match="shorter than the 13-byte minimum"):
        Header.parse(payload[:12])
    with pytest.raises(Oversized):
        Header.parse(payload + bytes(60))
    with pytest.raises(BadVersion, match="version 0"):
        Header.parse(b"\x00" + payload[1:])
    with pytest.raises(BadType, match="frame type 7 is reserved"):
        Header.parse(b"\x17" + payload[1:])


def test_frame_type_properties() -> None:
    assert [t for t in FrameType if t.is_uplink] == [
        FrameType.READING,
        FrameType.ALARM,
        FrameType.STATUS,
    ]
    assert [t for t in FrameType if t.confirmed] == [FrameType.ALARM]
    assert Unit.M3.litres(2) == 2000 and Unit.ML.litres(500) == 0.5


def test_unknown_keys_are_kept_and_known_types_checked() -> None:
    m = {1: 5, 7: 1, 8: 0, 12: 1, 99: "future", 9: 50}
    alarm = body_from_map(FrameType.ALARM, m)
    assert isinstance(alarm, Alarm)
    assert dict(alarm.extra) == {99: "future", 9: 50}
    with pytest.raises(MalformedError, match="battery_pct"):
        body_from_map(FrameType.ALARM, {**m, 9: -1})


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({1: 1, 2: 1, 3: 1, 4: 1, 5: b"", 6: 1, 7: 1}, "alarms (key 8)"),
        ({30: 2**32}, "below 2^32"),
        ({30: 1, 5: b"\x80\x80\x80\x80\x80\x01"}, "exceeds 32 bits"),
        ({30: True}, "unsigned integer"),
        ({30: 1, 3: 9}, "unit"),
        ({30: 1, 40: [[1]]}, "nests deeper"),
        ({30: 1, 40: list(range(33))}, "at most 32"),
        ({30: 1, 40: cbor2.CBORTag(1, 5)}, "tag"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body: dict[int, object], fragment: str) -> None:
    frame_type = 0x10 if 8 not in body and 5 in body else 0x1A
    payload = seal(frame_type, 3, 4, cbor2.dumps(body)[:51])
    with pytest.raises(MalformedError, match=re.escape(fragment)):
        decode_frame(payload, KEY)


def test_indefinite_length_and_trailing_bytes_are_malformed() -> None:
    with pytest.raises(MalformedError, match="indefinite"):
        decode_frame(seal(0x1A, 3, 4, b"\xbf\x18\x1e\x01\xff"), KEY)
    with pytest.raises(MalformedError, match="trailing"):
        decode_frame(seal(0x1A, 3, 4, cbor2.dumps({30: 1}) + b"\x00"), KEY)
    with pytest.raises(MalformedError, match=r"[Dd]uplicate"):
        decode_frame(seal(0x1A, 3, 4, b"\xa2\x18\x1e\x01\x18\x1e\x02"), KEY)


def test_many_deltas_are_refused() -> None:
    """Unreachable inside 64 bytes today, but body_from_map is public (firmware tests)."""
    with pytest.raises(MalformedError, match="more than 48"):
        body_from_map(FrameType.TIME, {30: 1, 5: bytes(49)})
    assert len(body_from_map(FrameType.TIME, {30: 1, 5: bytes(48)}).extra[5]) == 48
