"""The device registry (key file from provisioning)."""

from __future__ import annotations

import json

import pytest

from meterlink.edge.registry import DeviceRegistry, RegistryError


def test_loads_the_provisioning_format(keys_file, fleet):
    reg = DeviceRegistry(keys_file)
    assert reg.load() == 3 and reg.warnings == []
    d = reg.get(fleet.devices[0].device_id)
    assert d is not None and d.key == fleet.devices[0].key and d.meter_serial.startswith("WM-")
    assert reg.get(1) is None


@pytest.mark.parametrize(("entry", "message"), [
    ({"device_id": -1, "key": "00" * 16}, "devices[0].device_id: expected an integer"),
    ({"device_id": 5, "key": "zz" * 16}, "devices[0].key (device 5): expected 32 hex digits"),
    ({"device_id": 5, "key": "00" * 8}, "expected 32 hex digits"),
    ({"device_id": 5, "key": "00" * 16, "unit": 7}, "unit (device 5): expected 0 (mL)"),
], ids=["negative-id", "not-hex", "short-key", "unit"])
def test_bad_entries_are_named(tmp_path, entry, message):
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"format": "meterlink-keys/1", "devices": [entry]}))
    with pytest.raises(RegistryError) as err:
        DeviceRegistry(path).load()
    assert message in str(err.value)


def test_failed_reload_keeps_the_keys_in_use(keys_file):
    reg = DeviceRegistry(keys_file)
    reg.load()
    keys_file.write_text('{"format": "other"}')
    with pytest.raises(RegistryError, match="meterlink-keys/1"):
        reg.load()
    assert len(reg) == 3


def test_duplicate_device_and_loose_permissions(tmp_path):
    path = tmp_path / "k.json"
    entry = {"device_id": 5, "key": "00" * 16}
    path.write_text(json.dumps({"format": "meterlink-keys/1", "devices": [entry, entry]}))
    with pytest.raises(RegistryError, match="device 5 is listed twice"):
        DeviceRegistry(path).load()
    path.write_text(json.dumps({"format": "meterlink-keys/1", "devices": [entry]}))
    path.chmod(0o644)
    reg = DeviceRegistry(path)
    reg.load()
    assert "chmod 600" in reg.warnings[0]


def test_a_new_key_gen_or_key_marks_the_device_rekeyed(tmp_path):
    path = tmp_path / "k.json"

    def write(key: str, key_gen: int) -> None:
        path.write_text(json.dumps({"format": "meterlink-keys/1", "devices": [
            {"device_id": 5, "key": key, "key_gen": key_gen},
            {"device_id": 6, "key": "11" * 16, "key_gen": 1}]}))
        path.chmod(0o600)

    write("00" * 16, 1)
    reg = DeviceRegistry(path)
    reg.load()
    assert reg.rekeyed == set() and reg.get(5).key_gen == 1
    write("22" * 16, 2)
    reg.load()
    assert reg.rekeyed == {5} and reg.warnings == []
    reg.load()
    assert reg.rekeyed == set()
    # a key changed without a new key_gen is taken, and said to be odd
    write("33" * 16, 2)
    reg.load()
    assert reg.rekeyed == {5}
    assert "device 5 has a new key but key_gen 2 (was 2)" in reg.warnings[0]
