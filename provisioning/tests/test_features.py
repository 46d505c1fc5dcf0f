"""Provisioning records each module's board, firmware version and features (those of the
bundle it flashes) in the registry and the gateway key file; a registry from before
features were recorded still opens, and its modules are exported with what their
firmware version shipped. Real SQLite files on disk."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterlink.bundler import FIRMWARE_VERSION, bundle_features
from meterlink.cli import main as cli_main
from meterlink.protocol.features import ALL_FEATURES
from meterlink.protocol.keyfile import load_key_file
from meterlink.provisioning import registry as reg
from meterlink.provisioning.exports import export_key_file
from meterlink.provisioning.provision import ProvisionRequest, plan_device
from meterlink.provisioning.values import PulseWeight


def _request(path: Path, serial: str) -> ProvisionRequest:
    return ProvisionRequest(meter_serial=serial, reading_m3=Decimal("1.5"),
                            pulse_weight=PulseWeight(1, 1), registry_path=path)


@pytest.mark.parametrize("board", ["nrf51", "rp2"])
def test_a_registered_module_records_its_bundles_features(registry_path: Path, tmp_path: Path,
                                                          board: str) -> None:
    with reg.Registry(registry_path) as r:
        device, _ = plan_device(_request(registry_path, "WM-5"), r, FIRMWARE_VERSION, board)
        r.save(device, reg.STATE_FLASHING)
        stored = r.get(device.device_id)
    assert stored is not None and stored.feature_set == bundle_features(board)
    out = tmp_path / "keys.json"
    export_key_file([stored], out)
    entry = load_key_file(out)[device.device_id]
    assert (entry.board, entry.firmware_version) == (board, FIRMWARE_VERSION)
    assert entry.features == bundle_features(board)


def test_features_given_are_recorded_as_given(registry_path: Path) -> None:
    with reg.Registry(registry_path) as r:
        device, _ = plan_device(_request(registry_path, "WM-6"), r, FIRMWARE_VERSION, "nrf51",
                                frozenset({"tamper_alarm", "burst_alarm"}))
        r.save(device, reg.STATE_FLASHING)
    with reg.Registry(registry_path) as r:
        again = r.get(device.device_id)
    assert again is not None and again.features == "burst_alarm,tamper_alarm"
    assert again.feature_set == {"tamper_alarm", "burst_alarm"}


# The devices table as registries were written before the `features` column.
_OLD_SCHEMA = """
CREATE TABLE devices (
    device_id INTEGER PRIMARY KEY, meter_serial TEXT NOT NULL UNIQUE, key_hex TEXT NOT NULL,
    key_gen INTEGER NOT NULL, config_gen INTEGER NOT NULL, pulse_weight INTEGER NOT NULL,
    unit INTEGER NOT NULL, interval_s INTEGER NOT NULL, initial_register INTEGER NOT NULL,
    reading_m3 TEXT NOT NULL, address TEXT NOT NULL DEFAULT '', latitude REAL,
    longitude REAL, installer TEXT NOT NULL DEFAULT '', provisioned_at TEXT NOT NULL,
    firmware_version INTEGER NOT NULL, board TEXT NOT NULL DEFAULT '', state TEXT NOT NULL,
    selftest TEXT NOT NULL DEFAULT '', rssi INTEGER);
"""


def _old_registry(path: Path, rows: list[tuple[int, str, int, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(_OLD_SCHEMA)
    for device_id, serial, version, board in rows:
        db.execute("INSERT INTO devices VALUES (?,?,?,1,7,1,1,900,0,'0','',NULL,NULL,'',"
                   "'2025-01-01T00:00:00Z',?,?,'tested','PASS',-90)",
                   (device_id, serial, "ab" * 16, version, board))
    db.commit()
    db.close()


def test_a_registry_from_before_features_opens_and_exports_what_was_shipped(
        registry_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _old_registry(registry_path, [(1, "WM-1", 256, "nrf51"), (2, "WM-2", 256, "rp2"),
                                  (3, "WM-3", 0x0050, "rp2")])
    with reg.Registry(registry_path) as r:
        rows = {d.device_id: d for d in r.all()}
    assert [rows[i].features for i in (1, 2, 3)] == [None, None, None]  # not recorded
    out = tmp_path / "keys.json"
    assert export_key_file(rows.values(), out) == 3
    entries = load_key_file(out)
    assert entries[1].features == frozenset() and entries[1].board == "nrf51"
    assert entries[2].features == ALL_FEATURES
    assert entries[3].features is None  # a version with no record: the gateway assumes none
    assert "features" not in json.loads(out.read_text())["devices"][2]

    assert cli_main(["devices", "show", "WM-2", "--registry", str(registry_path)]) == 0
    shown = capsys.readouterr().out
    assert "not recorded; what firmware 1.0 for rp2 shipped" in shown
    assert cli_main(["devices", "show", "WM-3", "--registry", str(registry_path)]) == 0
    assert "not recorded (the gateway assumes none" in capsys.readouterr().out


def test_show_prints_the_recorded_features(registry_path: Path, make_device: Any,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with reg.Registry(registry_path) as r:
        r.save(make_device(1, "WM-1", features=""), "flashing")
        r.save(make_device(2, "WM-2", board="rp2", features="at_modem,time_downlink"), "x")
    assert cli_main(["devices", "show", "WM-1", "--registry", str(registry_path)]) == 0
    assert "features: none of the optional ones" in capsys.readouterr().out
    assert cli_main(["devices", "show", "WM-2", "--registry", str(registry_path)]) == 0
    assert "features: at_modem, time_downlink" in capsys.readouterr().out
