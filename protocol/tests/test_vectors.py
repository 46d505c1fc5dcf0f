"""Every vector in protocol/vectors/v1.json, checked against the codec and, where the
spec allows, against raw AES/CMAC/CBOR computed here independently of the codec."""

from __future__ import annotations

import struct
from types import ModuleType
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from meterlink.protocol import (
    DeviceKeys,
    FrameType,
    LinkDecoder,
    LinkFrame,
    LinkType,
    ProtocolError,
    ReplayError,
    ReplayWindow,
    crc16,
    decode_frame,
    decode_link_datagram,
    encode_frame,
    encode_link,
)
from meterlink.protocol.crypto import aes_ecb_block, compute_mic
from meterlink.protocol.named import body_from_fields, body_to_fields
from meterlink.protocol.varint import decode_varints, encode_varints


def raw_aes(key: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def raw_cmac(key: bytes, data: bytes) -> bytes:
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def by_name(vectors: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    return next(v for v in vectors[section] if v["name"] == name)


def test_checked_in_file_is_what_the_generator_writes(generator: ModuleType) -> None:
    assert generator.OUTPUT.read_text() == generator.render()


def test_file_is_small(generator: ModuleType) -> None:
    assert generator.OUTPUT.stat().st_size < 30_000


def test_crc_check_value(vectors: dict[str, Any]) -> None:
    first = vectors["crc16"][0]
    assert bytes.fromhex(first["data"]) == b"123456789"
    assert first["crc"] == "29b1"
    for case in vectors["crc16"]:
        assert crc16(bytes.fromhex(case["data"])) == int(case["crc"], 16)


def test_fips197_aes(vectors: dict[str, Any]) -> None:
    (case,) = vectors["aes128"]
    key, pt = bytes.fromhex(case["key"]), bytes.fromhex(case["plaintext"])
    assert case["ciphertext"] == "69c4e0d86a7b0430d8cdb78070b4c55a"
    assert raw_aes(key, pt).hex() == case["ciphertext"]
    assert aes_ecb_block(key, pt).hex() == case["ciphertext"]


def test_rfc4493_cmac_all_four_examples(vectors: dict[str, Any]) -> None:
    cases = vectors["cmac"]
    assert [len(c["message"]) // 2 for c in cases] == [0, 16, 40, 64]
    assert cases[0]["mac"] == "bb1d6929e95937287fa37d129b756746"
    for case in cases:
        key, msg = bytes.fromhex(case["key"]), bytes.fromhex(case["message"])
        assert raw_cmac(key, msg).hex() == case["mac"]
        assert compute_mic(key, msg).hex() == case["mac"][:8]


def test_key_derivation(vectors: dict[str, Any]) -> None:
    for case in vectors["key_derivation"]:
        root = bytes.fromhex(case["root_key"])
        assert raw_aes(root, b"\x01" + bytes(15)).hex() == case["enc"]
        assert raw_aes(root, b"\x02" + bytes(15)).hex() == case["mic"]
        keys = DeviceKeys.derive(root)
        assert (keys.enc.hex(), keys.mic.hex()) == (case["enc"], case["mic"])


def test_varints(vectors: dict[str, Any]) -> None:
    for case in vectors["varint"]:
        assert encode_varints(case["values"]).hex() == case["bytes"]
        assert list(decode_varints(bytes.fromhex(case["bytes"]))) == case["values"]
    assert encode_varints([300]) == b"\xac\x02"  # LEB128 example, written out


def test_slip_escaping(vectors: dict[str, Any]) -> None:
    escaped = [c for c in vectors["slip"] if "c0" in c["data"] or "db" in c["data"]]
    assert escaped, "the vectors must exercise escaping"
    for case in vectors["slip"]:
        data = bytes.fromhex(case["data"])
        frame = bytes.fromhex(case["link_frame"])
        assert encode_link(case["link_type"], data) == frame
        inner = frame[1:-1]
        assert 0xC0 not in inner
        (result,) = LinkDecoder().feed(frame)
        assert isinstance(result, LinkFrame)
        assert result.payload == data
    # written out per RFC 1055: C0 -> DB DC, DB -> DB DD
    assert by_bytes(vectors, "01c0dbdcdd02")["link_frame"].startswith("c00101dbdcdbdddcdd02")


def by_bytes(vectors: dict[str, Any], data: str) -> dict[str, Any]:
    return next(c for c in vectors["slip"] if c["data"] == data)


VALID_NAMES = [
    "reading_household_50",
    "reading_worst_case_51",
    "reading_trimmed",
    "reading_unknown_key",
    "alarm_leak_backflow",
    "status_boot",
    "status_safe_mode",
    "ack",
    "config_all",
    "config_unknown_key",
    "time",
]


def test_valid_vector_set(vectors: dict[str, Any]) -> None:
    assert [v["name"] for v in vectors["valid_frames"]] == VALID_NAMES
    sizes = {v["name"]: v["size"] for v in vectors["valid_frames"]}
    assert sizes["reading_household_50"] == 50
    assert sizes["reading_worst_case_51"] == 51
    assert sizes["reading_trimmed"] <= 51
    assert sizes["ack"] == 13
    types = {v["header"]["frame_type"] for v in vectors["valid_frames"]}
    assert types == {int(t) for t in FrameType}
    safe = by_name(vectors, "valid_frames", "status_safe_mode")["body"]
    assert safe["reason"] == 2 and "error" in safe


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_frame_decodes_to_its_fields(vectors: dict[str, Any], name: str) -> None:
    case = by_name(vectors, "valid_frames", name)
    payload = bytes.fromhex(case["payload"])
    frame = decode_frame(payload, bytes.fromhex(case["root_key"]))
    assert len(payload) == case["size"]
    header = case["header"]
    assert (frame.header.version, int(frame.frame_type), frame.device_id, frame.counter) == (
        header["version"],
        header["frame_type"],
        header["device_id"],
        header["counter"],
    )
    assert body_to_fields(frame.body) == case["body"]
    # the map, compared with a plain CBOR decoder
    plain = cbor2.loads(bytes.fromhex(case["plaintext"])) if case["plaintext"] else {}
    as_json = {str(k): v.hex() if isinstance(v, bytes) else v for k, v in plain.items()}
    assert as_json == case["map"]
    # the plaintext, recovered with raw AES-CTR built here from spec 3.2
    ciphertext = payload[9:-4]
    stream = hand_keystream(
        bytes.fromhex(case["root_key"]),
        header["frame_type"] >> 3 & 1,
        header["device_id"],
        header["counter"],
        len(ciphertext),
    )
    assert bytes(a ^ b for a, b in zip(ciphertext, stream, strict=True)).hex() == case["plaintext"]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_encoder_reproduces_each_valid_payload(vectors: dict[str, Any], name: str) -> None:
    case = by_name(vectors, "valid_frames", name)
    frame_type = FrameType(case["header"]["frame_type"])
    fields = case.get("encoder_input", case["body"])
    body = body_from_fields(frame_type, fields)
    payload = encode_frame(
        frame_type,
        case["header"]["device_id"],
        case["header"]["counter"],
        body,
        bytes.fromhex(case["root_key"]),
    )
    assert payload.hex() == case["payload"]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_link_frames_carry_the_payload(vectors: dict[str, Any], name: str) -> None:
    case = by_name(vectors, "valid_frames", name)
    results = LinkDecoder().feed(bytes.fromhex(case["link_frame"]))
    assert results == [LinkFrame(LinkType.DATA, bytes.fromhex(case["payload"]))]
    if "rxinfo_link_frame" in case:
        (rx,) = LinkDecoder().feed(bytes.fromhex(case["rxinfo_link_frame"]))
        assert isinstance(rx, LinkFrame)
        assert (rx.link_type, rx.rssi, rx.snr_qdb) == (
            LinkType.RXINFO,
            case["rxinfo"]["rssi"],
            case["rxinfo"]["snr_qdb"],
        )
        assert rx.payload.hex() == case["payload"]


def test_trimmed_reading_keeps_the_newest_deltas(vectors: dict[str, Any]) -> None:
    case = by_name(vectors, "valid_frames", "reading_trimmed")
    given, sent = case["encoder_input"]["deltas"], case["body"]["deltas"]
    assert len(given) == 48 and 0 < len(sent) < 48
    assert sent == given[: len(sent)]
    # one more delta would not have fitted 51 bytes (CBOR map built here, by hand)
    fields = {k: v for k, v in case["encoder_input"].items() if k != "deltas"}
    bigger = {
        1: fields["register"],
        2: fields["pulse_weight"],
        3: fields["unit"],
        4: fields["interval_s"],
        5: encode_varints(given[: len(sent) + 1]),
        6: fields["age_s"],
        7: fields["interval_seq"],
        8: fields["alarms"],
    }
    assert 13 + len(cbor2.dumps(bigger)) > 51


def hand_keystream(root: bytes, direction: int, device_id: int, counter: int, n: int) -> bytes:
    """Key stream from spec 3.1/3.2 written out: A_i blocks, AES-ECB, concatenated."""
    k_enc = raw_aes(root, bytes([1]) + bytes(15))
    blocks = b""
    for i in range(1, (n + 15) // 16 + 1):
        a_i = (
            bytes([0x01])
            + bytes(4)
            + bytes([direction])
            + device_id.to_bytes(4, "big")
            + counter.to_bytes(4, "big")
            + bytes([0x00])
            + bytes([i])
        )
        assert len(a_i) == 16
        blocks += raw_aes(k_enc, a_i)
    return blocks[:n]


def test_household_ciphertext_computed_by_hand(vectors: dict[str, Any]) -> None:
    """Build the household frame without the codec: CBOR by hand, CTR and CMAC by hand."""
    case = by_name(vectors, "valid_frames", "reading_household_50")
    root = bytes.fromhex(case["root_key"])
    deltas = bytes([12, 0, 3, 41, 7, 0, 0, 2, 95, 18, 4, 0])  # all < 128: one byte each
    body = cbor2.dumps({1: 123456, 2: 1, 3: 1, 4: 900, 5: deltas, 6: 5, 7: 1000, 8: 0})
    assert len(body) == 1 + 6 + 4 + 4 + 14 + 2 + 4 + 2  # spec 7 table
    header = struct.pack(">BII", 0x10, 0x12345678, 41)
    ciphertext = bytes(
        a ^ b for a, b in zip(body, hand_keystream(root, 0, 0x12345678, 41, len(body)), strict=True)
    )
    k_mic = raw_aes(root, bytes([2]) + bytes(15))
    mic = raw_cmac(k_mic, header + ciphertext)[:4]
    assert (header + ciphertext + mic).hex() == case["payload"]


def test_downlink_keystream_uses_dir_1(vectors: dict[str, Any]) -> None:
    case = by_name(vectors, "valid_frames", "time")
    payload = bytes.fromhex(case["payload"])
    root = bytes.fromhex(case["root_key"])
    body = cbor2.dumps({30: 1700000000})
    up = hand_keystream(root, 0, 0x12345678, 9, len(body))
    down = hand_keystream(root, 1, 0x12345678, 9, len(body))
    assert payload[9:-4] == bytes(a ^ b for a, b in zip(body, down, strict=True))
    assert payload[9:-4] != bytes(a ^ b for a, b in zip(body, up, strict=True))


def run_invalid(case: dict[str, Any], other_key: bytes) -> str:
    data = bytes.fromhex(case["input"])
    try:
        if case["layer"] == "radio":
            decode_frame(data, bytes.fromhex(case["root_key"]))
        elif case["layer"] == "radio_other_key":
            decode_frame(data, other_key)
        elif case["layer"] == "link_datagram":
            decode_link_datagram(data)
        elif case["layer"] == "link_stream":
            results = LinkDecoder().feed(data)
            assert len(results) == 1, results
            assert isinstance(results[0], ProtocolError)
            return results[0].code
        else:
            raise AssertionError(f"unknown layer {case['layer']}")
    except ProtocolError as exc:
        return exc.code
    return "ok"


INVALID_ERRORS = {
    "bad_mic_wrong_key": "bad_mic",
    "bad_mic_flipped_bit": "bad_mic",
    "truncated": "truncated",
    "bad_version": "bad_version",
    "bad_type": "bad_type",
    "oversized_uplink": "oversized",
    "oversized_downlink": "oversized",
    "malformed_not_cbor": "malformed",
    "malformed_missing_key": "malformed",
    "malformed_truncated_varint": "malformed",
    "malformed_wrong_type": "malformed",
    "malformed_ack_with_body": "malformed",
    "bad_crc_stream": "bad_crc",
    "bad_crc_datagram": "bad_crc",
    "bad_link_type": "bad_link_type",
    "link_truncated": "truncated",
    "link_oversized": "oversized",
    "garbage_stream": "bad_crc",
}


def test_invalid_vector_set(vectors: dict[str, Any]) -> None:
    stated = {c["name"]: c["error"] for c in vectors["invalid"]}
    for name, error in INVALID_ERRORS.items():
        assert stated[name] == error
    assert "garbage" in stated


@pytest.mark.parametrize("index", range(19))
def test_invalid_vector_gives_its_error(vectors: dict[str, Any], index: int) -> None:
    case = vectors["invalid"][index]
    other = bytes.fromhex(vectors["key_derivation"][1]["root_key"])
    assert run_invalid(case, other) == case["error"], case["name"]


def test_invalid_vector_count(vectors: dict[str, Any]) -> None:
    assert len(vectors["invalid"]) == 19


def test_replay_sequence(vectors: dict[str, Any]) -> None:
    (case,) = vectors["replay"]
    window = ReplayWindow()
    for counter, expected in zip(case["counters"], case["results"], strict=True):
        assert window.check(counter) == expected
        if expected == "new":
            window.accept(counter)
        else:
            with pytest.raises(ReplayError) as info:
                window.accept(counter)
            assert info.value.code == case["error"]
    assert window.highest == case["final"]["highest"]
    assert window.bitmap == int(case["final"]["bitmap"], 16)
    assert "seen" in case["results"] and "too_old" in case["results"]
