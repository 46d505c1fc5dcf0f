from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from meterlink.provisioning import registry as reg


def _make_device(device_id: int = 1234, serial: str = "WM-1", **kw: object) -> reg.Device:
    values: dict[str, object] = dict(
        device_id=device_id,
        meter_serial=serial,
        key_hex=(b"\x11" * 16).hex(),
        key_gen=1,
        config_gen=7,
        pulse_weight=1,
        unit=1,
        interval_s=900,
        initial_register=123456,
        reading_m3=str(Decimal("123.456")),
        address="1 Main St",
        latitude=52.1,
        longitude=4.9,
        installer="ann",
        provisioned_at="2024-05-01T10:00:00Z",
        firmware_version=0x0100,
        board="nrf51",
        state=reg.STATE_TESTED,
        selftest="PASS",
        rssi=-91,
    )
    values.update(kw)
    return reg.Device(**values)  # type: ignore[arg-type]


MakeDevice = Callable[..., reg.Device]


@pytest.fixture
def make_device() -> MakeDevice:
    return _make_device


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    return tmp_path / "reg" / "registry.db"
