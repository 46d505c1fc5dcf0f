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
    BadDirection,
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
    header = struct.pack(">BIH", vt, device, counter & 0xFFFF)
    ct = ctr_xor(KEYS.enc, vt >> 3 & 1, device, counter, plaintext)
    return header + ct + compute_mic(KEYS.mic, struct.pack(">BII", vt, device, counter) + ct)


def test_mic_mismatch_message_names_device_and_counter() -> None:
    payload = encode_frame(FrameType.READING, 0x12345678, 41, READING, KEY)
    with pytest.raises(AuthenticationError) as info:
        decode_frame(payload, bytes(16))
    assert str(info.value) == (
        "MIC mismatch for device 0x12345678 counter 41: "
        "wrong key, altered frame, or a counter this receiver cannot place"
    )
    assert info.value.code == "bad_mic"


@pytest.mark.parametrize("index", range(11))
def test_every_header_or_mic_byte_is_authenticated(index: int) -> None:
    payload = bytearray(encode_frame(FrameType.ACK, 7, 8, Ack(), KEY))
    payload[index] ^= 0x01
    with pytest.raises((AuthenticationError, BadType, BadVersion)):
        decode_frame(bytes(payload), KEY)


def test_the_high_part_of_the_counter_is_authenticated() -> None:
    payload = encode_frame(FrameType.ACK, 7, 0x10008, Ack(), KEY)
    assert payload[5:7] == b"\x00\x08"
    assert decode_frame(payload, KEY, counter=0x10008).counter == 0x10008
    for wrong in (8, 0x20008, 0xFFFF0008):
        with pytest.raises(AuthenticationError):
            decode_frame(payload, KEY, counter=wrong)
    with pytest.raises(ValueError, match="does not end in"):
        decode_frame(payload, KEY, counter=0x10009)


def test_ack_is_11_bytes_and_has_no_ciphertext() -> None:
    payload = encode_frame(FrameType.ACK, 7, 8, Ack(), KEY)
    assert len(payload) == 11
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
    for name, value in (("pulse_weight", 0), ("pulse_weight", 65536), ("interval_s", 86401),
                        ("age_s", 65536), ("alarms", 256)):
        with pytest.raises(ValueError, match=name):
            encode_frame(FrameType.READING, 1, 1,
                         Reading(**{**READING.__dict__, name: value}), KEY)


def test_oversized_non_reading_is_refused() -> None:
    status = Status(battery_pct=1, fw_version=1, resets=1, reason=0, extra={99: bytes(30)})
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
    assert header == Header(2, FrameType.TIME, 0xAABBCCDD, 5)
    assert header.pack() == payload[:7]
    with pytest.raises(Truncated, match="shorter than the 11-byte minimum"):
        Header.parse(payload[:10])
    with pytest.raises(Oversized):
        Header.parse(payload + bytes(60))
    with pytest.raises(BadVersion, match="version 0"):
        Header.parse(b"\x00" + payload[1:])
    with pytest.raises(BadType, match="frame type 7 is reserved"):
        Header.parse(b"\x27" + payload[1:])
    with pytest.raises(BadDirection, match="not an uplink type"):
        Header.parse(payload, uplink=True)
    assert Header.parse(payload, uplink=False) == header


def test_frame_type_properties() -> None:
    assert [t for t in FrameType if t.is_uplink] == [
        FrameType.READING,
        FrameType.ALARM,
        FrameType.STATUS,
    ]
    assert [t for t in FrameType if t.confirmed] == [FrameType.ALARM]
    assert Unit.M3.litres(2) == 2000 and Unit.ML.litres(500) == 0.5


def test_unknown_keys_are_listed_and_known_types_checked() -> None:
    m = {1: 5, 7: 1, 8: 0, 12: 1, 99: b"future", 9: 50}
    alarm = body_from_map(FrameType.ALARM, m)
    assert isinstance(alarm, Alarm)
    assert dict(alarm.extra) == {99: b"future", 9: 50}
    with pytest.raises(MalformedError, match="battery_pct"):
        body_from_map(FrameType.ALARM, {**m, 9: -1})


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"\xa7\x01\x01\x02\x01\x03\x01\x04\x01\x05\x40\x06\x01\x07\x01", "alarms (key 8)"),
        (b"\xa1\x18\x1e\x1b\x00\x00\x00\x01\x00\x00\x00\x00", "below 2^32"),
        (b"\xa2\x05\x46\x80\x80\x80\x80\x80\x01\x18\x1e\x01", "exceeds 32 bits"),
        (b"\xa1\x18\x1e\xf5", "float or simple value"),
        (b"\xa2\x03\x09\x18\x1e\x01", "unit"),
        (b"\xa2\x18\x1e\x01\x18\x28\x81\x81\x01", "an array"),
        (b"\xa2\x18\x1e\x01\x18\x28\xa1\x01\x01", "a map inside the map"),
        (b"\xa1\x18\x1e\xc1\x05", "a tag"),
        (b"\xa1\x18\x1e\x18\x05", "shortest form"),
        (b"\xa2\x18\x1e\x01\x05\x40", "ascending order"),
        (b"\xa1\x61\x31\x01", "keys are unsigned integers"),
        (b"\xa2\x05\x42\x80\x00\x18\x1e\x01", "longer than needed"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body: bytes, fragment: str) -> None:
    frame_type = 0x20 if body.startswith(b"\xa7") else 0x2A
    payload = seal(frame_type, 3, 4, body)
    with pytest.raises(MalformedError, match=re.escape(fragment)):
        decode_frame(payload, KEY)


def test_indefinite_length_trailing_bytes_and_duplicates_are_malformed() -> None:
    with pytest.raises(MalformedError, match="indefinite"):
        decode_frame(seal(0x2A, 3, 4, b"\xbf\x18\x1e\x01\xff"), KEY)
    with pytest.raises(MalformedError, match="after the body map"):
        decode_frame(seal(0x2A, 3, 4, cbor2.dumps({30: 1}) + b"\x00"), KEY)
    with pytest.raises(MalformedError, match="appears twice"):
        decode_frame(seal(0x2A, 3, 4, b"\xa2\x18\x1e\x01\x18\x1e\x02"), KEY)


def test_many_deltas_are_refused() -> None:
    """Unreachable inside 51 bytes, but body_from_map is public (firmware tests)."""
    with pytest.raises(MalformedError, match="more than 23"):
        body_from_map(FrameType.READING, {1: 1, 2: 1, 3: 1, 4: 1, 5: bytes(24), 6: 1, 7: 1, 8: 0})
    assert len(body_from_map(FrameType.TIME, {30: 1, 5: bytes(23)}).extra[5]) == 23
