"""Generate protocol/vectors/v2.json, the test vectors of wire format v2.

Deterministic: fixed keys, values and seeds. Run `python protocol/vectors/generate.py`
to rewrite v2.json, `--check` to verify the checked-in file is current (exit 1 if not).
The generator refuses to write a file in which any case does not give its stated result.
"""

from __future__ import annotations

import json
import random
import struct
import sys
from pathlib import Path
from typing import Any

from meterlink.protocol import (
    Ack,
    Alarm,
    AlarmFlags,
    Body,
    Config,
    DeviceKeys,
    FrameType,
    Header,
    LinkDecoder,
    LinkFrame,
    LinkType,
    ProtocolError,
    Reading,
    ReplayWindow,
    Status,
    TimeSync,
    Unit,
    body_to_map,
    classify,
    counter_candidates,
    crc16,
    decode_frame,
    decode_link_datagram,
    decode_received,
    encode_frame,
    encode_link,
    encode_link_datagram,
    encode_rxinfo,
    extend_counter,
    payload_digest,
    radio,
)
from meterlink.protocol.cbor_body import encode_body_map
from meterlink.protocol.crypto import compute_mic, ctr_xor
from meterlink.protocol.errors import UnknownDevice
from meterlink.protocol.named import body_to_fields, map_to_json
from meterlink.protocol.varint import encode_varints

OUTPUT = Path(__file__).with_name("v2.json")

ROOT_KEY = bytes(range(16))
OTHER_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
DEVICE = 0x12345678
OTHER_DEVICE = 0x0BADCAFE

# The household reading of wire format v1 (its vector file's first frame): v2 rejects it.
V1_HOUSEHOLD = bytes.fromhex(
    "1012345678000000293fb444f1eab1c3d77da70029dd78f3e703ea1226657750c8bf6b4c189e"
    "0389077cd195d7589c22a25a"
)

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

HOUSEHOLD_DELTAS = (12, 0, 3, 41, 7, 0, 0, 2, 95, 18, 4, 0)
HOUSEHOLD = Reading(
    register=123456,
    pulse_weight=1,
    unit=Unit.L,
    interval_s=900,
    deltas=HOUSEHOLD_DELTAS,
    age_s=5,
    interval_seq=1000,
    alarms=AlarmFlags(0),
)
FIFTEEN_YEARS = Reading(
    register=2_800_000,
    pulse_weight=1,
    unit=Unit.L,
    interval_s=900,
    deltas=HOUSEHOLD_DELTAS,
    age_s=23,
    interval_seq=525_600,
    alarms=AlarmFlags.LEAK,
)
WORST_CASE = Reading(
    register=0xFFFFFFFF,
    pulse_weight=65535,
    unit=Unit.M3,
    interval_s=86400,
    deltas=(0xFFFFFFFF, 127),
    age_s=65535,
    interval_seq=0xFFFFFFFF,
    alarms=AlarmFlags(255),
)
MOST_DELTAS = Reading(
    register=0,
    pulse_weight=1,
    unit=Unit.ML,
    interval_s=1,
    deltas=(0,) * 23,
    age_s=0,
    interval_seq=0,
    alarms=AlarmFlags(0),
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
STATUS_FULL = Status(
    battery_pct=100,
    fw_version=0x0200,
    resets=70000,
    reason=0,
    register=0xFFFFFFF0,
    pulse_weight=1000,
    unit=Unit.ML,
    interval_s=86400,
    alarms=AlarmFlags(63),
    reverse=0x10000,
    leak_intervals=65535,
    burst_pulses=0xFFFFFFFF,
    burst_intervals=65535,
    backflow_pulses=0xFFFFFFFF,
)


def _fields(body: Body) -> dict[str, Any]:
    """Decoded body by field name, without the keys v2 ignores."""
    out = body_to_fields(body)
    out.pop("extra", None)
    return out


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
    decoded = decode_frame(payload, ROOT_KEY, counter=counter)
    plaintext = ctr_xor(
        DeviceKeys.derive(ROOT_KEY).enc, frame_type.direction, DEVICE, counter, payload[7:-4]
    )
    entry: dict[str, Any] = {
        "name": name,
        "description": description,
        "root_key": ROOT_KEY.hex(),
        "payload": payload.hex(),
        "size": len(payload),
        "link_frame": encode_link(LinkType.DATA, payload).hex(),
        "header": {
            "version": 2,
            "frame_type": int(frame_type),
            "device_id": DEVICE,
            "counter_on_air": counter & 0xFFFF,
        },
        "counter": counter,
        "body": _fields(decoded.body),
        "map": map_to_json(body_to_map(decoded.body)),
        "plaintext": plaintext.hex(),
    }
    extra = getattr(decoded.body, "extra", {})
    if extra:
        entry["ignored_keys"] = sorted(extra)
    if _fields(decoded.body) != _fields(body) or extra:
        entry["encoder_input"] = body_to_fields(body)
    if rssi is not None:
        entry["rxinfo_link_frame"] = encode_rxinfo(payload, rssi, -22).hex()
        entry["rxinfo"] = {"rssi": rssi, "snr_qdb": -22}
    return entry


def valid_frames() -> list[dict[str, Any]]:
    downlink_64 = Config(interval_s=900, extra={40: bytes(range(44))})
    return [
        _valid("reading_household",
               "typical household (spec 8): 1 L/pulse, 15 min, 12 deltas < 128: 48 bytes",
               FrameType.READING, 41, HOUSEHOLD, rssi=-97),
        _valid("reading_15_years",
               "newest interval 525,600 (15 years of 15 minutes), counter 600,000 (16 bits "
               "on air), age 23 s, leak flag: 12 household deltas in 50 bytes",
               FrameType.READING, 600_000, FIFTEEN_YEARS),
        _valid("reading_worst_case_51",
               "every fixed field at its largest allowed value (spec 8): a 5-byte and a "
               "1-byte delta fit, exactly 51 bytes",
               FrameType.READING, 0xFFFFFFFE, WORST_CASE),
        _valid("reading_most_deltas_51",
               "every fixed field at its smallest: 23 deltas, the most a reading can carry, "
               "exactly 51 bytes",
               FrameType.READING, 1, MOST_DELTAS),
        _valid("reading_trimmed",
               "48 deltas given (encoder_input); the encoder keeps the newest that fit 51 bytes",
               FrameType.READING, 42, LONG_HISTORY),
        _valid("reading_unknown_keys",
               "keys v2 does not define (40: a byte string, 99: an integer) are well-formed "
               "and ignored: ignored_keys",
               FrameType.READING, 43,
               Reading(register=7, pulse_weight=1, unit=Unit.L, interval_s=900, deltas=(1,),
                       age_s=0, interval_seq=0, alarms=AlarmFlags(0),
                       extra={40: b"\x01\x02", 99: 5})),
        _valid("alarm_leak_backflow",
               "confirmed alarm: leak raised, backflow already active, reverse pulses",
               FrameType.ALARM, 44,
               Alarm(register=123460, interval_seq=1001,
                     alarms=AlarmFlags.LEAK | AlarmFlags.BACKFLOW, raised=AlarmFlags.LEAK,
                     reverse=12)),
        _valid("alarm_counter_above_16_bits",
               "alarm with frame counter 65,541: 5 on air, 65541 inside the MIC and CTR",
               FrameType.ALARM, 65_541,
               Alarm(register=9, interval_seq=70_000, alarms=AlarmFlags.UNEXPECTED_RESET,
                     raised=AlarmFlags.UNEXPECTED_RESET, reverse=0)),
        _valid("status_boot", "status at boot with the configuration echo",
               FrameType.STATUS, 45,
               Status(battery_pct=97, fw_version=0x0200, resets=3, reason=1, register=123456,
                      pulse_weight=1, unit=Unit.L, interval_s=900,
                      alarms=AlarmFlags.UNEXPECTED_RESET, reverse=0)),
        _valid("status_config_echo",
               "status after a config downlink: the thresholds 20-23 first (spec 4.4)",
               FrameType.STATUS, 46,
               Status(battery_pct=88, fw_version=0x0200, resets=4, reason=0, register=123999,
                      pulse_weight=1, unit=Unit.L, interval_s=900, alarms=AlarmFlags(0),
                      reverse=0, leak_intervals=96, burst_pulses=100, burst_intervals=2,
                      backflow_pulses=10)),
        _valid("status_trimmed",
               "every optional key at a large value (encoder_input): the encoder keeps them "
               "in the order of spec 4.4 while they fit 51 bytes",
               FrameType.STATUS, 47, STATUS_FULL),
        _valid("status_safe_mode",
               "safe mode: configuration unreadable (error 2), only the required keys and error",
               FrameType.STATUS, 48,
               Status(battery_pct=64, fw_version=0x0200, resets=17, reason=2, error=2)),
        _valid("ack", "ack of uplink counter 44 (the alarm): counter = acked counter, no body",
               FrameType.ACK, 44, Ack()),
        _valid("ack_counter_above_16_bits",
               "ack of the alarm with counter 65,541: 11 bytes, 5 on air",
               FrameType.ACK, 65_541, Ack()),
        _valid("config_all", "downlink config setting every configurable value",
               FrameType.CONFIG, 7,
               Config(interval_s=900, leak_intervals=96, burst_pulses=100, burst_intervals=2,
                      backflow_pulses=10)),
        _valid("config_unknown_key",
               "downlink config with one known key and an unknown key (40) to ignore",
               FrameType.CONFIG, 8, Config(interval_s=300, extra={40: 1})),
        _valid("downlink_64",
               "a config of exactly 64 bytes, the downlink limit (unknown key 40: 44 bytes)",
               FrameType.CONFIG, 9, downlink_64),
        _valid("time", "downlink time sync", FrameType.TIME, 10,
               TimeSync(unix_time=1700000000)),
    ]


def _seal(vt: int, counter: int, plaintext: bytes, key: bytes = ROOT_KEY,
          device: int = DEVICE) -> bytes:
    """A v2 radio payload with a valid MIC over any plaintext (for malformed cases)."""
    keys = DeviceKeys.derive(key)
    ciphertext = ctr_xor(keys.enc, (vt >> 3) & 1, device, counter, plaintext)
    auth = struct.pack(">BII", vt, device, counter)
    header = struct.pack(">BIH", vt, device, counter & 0xFFFF)
    return header + ciphertext + compute_mic(keys.mic, auth + ciphertext)


def _case(name: str, description: str, layer: str, data: bytes, error: str, *,
          key: bytes = ROOT_KEY, counter: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "description": description, "layer": layer,
                             "input": data.hex()}
    if layer in ("radio", "uplink", "downlink"):
        entry["root_key"] = key.hex()
    if counter is not None:
        entry["counter"] = counter
    entry["error"] = error
    return entry


# Bodies that are not v2 CBOR, sent as config downlinks with a valid MIC, so that both a
# gateway's and a module's decoder must reject them. The hex is written out: it is the case.
MALFORMED_CONFIG = [
    ("tag_bignum", "value is a bignum (tag 2)", "a104c24101"),
    ("tag_self_describe", "the map is tagged 55799 (self-described CBOR)", "d9d9f7a1041903 84"),
    ("tag_on_key", "the key is tagged (tag 0)", "a1c0041903 84"),
    ("indefinite_map", "indefinite-length map", "bf04190384ff"),
    ("indefinite_bytes", "indefinite-length byte string as a value", "a118285f4100ff"),
    ("indefinite_text", "indefinite-length text string as a value", "a118287f6100ff"),
    ("duplicate_key", "key 4 twice (900, then 300: a last-wins decoder takes 300)",
     "a2041903840419012c"),
    ("keys_descending", "keys 21 then 4: not in ascending order", "a215186404190384"),
    ("float_key", "key 4.0 as a half float", "a1f94400190384"),
    ("text_key", "key \"4\" as a text string", "a161341903 84"),
    ("negative_key", "key -4", "a123190384"),
    ("bytes_key", "a byte string as the key", "a1410419 0384"),
    ("trailing_bytes", "one byte after the map", "a10419038400"),
    ("trailing_map", "a second map after the map", "a104190384a0"),
    ("true_as_int", "interval true", "a104f5"),
    ("false_as_int", "interval false", "a104f4"),
    ("null_value", "interval null", "a104f6"),
    ("undefined_value", "interval undefined", "a104f7"),
    ("simple_value", "interval simple(16)", "a104f0"),
    ("float_value", "interval 900.0 as a single float", "a104fa44610000"),
    ("negative_value", "interval -1", "a10420"),
    ("text_value", "unknown key 40 with a text string", "a1182863616263"),
    ("array_value", "unknown key 40 with an array", "a118288201 02"),
    ("nested_map", "unknown key 40 with a map (depth 2)", "a11828a10101"),
    ("nested_deeper", "a map in a map in the map (depth 3)", "a11828a101a10101"),
    ("uint64", "interval 2^32 (8-byte integer)", "a1041b0000000100000000"),
    ("uint64_small", "interval 900 in an 8-byte head", "a1041b0000000000000384"),
    ("long_head_uint32", "interval 900 in a 4-byte head (not the shortest)", "a1041a00000384"),
    ("long_head_uint8", "interval 5 in a 1-byte head (not the shortest)", "a1041805"),
    ("long_head_key", "key 4 in a 1-byte head (not the shortest)", "a11804190384"),
    ("long_head_map", "map of 1 entry in a 1-byte head", "b80104190384"),
    ("reserved_info", "additional information 28 (reserved)", "a1041c"),
    ("not_a_map", "an array instead of a map", "83010203"),
    ("cut_in_head", "ends inside the head of a value", "a2041903"),
    ("missing_value", "a map of 2 entries holding 1", "a2041903 84"),
    ("bytes_past_end", "a byte string claiming 64 bytes", "a118285840 00"),
    ("too_many_entries", "a map head claiming 33 entries", "b8210401"),
    ("empty_body", "no body at all (only an ack has none)", ""),
]


def _reading_map(**changes: Any) -> dict[int, Any]:
    m: dict[int, Any] = dict(body_to_map(HOUSEHOLD))
    m[5] = b"\x01\x02\x03"
    for k, v in changes.items():
        number = int(k[1:])
        if v is None:
            del m[number]
        else:
            m[number] = v
    return m


def _cbor(m: dict[int, Any]) -> bytes:
    return encode_body_map(m)


def radio_cases() -> list[dict[str, Any]]:
    household = encode_frame(FrameType.READING, DEVICE, 41, HOUSEHOLD, ROOT_KEY)
    flipped = bytearray(household)
    flipped[20] ^= 0x04
    vt_changed = bytearray(household)
    vt_changed[0] = 0x22  # a status, same everything else
    rng = random.Random(20240601)
    garbage = rng.randbytes(29)
    ack_52 = _seal(0x28, 44, bytes(41))
    big_body = _cbor({1: 1, 40: bytes(34)})  # 41 bytes: a 52-byte uplink
    reading_52 = _seal(0x20, 50, big_body)
    config_65 = _seal(0x29, 50, _cbor({4: 900, 40: bytes(45)}))
    assert len(config_65) == 65 and len(reading_52) == 52
    cases = [
        _case("truncated_10", "10 bytes: shorter than header + MIC (11)", "radio",
              household[:10], "truncated"),
        _case("truncated_empty", "no bytes at all", "radio", b"", "truncated"),
        _case("oversized_uplink", "52-byte reading (uplink limit 51), valid MIC", "radio",
              reading_52, "oversized"),
        _case("oversized_downlink", "65-byte config (downlink limit 64), valid MIC", "radio",
              config_65, "oversized"),
        _case("order_length_before_version",
              "65 bytes with version 1: the length is checked first", "radio",
              b"\x10" + config_65[1:], "oversized"),
        _case("order_version_before_uplink_size",
              "52 bytes with version 1: version before the uplink limit", "radio",
              b"\x10" + reading_52[1:], "bad_version"),
        _case("bad_version_v1_frame",
              "the household reading of wire format v1, byte for byte: v1 is not supported",
              "radio", V1_HOUSEHOLD, "bad_version"),
        _case("bad_version_3", "version nibble 3, otherwise a valid reading", "radio",
              b"\x30" + household[1:], "bad_version"),
        _case("bad_type_3", "reserved frame type 3, valid MIC", "radio",
              _seal(0x23, 41, _cbor({1: 1})), "bad_type"),
        _case("bad_type_15", "reserved frame type 15, valid MIC", "radio",
              _seal(0x2F, 41, b""), "bad_type"),
        _case("order_type_before_uplink_size",
              "52 bytes of reserved type 7: the type before the uplink limit", "radio",
              b"\x27" + reading_52[1:], "bad_type"),
        _case("bad_direction_ack_on_uplink_path",
              "an ack heard by a gateway (uplink path)", "uplink",
              encode_frame(FrameType.ACK, DEVICE, 44, Ack(), ROOT_KEY), "bad_direction"),
        _case("bad_direction_before_size",
              "a 52-byte ack on the uplink path: direction before the uplink limit",
              "uplink", ack_52, "bad_direction"),
        _case("bad_direction_reading_on_downlink_path",
              "a reading heard by a module (downlink path)", "downlink", household,
              "bad_direction"),
        _case("unknown_device", "a reading from a device the receiver has no key for",
              "uplink", _seal(0x20, 41, _cbor(body_to_map(HOUSEHOLD)), device=OTHER_DEVICE),
              "unknown_device"),
        _case("unknown_device_before_mic",
              "an unknown device with a wrong MIC: unknown_device, no MIC is computed",
              "uplink", _seal(0x20, 41, b"", key=OTHER_KEY, device=OTHER_DEVICE)[:-1] + b"\x00",
              "unknown_device"),
        _case("bad_mic_wrong_key", "household reading, decoded with key 2b7e1516...",
              "radio", household, "bad_mic", key=OTHER_KEY),
        _case("bad_mic_flipped_bit", "household reading with one ciphertext bit flipped",
              "radio", bytes(flipped), "bad_mic"),
        _case("bad_mic_type_changed", "household reading relabelled as a status",
              "radio", bytes(vt_changed), "bad_mic"),
        _case("bad_mic_wrong_high_part",
              "household reading (counter 41) decoded as counter 65,577 (same 16 bits)",
              "radio", household, "bad_mic", counter=41 + 65536),
        _case("garbage", "29 random bytes (first byte decides: version 11)", "radio",
              garbage, "bad_version"),
        _case("malformed_ack_with_body", "ack with one byte of ciphertext, valid MIC",
              "radio", _seal(0x28, 41, b"\xa0"), "malformed"),
        _case("malformed_52_byte_ack", "a 52-byte ack on the downlink path", "downlink",
              ack_52, "malformed"),
    ]
    for i, (name, description, body_hex) in enumerate(MALFORMED_CONFIG):
        cases.append(_case(f"malformed_{name}", f"config downlink: {description}", "radio",
                           _seal(0x29, 100 + i, bytes.fromhex(body_hex.replace(" ", ""))),
                           "malformed"))
    readings = [
        ("missing_key", "reading without alarms (key 8)", _reading_map(k8=None)),
        ("unit_3", "unit 3 (0..2 only)", _reading_map(k3=3)),
        ("pulse_weight_0", "pulse weight 0 (1..65535)", _reading_map(k2=0)),
        ("pulse_weight_65536", "pulse weight 65536 (1..65535)", _reading_map(k2=65536)),
        ("interval_0", "interval 0 s (1..86400)", _reading_map(k4=0)),
        ("interval_86401", "interval 86401 s (1..86400)", _reading_map(k4=86401)),
        ("age_65536", "age 65536 s (0..65535)", _reading_map(k6=65536)),
        ("alarms_256", "alarm flags 256 (0..255)", _reading_map(k8=256)),
        ("deltas_as_uint", "deltas as an integer, not a byte string", _reading_map(k5=7)),
        ("register_as_bytes", "register as a byte string", _reading_map(k1=b"\x01")),
        ("varint_cut", "deltas end in a varint with the continuation bit set",
         _reading_map(k5=b"\x05\x85")),
        ("varint_6_bytes", "a varint of 6 bytes", _reading_map(k5=b"\x81\x80\x80\x80\x80\x00")),
        ("varint_2_32", "a 5-byte varint of 2^32", _reading_map(k5=b"\x80\x80\x80\x80\x10")),
        ("varint_padded", "the varint 0 written in 2 bytes (80 00)",
         _reading_map(k5=b"\x03\x80\x00")),
    ]
    for i, (name, description, m) in enumerate(readings):
        cases.append(_case(f"malformed_reading_{name}", f"reading: {description}", "radio",
                           _seal(0x20, 200 + i, _cbor(m)), "malformed"))
    cases += [
        _case("malformed_status_battery_101", "status with battery 101 %", "radio",
              _seal(0x22, 230, _cbor({9: 101, 10: 512, 11: 0, 14: 1})), "malformed"),
        _case("malformed_status_reason_3", "status with reason 3", "radio",
              _seal(0x22, 231, _cbor({9: 100, 10: 512, 11: 0, 14: 3})), "malformed"),
        _case("malformed_alarm_missing_raised", "alarm without key 12", "radio",
              _seal(0x21, 232, _cbor({1: 5, 7: 5, 8: 1})), "malformed"),
        _case("malformed_time_missing", "time downlink without key 30", "radio",
              _seal(0x2A, 233, _cbor({31: 5})), "malformed"),
    ]
    return cases


def _stream(name: str, description: str, data: bytes, results: list[dict[str, Any]],
            finish: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"name": name, "description": description, "input": data.hex(), "results": results,
            "finish": finish or []}


def link_cases() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    household = encode_frame(FrameType.READING, DEVICE, 41, HOUSEHOLD, ROOT_KEY)
    ack = encode_frame(FrameType.ACK, DEVICE, 44, Ack(), ROOT_KEY)
    link_ok = encode_link(LinkType.DATA, household)
    bad_crc = bytearray(link_ok)
    bad_crc[12] ^= 0x01
    rng = random.Random(20240602)
    garbage = bytes(b for b in rng.randbytes(120) if b != 0xC0)
    # an escape that RFC 1055 would keep as the byte itself, with the CRC computed over
    # that byte: only a decoder that rejects invalid escapes rejects this frame
    filler = 0
    while True:
        content = bytes([1, 0x41, filler]) + bytes(8)
        content += crc16(content).to_bytes(2, "big")
        if 0xC0 not in content and 0xDB not in content:
            break
        filler += 1
    bad_escape = b"\xc0\x01\xdb" + bytes(content[1:]) + b"\xc0"
    data_297 = bytes([0x20]) + bytes(296)
    frame_300 = encode_link(LinkType.DATA, data_297)
    assert len(frame_300) == 302
    ok: dict[str, Any] = {"ok": household.hex(), "link_type": 1}
    streams = [
        _stream("one_frame", "one DATA frame", link_ok, [ok]),
        _stream("several_frames", "three frames back to back, sharing ENDs",
                link_ok + link_ok[1:] + encode_link(LinkType.DATA, ack)[1:],
                [ok, ok, {"ok": ack.hex(), "link_type": 1}]),
        _stream("fault_between_frames", "a frame, a frame with a flipped bit, a frame",
                link_ok + bytes(bad_crc[1:]) + link_ok[1:],
                [ok, {"error": "bad_crc"}, ok]),
        _stream("joined_mid_frame", "bytes before the first END are skipped",
                household[5:] + link_ok, [ok]),
        _stream("empty_frames", "END END END: no frame, no error", b"\xc0\xc0\xc0", []),
        _stream("empty_then_frame", "empty frames around a frame", b"\xc0\xc0" + link_ok + b"\xc0",
                [ok]),
        _stream("stream_bad_crc", "SLIP link frame with one bit flipped", bytes(bad_crc),
                [{"error": "bad_crc"}]),
        _stream("bad_link_type", "link type 0x07 with a valid CRC", encode_link(7, household),
                [{"error": "bad_link_type"}]),
        _stream("link_1_byte", "a link frame of 1 byte", b"\xc0\x01\xc0",
                [{"error": "truncated"}]),
        _stream("link_2_bytes", "a link frame of 2 bytes", b"\xc0\x01\x02\xc0",
                [{"error": "truncated"}]),
        _stream("link_3_bytes", "type and CRC, no data: a link frame with an empty payload",
                encode_link(LinkType.DATA, b""), [{"ok": "", "link_type": 1}]),
        _stream("rxinfo_short", "RXINFO with 1 byte of link data (rssi, no snr)",
                encode_link(LinkType.RXINFO, b"\x9f"), [{"error": "truncated"}]),
        _stream("rxinfo_no_payload", "RXINFO with rssi and snr only: empty payload",
                encode_link(LinkType.RXINFO, b"\x9f\xea"), [{"ok": "", "link_type": 2}]),
        _stream("invalid_escape", "ESC followed by 0x41, CRC right for 0x41: rejected",
                bad_escape, [{"error": "bad_crc"}]),
        _stream("escape_at_end", "a frame that ends inside an escape (ESC END)",
                b"\xc0\x01\x02\xdb\xc0", [{"error": "bad_crc"}]),
        _stream("link_300", "300 bytes between two ENDs: the longest link frame",
                frame_300, [{"ok": data_297.hex(), "link_type": 1}]),
        _stream("link_301", "301 bytes between two ENDs", b"\xc0" + bytes(301) + b"\xc0",
                [{"error": "oversized"}]),
        _stream("link_301_then_frame", "an overlong run, then a good frame",
                b"\xc0" + bytes(400) + link_ok, [{"error": "oversized"}, ok]),
        _stream("stream_garbage", "random bytes without END, then END: one frame failing its CRC",
                b"\xc0" + garbage + b"\xc0", [{"error": "bad_crc"}]),
        _stream("cut_mid_frame", "a frame, then half a frame when the line ends: incomplete",
                link_ok + link_ok[1:20], [ok], [{"error": "incomplete"}]),
    ]
    datagrams = [
        _case("datagram_bad_crc", "UDP link frame with its CRC off", "link_datagram",
              encode_link_datagram(LinkType.DATA, household)[:-1] + b"\x00", "bad_crc"),
        _case("datagram_2_bytes", "a 2-byte datagram", "link_datagram", b"\x01\x02",
              "truncated"),
        _case("datagram_301", "a 301-byte datagram", "link_datagram",
              encode_link_datagram(LinkType.DATA, bytes(298)), "oversized"),
        _case("datagram_rxinfo_short", "RXINFO datagram with 1 byte of link data",
              "link_datagram", encode_link_datagram(LinkType.RXINFO, b"\x9f"), "truncated"),
        _case("datagram_bad_link_type", "link type 0x00", "link_datagram",
              encode_link_datagram(0, household), "bad_link_type"),
    ]
    return streams, datagrams


def counter_cases() -> list[dict[str, Any]]:
    """Spec 3.4: extending the 16 on-air bits from the highest counter accepted."""
    rows = [(-1, 5), (0, 1), (100, 37), (100, 36), (100, 101), (65535, 0), (65530, 4),
            (70000, 4464), (70000, 4400), (70000, 4401), (200_000, 3392), (5, 65535)]
    out = []
    for highest, on_air in rows:
        out.append({"highest": highest, "on_air": on_air,
                    "counter": extend_counter(on_air, highest),
                    "candidates": list(counter_candidates(on_air, highest))})
    return out


def downlink_counter_cases() -> list[dict[str, Any]]:
    """Spec 3.4: a module extends a config/time counter from the last one it accepted and
    drops it unseen (`stale`) unless the result is above that."""
    out = []
    for last, on_air in [(0, 1), (7, 7), (7, 6), (7, 8), (65535, 0), (65600, 63),
                         (65600, 62), (65600, 1000)]:
        counter = extend_counter(on_air, last)
        payload = encode_frame(FrameType.TIME, DEVICE, counter, TimeSync(unix_time=1_800_000_000),
                               ROOT_KEY)
        out.append({"last": last, "on_air": on_air, "counter": counter,
                    "outcome": "new" if counter > last else "stale", "payload": payload.hex()})
    return out


class Receiver:
    """The reference of spec 3.5, as a gateway applies it: per device the window and the
    digest of each accepted frame in it; `state()` is all it persists."""

    def __init__(self, keys: dict[int, bytes], state: dict[str, Any] | None = None) -> None:
        self.keys = keys
        self.windows: dict[int, ReplayWindow] = {}
        self.seen: dict[int, dict[int, bytes]] = {}
        for dev, st in (state or {}).items():
            self.windows[int(dev)] = ReplayWindow(st["highest"], int(st["bitmap"], 16))
            self.seen[int(dev)] = {int(c): bytes.fromhex(d) for c, d in st["digests"].items()}

    def state(self) -> dict[str, Any]:
        return {
            str(dev): {"highest": w.highest, "bitmap": f"{w.bitmap:016x}",
                       "digests": {str(c): d.hex() for c, d in sorted(self.seen[dev].items())}}
            for dev, w in sorted(self.windows.items())
        }

    def rekey(self, device: int, key: bytes) -> None:
        self.keys[device] = key
        self.windows.pop(device, None)
        self.seen.pop(device, None)

    def receive(self, payload: bytes) -> tuple[str, int | None, bool]:
        """(outcome, counter, ack sent)."""
        try:
            header = Header.parse(payload, uplink=True)
            key = self.keys.get(header.device_id)
            if key is None:
                raise UnknownDevice(f"no key for device {header.device_id}")
            dev = header.device_id
            window = self.windows.get(dev)
            highest = window.highest if window else -1
            counter = counter_candidates(header.counter, highest)[0]
            if window and classify(window, self.seen.get(dev), counter, payload) == "duplicate":
                return "duplicate", counter, header.frame_type.confirmed
            frame = decode_received(payload, key, highest=highest, uplink=True)
            counter = frame.counter
            if classify(window, self.seen.get(dev), counter, payload) == "replay":
                return "replay", counter, False
        except ProtocolError as exc:
            return exc.code, None, False
        window = self.windows.setdefault(dev, ReplayWindow())
        window.accept(counter)
        seen = self.seen.setdefault(dev, {})
        seen[counter] = payload_digest(payload)
        for old in [c for c in seen if not window.in_window(c)]:
            del seen[old]
        return "accepted", counter, frame.frame_type.confirmed


def replay_sequences() -> list[dict[str, Any]]:
    def up(ftype: FrameType, counter: int, body: Body, key: bytes = ROOT_KEY) -> bytes:
        return encode_frame(ftype, DEVICE, counter, body, key)

    def reading(counter: int, seq: int) -> bytes:
        return up(FrameType.READING, counter, Reading(
            register=1000 + seq, pulse_weight=1, unit=Unit.L, interval_s=900,
            deltas=(seq % 7,), age_s=1, interval_seq=seq, alarms=AlarmFlags(0)))

    alarm = up(FrameType.ALARM, 65_540, Alarm(register=2000, interval_seq=65_000,
                                              alarms=AlarmFlags.LEAK, raised=AlarmFlags.LEAK))
    forged_same_counter = up(FrameType.ALARM, 65_540, Alarm(
        register=2001, interval_seq=65_000, alarms=AlarmFlags.LEAK, raised=AlarmFlags.LEAK))
    steps: list[tuple[str, bytes | None, str]] = [
        ("the first frame this gateway hears from the module (already at 65,530)",
         reading(65_530, 60_000), ""),
        ("next reading", reading(65_531, 60_001), ""),
        ("an alarm; counter 65,540 crosses 2^16: 4 on air", alarm, ""),
        ("the alarm again, its ack was lost: duplicate, acked again", alarm, ""),
        ("another receiver's copy of the reading 65,531: duplicate, no ack",
         reading(65_531, 60_001), ""),
        ("a late reading inside the window (65,535)", reading(65_535, 60_002), ""),
        ("gateway restart: the state below is all that survives", None, "restart"),
        ("the alarm again after the restart: duplicate, acked again", alarm, ""),
        ("different bytes with the alarm's counter (valid MIC): replay", forged_same_counter,
         ""),
        ("a reading 63 below the highest (65,477 is not in the window yet it was never "
         "seen): accepted", reading(65_477, 59_990), ""),
        ("65,476: 64 below the highest, below the window: replay", reading(65_476, 59_989),
         ""),
        ("a jump of 65,000 counters (frames nobody heard)", reading(130_540, 61_000), ""),
        ("the first reading, heard again much later: below the window: replay",
         reading(65_530, 60_000), ""),
        ("the device is re-keyed: fresh window, counter 0 with the new key", None, "rekey"),
        ("first reading with the new key", up(FrameType.READING, 0, HOUSEHOLD, OTHER_KEY), ""),
        ("a frame under the old key: bad_mic", reading(130_541, 61_001), ""),
    ]
    receiver = Receiver({DEVICE: ROOT_KEY})
    out: list[dict[str, Any]] = []
    for description, payload, action in steps:
        if action == "restart":
            state = receiver.state()
            receiver = Receiver({DEVICE: ROOT_KEY}, json.loads(json.dumps(state)))
            out.append({"description": description, "restart": True, "state": state})
            continue
        if action == "rekey":
            receiver.rekey(DEVICE, OTHER_KEY)
            out.append({"description": description, "rekey": OTHER_KEY.hex()})
            continue
        assert payload is not None
        outcome, counter, ack = receiver.receive(payload)
        step: dict[str, Any] = {"description": description, "payload": payload.hex(),
                                "outcome": outcome, "ack": ack}
        if counter is not None:
            step["counter"] = counter
        out.append(step)
    return [{
        "name": "alarm_retransmitted_across_a_restart",
        "description": "real frames of one device through a fresh receiver (spec 3.5); "
        "'restart' rebuilds the receiver from 'state' alone; 'rekey' installs a new key",
        "device_id": DEVICE,
        "root_key": ROOT_KEY.hex(),
        "steps": out,
    }]


def lora_cases() -> dict[str, Any]:
    """Spec 6: the parameters, and airtime by Semtech's formula for each frame size."""
    sizes = {"ack": 11, "time": 19, "config_all": 26, "alarm_largest": 36,
             "reading_household": 48, "reading_largest": 51, "downlink_largest": 64}
    return {
        "channels_hz": list(radio.CHANNELS_HZ),
        "bandwidth_hz": radio.BANDWIDTH_HZ,
        "coding_rate": "4/5",
        "preamble_symbols": radio.PREAMBLE_SYMBOLS,
        "explicit_header": True,
        "crc": True,
        "low_data_rate_optimize_from_sf": 11,
        "sync_word": radio.SYNC_WORD,
        "iq_inverted": {"uplink": False, "downlink": False},  # P2P: normal IQ both ways
        "duty_cycle": radio.DUTY_CYCLE,
        "airtime_ms": [
            {"frame": name, "bytes": n,
             "sf": {str(sf): round(radio.airtime_ms(n, sf), 3) for sf in radio.SPREADING_FACTORS}}
            for name, n in sizes.items()
        ],
        "receive_window_ms": {str(sf): radio.receive_window_ms(sf)
                              for sf in radio.SPREADING_FACTORS},
    }


def window_cases() -> list[dict[str, Any]]:
    counters = [10, 11, 9, 11, 80, 16, 17, 80, 81, 17]
    window = ReplayWindow()
    results = []
    for c in counters:
        verdict = window.check(c)
        results.append(verdict)
        if verdict == "new":
            window.accept(c)
    return [{
        "name": "replay_window",
        "description": "counters through a fresh 64-counter window (highest-63 .. highest); "
        "16 is exactly 64 below 80: too_old; 17 is 63 below: new, then seen",
        "counters": counters,
        "results": results,
        "final": {"highest": window.highest, "bitmap": f"{window.bitmap:016x}"},
    }]


def build() -> dict[str, Any]:
    keys_other = DeviceKeys.derive(OTHER_KEY)
    keys_root = DeviceKeys.derive(ROOT_KEY)
    streams, datagrams = link_cases()
    doc: dict[str, Any] = {
        "format": "meterlink-vectors/2",
        "protocol_version": 2,
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
        "counter_extension": counter_cases(),
        "downlink_counter": downlink_counter_cases(),
        "valid_frames": valid_frames(),
        "invalid": radio_cases() + datagrams,
        "link_streams": streams,
        "replay": window_cases(),
        "replay_sequences": replay_sequences(),
        "retries": {"sends": 8, "resend_after_s": [2, 4, 8, 16, 32, 64, 128],
                    "stop_after_later_counters": 64},
        "radio": lora_cases(),
        "receiver_keys": {str(DEVICE): ROOT_KEY.hex()},
    }
    _self_check(doc)
    return doc


def run_invalid(case: dict[str, Any], receiver_keys: dict[int, bytes]) -> str:
    """The error code the codec gives for an invalid case ('ok' if none)."""
    data = bytes.fromhex(case["input"])
    layer = case["layer"]
    try:
        if layer == "radio":
            decode_frame(data, bytes.fromhex(case["root_key"]), counter=case.get("counter"))
        elif layer in ("uplink", "downlink"):
            header = Header.parse(data, uplink=layer == "uplink")
            if layer == "uplink" and header.device_id not in receiver_keys:
                raise UnknownDevice(f"no key for device {header.device_id}")
            decode_received(data, bytes.fromhex(case["root_key"]), uplink=layer == "uplink")
        elif layer == "link_datagram":
            decode_link_datagram(data)
        else:
            raise SystemExit(f"vector {case['name']}: unknown layer {layer}")
    except ProtocolError as exc:
        return exc.code
    return "ok"


def run_stream(case: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    out: list[dict[str, Any]] = []
    decoder = LinkDecoder()
    for r in decoder.feed(bytes.fromhex(case["input"])):
        if isinstance(r, LinkFrame):
            out.append({"ok": r.payload.hex(), "link_type": int(r.link_type)})
        else:
            out.append({"error": r.code})
    return out, [{"error": e.code} for e in decoder.finish()]


def _self_check(doc: dict[str, Any]) -> None:
    """Refuse to write a file whose cases do not give their stated result."""
    keys = {int(k): bytes.fromhex(v) for k, v in doc["receiver_keys"].items()}
    names = [c["name"] for c in doc["invalid"] + doc["valid_frames"] + doc["link_streams"]]
    if len(names) != len(set(names)):
        raise SystemExit("vector names are not unique")
    for case in doc["invalid"]:
        got = run_invalid(case, keys)
        if got != case["error"]:
            raise SystemExit(f"vector {case['name']}: gives {got}, expected {case['error']}")
    for case in doc["link_streams"]:
        if run_stream(case) != (case["results"], case["finish"]):
            raise SystemExit(f"stream {case['name']}: gives {run_stream(case)}")
    for v in doc["valid_frames"]:
        limit = 51 if v["header"]["frame_type"] < 8 else 64
        if v["size"] > limit:
            raise SystemExit(f"vector {v['name']} is {v['size']} bytes")


def render() -> str:
    return json.dumps(build(), indent=1) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
