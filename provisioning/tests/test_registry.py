from __future__ import annotations

import stat
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterlink.provisioning import registry as reg
from meterlink.provisioning.errors import BadValue, RegistryError
from meterlink.provisioning.provision import ProvisionRequest, plan_device
from meterlink.provisioning.values import PulseWeight, derive_device_id


def test_registry_file_is_private_and_survives_reopen(
    registry_path: Path, make_device: Any
) -> None:
    with reg.Registry(registry_path) as r:
        r.save(make_device(), "flashing", "port /dev/ttyACM0")
        r.set_state(1234, reg.STATE_TESTED, "PASS", selftest="PASS", rssi=-80)
    assert stat.S_IMODE(registry_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(registry_path.parent.stat().st_mode) == 0o700
    with reg.Registry(registry_path) as r:
        d = r.get(1234)
        assert d is not None and d.state == reg.STATE_TESTED and d.rssi == -80
        assert r.find("wm-1") == d and r.find("1234") == d and r.find("0x4d2") == d
        assert r.find("nope") is None
        assert [e[1] for e in r.events(1234)] == ["flashing", "tested"]
        assert d.key_hex not in repr(d)
        assert r.remove(1234) and not r.remove(1234)
        assert r.all() == []


def test_same_serial_under_two_ids_is_refused(registry_path: Path, make_device: Any) -> None:
    with reg.Registry(registry_path) as r:
        r.save(make_device(1, "WM-1"), "x")
        with pytest.raises(RegistryError, match="already registered"):
            r.save(make_device(2, "WM-1"), "x")


def test_unopenable_registry_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a dir")
    with pytest.raises(RegistryError, match="--registry"):
        reg.Registry(tmp_path / "file" / "registry.db")


def test_default_registry_path_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(reg.ENV_REGISTRY, str(tmp_path / "x.db"))
    assert reg.default_registry_path() == tmp_path / "x.db"
    monkeypatch.delenv(reg.ENV_REGISTRY)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert reg.default_registry_path() == tmp_path / "meterlink" / "registry.db"


def _request(registry_path: Path, serial: str = "WM-7", **kw: object) -> ProvisionRequest:
    return ProvisionRequest(
        meter_serial=serial,
        reading_m3=Decimal("12.5"),
        pulse_weight=PulseWeight(1, 1),
        registry_path=registry_path,
        **kw,  # type: ignore[arg-type]
    )


def test_rerun_keeps_key_and_id_rekey_changes_key_and_generation(registry_path: Path) -> None:
    with reg.Registry(registry_path) as r:
        first, resumed = plan_device(_request(registry_path), r, 256, "nrf51")
        assert not resumed
        assert first.device_id == derive_device_id("WM-7")
        assert first.initial_register == 12500 and first.key_gen == 1
        r.save(first, "flashing")
        again, resumed = plan_device(_request(registry_path), r, 256, "nrf51")
        assert resumed  # the first run stopped in state "flashing"
        assert again.key_hex == first.key_hex and again.key_gen == 1
        assert again.config_gen != first.config_gen  # register restarts from the dial
        r.save(again, "configured")
        rekeyed, _ = plan_device(_request(registry_path, rekey=True), r, 256, "nrf51")
        assert rekeyed.key_hex != first.key_hex and rekeyed.key_gen == 2
        assert rekeyed.device_id == first.device_id
        other, _ = plan_device(_request(registry_path, serial="WM-8"), r, 256, "nrf51")
        assert other.key_hex != first.key_hex and len(bytes.fromhex(other.key_hex)) == 16


def test_device_id_collision_is_refused(registry_path: Path, make_device: Any) -> None:
    with reg.Registry(registry_path) as r:
        r.save(make_device(99, "WM-OLD"), "x")
        with pytest.raises(BadValue, match="already used by meter WM-OLD"):
            plan_device(_request(registry_path, device_id=99), r, 256, "nrf51")
        first, _ = plan_device(_request(registry_path), r, 256, "nrf51")
        r.save(first, "x")
        with pytest.raises(BadValue, match="registered with device id"):
            plan_device(_request(registry_path, device_id=5), r, 256, "nrf51")
