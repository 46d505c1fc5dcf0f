"""Generate protocol/vectors/v1.json, the test vectors of wire format v1.

Deterministic: fixed keys, values and seeds. Run `python protocol/vectors/generate.py`
to rewrite v1.json, `--check` to verify the checked-in file is current (exit 1 if not).
"""

from __future__ import annotations

import json
import random
import struct
import sys
from pathlib import Path
from typing import Any

import cbor2

from meterlink.protocol import (
    Ack,
    Alarm,
    AlarmFlags,
    Body,
    Config,
    DeviceKeys,
    FrameType,
    LinkDecoder,
    LinkType,
    ProtocolError,
    Reading,
    ReplayWindow,
    Status,
    TimeSync,
    Unit,
    body_to_map,
    crc16,
    decode_frame,
    decode_link_datagram,
    encode_frame,
    encode_link,
    encode_link_datagram,
    encode_rxinfo,
)
from meterlink.protocol.crypto import compute_mic, ctr_xor
from meterlink.protocol.named import body_to_fields, map_to_json
from meterlink.protocol.varint import encode_varints

OUTPUT = Path(__file__).with_name("v1.json")

ROOT_KEY = bytes(range(16))
OTHER_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
DEVICE = 0x12345678

# Published values, written out here (not computed) so the file checks the primitives.
FIPS197 = {
    "key": "000102030405060708090a0b0c0d0e0f",
    "plaintext": "00112233445566778899aabbccddeeff",
    "ciphertext": "69c4e0d86a7b0430d8cdb78070b4c55a",
}
RFC4493_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
RFC4493_MESSAGE = (
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
RFC4493 = [
    (0, "bb1d6929e95937287fa37d129b756746"),
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (40, "dfa66747de9ae63030ca32611497c827"),
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),
]

HOUSEHOLD = Reading(
    register=123456,
    pulse_weight=1,
    unit=Unit.L,
    interval_s=900,
    deltas=(12, 0, 3, 41, 7, 0, 0, 2, 95, 18, 4, 0),
    age_s=5,
    interval_seq=1000,
    alarms=AlarmFlags(0),
)
WORST_CASE = Reading(
    register=0xFFFFFFFF,
    pulse_weight=65535,
    unit=Unit.M3,
    interval_s=65535,
    deltas=(0xFFFFFFFF, 127),
    age_s=65535,
    interval_seq=0xFFFFFFFF,
    alarms=AlarmFlags(63),
)
LONG_HISTORY = Reading(
    register=5000000,
    pulse_weight=10,
    unit=Unit.ML,
    interval_s=900,
    deltas=tuple((i * 37) % 300 for i in range(48)),
    age_s=30,
    interval_seq=70000,
    alarms=AlarmFlags.LEAK,
)


def _valid(
    name: str,
    description: str,
    frame_type: FrameType,
    counter: int,
    body: Body,
    *,
    rssi: int | None = None,
) -> dict[str, Any]:
    payload = encode_frame(frame_type, DEVICE, counter, body, ROOT_KEY)
    decoded = decode_frame(payload, ROOT_KEY)
    plaintext = ctr_xor(
        DeviceKeys.derive(ROOT_KEY).enc, frame_type.direction, DEVICE, counter, payload[9:-4]
    )
    entry: dict[str, Any] = {
        "name": name,
        "description": description,
        "root_key": ROOT_KEY.hex(),
        "payload": payload.hex(),
        "size": len(payload),
        "link_frame": encode_link(LinkType.DATA, payload).hex(),
        "header": {
            "version": 1,
            "frame_type": int(frame_type),
            "device_id": DEVICE,
            "counter": counter,
        },
        "body": body_to_fields(decoded.body),
        "map": map_to_json(body_to_map(decoded.body)),
        "plaintext": plaintext.hex(),
    }
    if decoded.body != body:
        entry["encoder_input"] = body_to_fields(body)
    if rssi is not None:
        entry["rxinfo_link_frame"] = encode_rxinfo(payload, rssi, -22).hex()
        entry["rxinfo"] = {"rssi": rssi, "snr_qdb": -22}
    return entry


def valid_frames() -> list[dict[str, Any]]:
    return [
        _valid(
            "reading_household_50",
            "typical household (spec 7): 1 L/pulse, 15 min, 12 deltas < 128: exactly 50 bytes",
            FrameType.READING,
            41,
            HOUSEHOLD,
            rssi=-97,
        ),
        _valid(
            "reading_worst_case_51",
            "every fixed field at its largest, a 5-byte and a 1-byte delta: exactly 51 bytes",
            FrameType.READING,
            0xFFFFFFFE,
            WORST_CASE,
        ),
        _valid(
            "reading_trimmed",
            "48 deltas given (encoder_input); the encoder keeps the newest that fit 51 bytes",
            FrameType.READING,
            42,
            LONG_HISTORY,
        ),
        _valid(
            "reading_unknown_key",
            "a key this version does not define (99) is ignored by decoders; kept under extra",
            FrameType.READING,
            43,
            Reading(
                register=7,
                pulse_weight=1,
                unit=Unit.L,
                interval_s=900,
                deltas=(1,),
                age_s=0,
                interval_seq=0,
                alarms=AlarmFlags(0),
                extra={99: 5},
            ),
        ),
        _valid(
            "alarm_leak_backflow",
            "confirmed alarm: leak raised, backflow already active, reverse pulses",
            FrameType.ALARM,
            44,
            Alarm(
                register=123460,
                interval_seq=1001,
                alarms=AlarmFlags.LEAK | AlarmFlags.BACKFLOW,
                raised=AlarmFlags.LEAK,
                reverse=12,
            ),
        ),
        _valid(
            "status_boot",
            "status at boot with the optional configuration echo",
            FrameType.STATUS,
            45,
            Status(
                battery_pct=97,
                fw_version=0x0102,
                resets=3,
                reason=1,
                register=123456,
                pulse_weight=1,
                unit=Unit.L,
                interval_s=900,
                alarms=AlarmFlags.UNEXPECTED_RESET,
                reverse=0,
            ),
        ),
        _valid(
            "status_safe_mode",
            "safe mode: configuration unreadable (error 2), only the required keys and error",
            FrameType.STATUS,
            46,
            Status(battery_pct=64, fw_version=0x0100, resets=17, reason=2, error=2),
        ),
        _valid(
            "ack",
            "ack of uplink counter 44 (the alarm): counter field = acked counter, no body",
            FrameType.ACK,
            44,
            Ack(),
        ),
        _valid(
            "config_all",
            "downlink config setting every configurable value",
            FrameType.CONFIG,
            7,
            Config(
                interval_s=900,
                leak_intervals=96,
                burst_pulses=100,
                burst_intervals=2,
                backflow_pulses=10,
            ),
        ),
        _valid(
            "config_unknown_key",
            "downlink config with one known key and an unknown key (40) to ignore",
            FrameType.CONFIG,
            8,
            Config(interval_s=300, extra={40: 1}),
        ),
        _valid(
            "time",
            "downlink time sync",
            FrameType.TIME,
            9,
            TimeSync(unix_time=1700000000),
        ),
    ]


def _seal(
    vt: int, counter: int, plaintext: bytes, key: bytes = ROOT_KEY, device: int = DEVICE
) -> bytes:
    """A radio payload with a valid MIC over any plaintext (for malformed cases)."""
    keys = DeviceKeys.derive(key)
    header = struct.pack(">BII", vt, device, counter)
    ciphertext = ctr_xor(keys.enc, (vt >> 3) & 1, device, counter, plaintext)
    return header + ciphertext + compute_mic(keys.mic, header + ciphertext)


def _invalid(name: str, description: str, layer: str, data: bytes, error: str) -> dict[str, Any]:
    entry = {"name": name, "description": description, "layer": layer, "input": data.hex()}
    if layer == "radio":
        entry["root_key"] = ROOT_KEY.hex()
    entry["error"] = error
    return entry


def _garbage_error(data: bytes) -> str:
    """What spec section 2 says about a random payload, by its first byte."""
    if len(data) < 13:
        return "truncated"
    if data[0] >> 4 != 1:
        return "bad_version"
    if data[0] & 0x0F not in {0, 1, 2, 8, 9, 10}:
        return "bad_type"
    return "bad_mic"


def invalid_frames() -> list[dict[str, Any]]:
    household = encode_frame(FrameType.READING, DEVICE, 41, HOUSEHOLD, ROOT_KEY)
    flipped = bytearray(household)
    flipped[20] ^= 0x04
    required = body_to_map(HOUSEHOLD)
    del required[8]
    rng = random.Random(20240601)
    garbage = rng.randbytes(29)
    garbage_stream = bytes(b for b in rng.randbytes(120) if b != 0xC0)
    link_ok = encode_link(LinkType.DATA, household)
    bad_crc_link = bytearray(link_ok)
    bad_crc_link[12] ^= 0x01
    oversized_uplink = _seal(0x10, 50, cbor2.dumps({1: 1, 99: bytes(32)}))
    oversized_downlink = _seal(0x19, 50, cbor2.dumps({4: 900, 99: bytes(43)}))
    return [
        _invalid(
            "bad_mic_wrong_key",
            "household reading, decoded with key 2b7e1516...",
            "radio_other_key",
            household,
            "bad_mic",
        ),
        _invalid(
            "bad_mic_flipped_bit",
            "household reading with one ciphertext bit flipped",
            "radio",
            bytes(flipped),
            "bad_mic",
        ),
        _invalid(
            "truncated", "12 bytes: shorter than header + MIC", "radio", household[:12], "truncated"
        ),
        _invalid(
            "bad_version",
            "version nibble 2, otherwise a valid reading",
            "radio",
            _seal(0x20, 41, cbor2.dumps(body_to_map(HOUSEHOLD))),
            "bad_version",
        ),
        _invalid(
            "bad_type",
            "reserved frame type 3, valid MIC",
            "radio",
            _seal(0x13, 41, cbor2.dumps({1: 1})),
            "bad_type",
        ),
        _invalid(
            "oversized_uplink",
            "52-byte reading (uplink limit 51), valid MIC",
            "radio",
            oversized_uplink,
            "oversized",
        ),
        _invalid(
            "oversized_downlink",
            "65-byte config (downlink limit 64), valid MIC",
            "radio",
            oversized_downlink,
            "oversized",
        ),
        _invalid("garbage", "29 random bytes", "radio", garbage, _garbage_error(garbage)),
        _invalid(
            "malformed_not_cbor",
            "valid MIC over a body that is not a CBOR map",
            "radio",
            _seal(0x10, 60, b"\xff\x00\x13"),
            "malformed",
        ),
        _invalid(
            "malformed_missing_key",
            "reading without alarms (key 8), valid MIC",
            "radio",
            _seal(0x10, 61, cbor2.dumps(required)),
            "malformed",
        ),
        _invalid(
            "malformed_truncated_varint",
            "reading whose deltas end in a varint with the continuation bit set",
            "radio",
            _seal(0x10, 62, cbor2.dumps({**body_to_map(HOUSEHOLD), 5: b"\x05\x85"})),
            "malformed",
        ),
        _invalid(
            "malformed_wrong_type",
            "reading with register as a text string",
            "radio",
            _seal(0x10, 63, cbor2.dumps({**body_to_map(HOUSEHOLD), 1: "123"})),
            "malformed",
        ),
        _invalid(
            "malformed_ack_with_body",
            "ack with one byte of ciphertext, valid MIC",
            "radio",
            _seal(0x18, 41, b"\xa0"),
            "malformed",
        ),
        _invalid(
            "bad_crc_stream",
            "SLIP link frame with one bit flipped",
            "link_stream",
            bytes(bad_crc_link),
            "bad_crc",
        ),
        _invalid(
            "bad_crc_datagram",
            "UDP link frame with its CRC off by one",
            "link_datagram",
            encode_link_datagram(LinkType.DATA, household)[:-1] + b"\x00",
            "bad_crc",
        ),
        _invalid(
            "bad_link_type",
            "link type 0x07 with a valid CRC",
            "link_stream",
            encode_link(7, household),
            "bad_link_type",
        ),
        _invalid(
            "link_truncated",
            "a link frame of one byte",
            "link_stream",
            bytes([0xC0, 0x01, 0xC0]),
            "truncated",
        ),
        _invalid(
            "link_oversized",
            "301 bytes between two ENDs",
            "link_stream",
            bytes([0xC0]) + bytes(301) + bytes([0xC0]),
            "oversized",
        ),
        _invalid(
            "garbage_stream",
            "random bytes without END, then END: one candidate frame that fails its CRC",
            "link_stream",
            bytes([0xC0]) + garbage_stream + bytes([0xC0]),
            "bad_crc",
        ),
    ]


def replay_cases() -> list[dict[str, Any]]:
    counters = [10, 11, 9, 11, 80, 16, 17, 80, 81]
    window = ReplayWindow()
    results = []
    for c in counters:
        verdict = window.check(c)
        results.append(verdict)
        if verdict == "new":
            window.accept(c)
    return [
        {
            "name": "replay_window",
            "description": "counters in arrival order through a fresh 64-counter window; "
            "'seen' and 'too_old' are rejected as replay (a gateway reports a 'seen' frame "
            "with identical bytes as a duplicate)",
            "counters": counters,
            "results": results,
            "final": {"highest": window.highest, "bitmap": f"{window.bitmap:016x}"},
            "error": "replay",
        }
    ]


def build() -> dict[str, Any]:
    keys_other = DeviceKeys.derive(OTHER_KEY)
    keys_root = DeviceKeys.derive(ROOT_KEY)
    doc: dict[str, Any] = {
        "format": "meterlink-vectors/1",
        "protocol_version": 1,
        "spec": "docs/protocol.md",
        "layout": "protocol/vectors/README.md",
        "crc16": [
            {"data": b"123456789".hex(), "crc": "29b1"},
            {"data": "", "crc": f"{crc16(b''):04x}"},
        ],
        "aes128": [FIPS197],
        "cmac": [
            {"key": RFC4493_KEY, "message": RFC4493_MESSAGE[: 2 * n], "mac": mac}
            for n, mac in RFC4493
        ],
        "key_derivation": [
            {"root_key": ROOT_KEY.hex(), "enc": keys_root.enc.hex(), "mic": keys_root.mic.hex()},
            {"root_key": OTHER_KEY.hex(), "enc": keys_other.enc.hex(), "mic": keys_other.mic.hex()},
        ],
        "varint": [
            {"values": v, "bytes": encode_varints(v).hex()}
            for v in ([0, 1, 127], [128, 300, 16383, 16384], [0xFFFFFFFF])
        ],
        "slip": [
            {"link_type": 1, "data": data.hex(), "link_frame": encode_link(1, data).hex()}
            for data in (b"\x10\x20", b"\xc0", b"\xdb", b"\x01\xc0\xdb\xdc\xdd\x02")
        ],
        "valid_frames": valid_frames(),
        "invalid": invalid_frames(),
        "replay": replay_cases(),
    }
    _self_check(doc)
    return doc


def _self_check(doc: dict[str, Any]) -> None:
    """Refuse to write a file whose invalid cases do not give their stated error."""
    for case in doc["invalid"]:
        data = bytes.fromhex(case["input"])
        layer = case["layer"]
        try:
            if layer == "radio":
                decode_frame(data, ROOT_KEY)
            elif layer == "radio_other_key":
                decode_frame(data, OTHER_KEY)
            elif layer == "link_datagram":
                decode_link_datagram(data)
            else:
                results = LinkDecoder().feed(data)
                errors = [r for r in results if isinstance(r, ProtocolError)]
                if len(results) == 1 and errors:
                    raise errors[0]
            got = "ok"
        except ProtocolError as exc:
            got = exc.code
        if got != case["error"]:
            raise SystemExit(f"vector {case['name']}: gives {got}, expected {case['error']}")


def render() -> str:
    return json.dumps(build(), indent=1) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
