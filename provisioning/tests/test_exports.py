from __future__ import annotations

import csv
import io
import json
import stat
from pathlib import Path
from typing import Any

from meterlink.provisioning.exports import (
    KEY_FILE_FORMAT,
    central_csv,
    central_json,
    export_key_file,
)


def test_key_file_is_0600_in_the_gateway_format(tmp_path: Path, make_device: Any) -> None:
    devices = [make_device(2, "WM-2"), make_device(1, "WM-1", key_hex="ab" * 16, key_gen=3)]
    out = tmp_path / "gw" / "keys.json"
    out.parent.mkdir()
    out.write_text("old")
    out.chmod(0o644)  # replaced, not rewritten in place: the new file is 0600
    assert export_key_file(devices, out) == 2
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    doc = json.loads(out.read_text())
    assert doc["format"] == KEY_FILE_FORMAT
    assert [d["device_id"] for d in doc["devices"]] == [1, 2]
    assert doc["devices"][0] == {
        "device_id": 1,
        "key": "ab" * 16,
        "key_gen": 3,
        "meter_serial": "WM-1",
        "pulse_weight": 1,
        "unit": 1,
        "interval_s": 900,
        "board": "nrf51",
        "firmware_version": 0x0100,
        "features": [],  # not recorded in the row: what firmware 1.0 for nrf51 shipped
    }
    assert [p.name for p in out.parent.iterdir()] == ["keys.json"]  # no temp file left


def test_key_file_loads_in_the_gateway(tmp_path: Path, make_device: Any) -> None:
    from meterlink.edge.registry import DeviceRegistry

    out = tmp_path / "keys.json"
    export_key_file([make_device(7, "WM-7", key_hex="0f" * 16)], out)
    gw = DeviceRegistry(out)
    assert gw.load() == 1
    dev = gw.get(7)
    assert dev is not None and dev.key == b"\x0f" * 16 and dev.meter_serial == "WM-7"
    assert gw.warnings == []  # 0600: no "readable by others" warning


def test_central_exports_carry_no_keys(make_device: Any) -> None:
    devices = [make_device(1, "WM-1"), make_device(2, "WM-2", latitude=None, longitude=None)]
    text = central_csv(devices)
    assert "11" * 16 not in text and "key" not in text.splitlines()[0]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["meter_serial"] for r in rows] == ["WM-1", "WM-2"]
    assert rows[0]["initial_register"] == "123456" and rows[1]["latitude"] == ""
    doc = json.loads(central_json(devices))
    assert doc["devices"][1]["device_id"] == 2 and "key_hex" not in doc["devices"][0]
    assert "11" * 16 not in json.dumps(doc)
