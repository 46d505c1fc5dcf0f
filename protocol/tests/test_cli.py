"""`meterlink frame decode|encode`, through meterlink.cli.main and once as a process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from meterlink.cli import main
from meterlink.protocol import (
    FrameType,
    LinkType,
    Reading,
    decode_frame,
    encode_link,
    encode_link_datagram,
    encode_rxinfo,
)

KEY = "000102030405060708090a0b0c0d0e0f"
READING_ARGS = [
    "frame",
    "encode",
    "--key",
    KEY,
    "--type",
    "reading",
    "--device-id",
    "0x12345678",
    "--counter",
    "41",
    "--field",
    "register=123456",
    "--field",
    "pulse_weight=1",
    "--field",
    "unit=L",
    "--field",
    "interval_s=900",
    "--field",
    "deltas=12,0,3,41,7,0,0,2,95,18,4,0",
    "--field",
    "age_s=5",
    "--field",
    "interval_seq=1000",
    "--field",
    "alarms=0",
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def household_hex(vectors: dict[str, Any]) -> str:
    return str(vectors["valid_frames"][0]["payload"])


def test_encode_reproduces_the_household_vector(
    capsys: pytest.CaptureFixture[str], vectors: dict[str, Any]
) -> None:
    code, out, err = run(capsys, *READING_ARGS)
    assert (code, err) == (0, "")
    assert out.strip() == household_hex(vectors)


def test_encode_json_body_and_link(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "frame",
        "encode",
        "--key",
        KEY,
        "--type",
        "time",
        "--device-id",
        "5",
        "--counter",
        "9",
        "--json",
        '{"unix_time": 1700000000}',
        "--link",
    )
    assert code == 0
    frame = bytes.fromhex(out.strip())
    assert frame[0] == 0xC0 and frame[-1] == 0xC0 and frame[1] == LinkType.DATA


def test_encode_reports_trimmed_deltas(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        a if not a.startswith("deltas=") else "deltas=" + ",".join(["200"] * 48)
        for a in READING_ARGS
    ]
    code, out, err = run(capsys, *argv)
    assert code == 0
    body = decode_frame(bytes.fromhex(out.strip()), bytes.fromhex(KEY)).body
    assert isinstance(body, Reading)
    assert f"dropped the {48 - len(body.deltas)} oldest deltas" in err


@pytest.mark.parametrize(
    ("argv_change", "message"),
    [
        (["--key", "00"], "--key must be 16 bytes (32 hex digits), got 1 bytes"),
        (["--key", "zz" * 16], "--key is not hex"),
        (["--field", "volume=3"], "reading has no field 'volume'"),
        (["--field", "unit=gallon"], "field unit: unit 'gallon': use 0/ML, 1/L or 2/M3"),
        (["--field", "alarms=fire"], "alarm flag 'fire' is unknown"),
        (["--field", "register"], "write NAME=VALUE"),
    ],
)
def test_encode_errors_are_clear(
    capsys: pytest.CaptureFixture[str], argv_change: list[str], message: str
) -> None:
    code, out, err = run(capsys, *READING_ARGS, *argv_change)
    assert code == 2 and out == ""
    assert err.startswith("error: usage: ")
    assert message in err


def test_encode_missing_field(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        "frame",
        "encode",
        "--key",
        KEY,
        "--type",
        "alarm",
        "--device-id",
        "1",
        "--counter",
        "1",
        "--field",
        "register=1",
    )
    assert code == 2 and "alarm needs field(s) alarms, interval_seq, raised" in err


@pytest.mark.parametrize("form", ["payload", "slip", "datagram", "rxinfo"])
def test_decode_detects_the_form(
    capsys: pytest.CaptureFixture[str], vectors: dict[str, Any], form: str
) -> None:
    payload = bytes.fromhex(household_hex(vectors))
    data, label = {
        "payload": (payload, "radio payload"),
        "slip": (encode_link(LinkType.DATA, payload), "link frame (SLIP)"),
        "datagram": (encode_link_datagram(LinkType.DATA, payload), "link frame (without SLIP)"),
        "rxinfo": (encode_rxinfo(payload, -97, -22), "link frame (SLIP)"),
    }[form]
    code, out, err = run(capsys, "frame", "decode", "--key", KEY, data.hex())
    assert (code, err) == (0, "")
    assert f"form:      {label}, 48 byte radio payload" in out
    assert "device id: 305419896 (0x12345678)" in out
    assert "deltas: 12 intervals, newest first: 12, 0, 3, 41" in out
    assert "unit: 1 (L)" in out
    if form == "rxinfo":
        assert "rssi -97 dBm, snr -5.5 dB" in out


def test_decode_json(capsys: pytest.CaptureFixture[str], vectors: dict[str, Any]) -> None:
    case = vectors["valid_frames"][0]
    code, out, _ = run(capsys, "frame", "decode", "--json", "--key", KEY, case["link_frame"])
    assert code == 0
    report = json.loads(out)
    assert report["form"] == "link frame (SLIP)"
    assert report["header"]["frame_type"] == "reading"
    assert report["header"]["counter_on_air"] == case["header"]["counter_on_air"]
    assert report["counter"] == case["counter"]
    assert report["body"] == case["body"]
    assert report["map"] == case["map"]


def test_decode_errors_print_code_and_exit_2(
    capsys: pytest.CaptureFixture[str], vectors: dict[str, Any]
) -> None:
    payload = household_hex(vectors)
    code, out, err = run(capsys, "frame", "decode", "--key", "ff" * 16, payload)
    assert (code, out) == (2, "")
    assert err == (
        "error: bad_mic: MIC mismatch for device 0x12345678 counter 41: "
        "wrong key, altered frame, or a counter this receiver cannot place\n"
    )
    code, _, err = run(capsys, "frame", "decode", "--key", KEY, payload[:20])
    assert code == 2 and err.startswith("error: truncated: ")
    code, _, err = run(capsys, "frame", "decode", "--key", KEY, "nothex")
    assert code == 2 and err.startswith("error: usage: FRAME_HEX is not hex")


def test_decode_with_a_gateway_key_file(
    capsys: pytest.CaptureFixture[str], vectors: dict[str, Any], tmp_path: Path
) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(
        json.dumps(
            {"format": "meterlink-keys/1", "devices": [{"device_id": 305419896, "key": KEY}]}
        )
    )
    code, out, _ = run(capsys, "frame", "decode", "--keys", str(keys), household_hex(vectors))
    assert code == 0 and "counter:   41 (on air: 41)" in out
    keys.write_text(json.dumps({"format": "meterlink-keys/1", "devices": []}))
    code, _, err = run(capsys, "frame", "decode", "--keys", str(keys), household_hex(vectors))
    assert code == 2 and err.startswith("error: unknown_device: no key for device 305419896")


def test_ack_decodes_with_empty_body(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "frame",
        "encode",
        "--key",
        KEY,
        "--type",
        "ack",
        "--device-id",
        "1",
        "--counter",
        "44",
    )
    assert code == 0
    code, text, _ = run(capsys, "frame", "decode", "--key", KEY, out.strip())
    assert (
        code == 0 and "body:      (empty)" in text and f"({int(FrameType.ACK)}, downlink)" in text
    )


def test_installed_command_help() -> None:
    exe = Path(sys.executable).with_name("meterlink")
    result = subprocess.run(
        [str(exe), "frame", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "decode" in result.stdout and "encode" in result.stdout


def test_decode_extends_a_counter_above_16_bits(
    capsys: pytest.CaptureFixture[str], vectors: dict[str, Any]
) -> None:
    case = next(v for v in vectors["valid_frames"] if v["name"] == "reading_15_years")
    code, out, _ = run(capsys, "frame", "decode", "--key", KEY, case["payload"])
    assert code == 0 and f"counter:   {case['counter']} (on air: {case['counter'] % 65536})" in out
    code, out, _ = run(capsys, "frame", "decode", "--key", KEY, "--highest",
                       str(case["counter"] - 5), case["payload"])
    assert code == 0 and f"counter:   {case['counter']} " in out


def test_encode_reports_status_keys_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "frame", "encode", "--key", KEY, "--type", "status", "--device-id", "1",
        "--counter", "70000", "--json",
        '{"battery_pct": 100, "fw_version": 512, "resets": 70000, "reason": 0, '
        '"register": 4294967280, "interval_s": 86400, "alarms": 63, "reverse": 65536, '
        '"leak_intervals": 65535, "burst_pulses": 4294967295, "burst_intervals": 65535, '
        '"backflow_pulses": 4294967295}')
    assert code == 0 and len(bytes.fromhex(out.strip())) <= 51
    assert err == (
        "note: left out register, reverse, backflow_pulses to fit the payload (spec 4.4)\n")
