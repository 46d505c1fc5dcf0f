from decimal import Decimal

import pytest

from meterlink.provisioning.errors import BadValue
from meterlink.provisioning.values import (
    UNIT_L,
    UNIT_M3,
    UNIT_ML,
    PulseWeight,
    derive_device_id,
    normalise_meter_serial,
    parse_device_id,
    parse_gps,
    parse_pulse_weight,
    parse_reading,
    register_from_reading,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("123.456", "123.456"),
        ("123,456", "123.456"),
        (" 00123.4 ", "123.4"),
        ("1 234,5", "1234.5"),
        ("7", "7"),
        ("42.001 m3", "42.001"),
        ("42.001m³", "42.001"),
    ],
)
def test_reading_accepts_dial_forms(text: str, value: str) -> None:
    assert parse_reading(text) == Decimal(value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("12O.5", "letter 'O' at position 3 (letter O instead of zero?)"),
        ("1l2.5", "letter 'l' at position 2"),
        ("-5", "negative"),
        ("1.2.3", "more than one decimal separator"),
        ("12.3456", "more than 3 decimals"),
        ("123456789", "more than 7 digits"),
        ("12#4", "'#', which is not a digit"),
        ("", "no meter reading"),
    ],
    ids=[
        "letter-O",
        "letter-l",
        "negative",
        "two-separators",
        "4-decimals",
        "too-long",
        "symbol",
        "empty",
    ],
)
def test_reading_typos_say_what_is_wrong_and_the_form(text: str, fragment: str) -> None:
    with pytest.raises(BadValue) as err:
        parse_reading(text)
    assert fragment in err.value.problem
    assert "123.456" in err.value.remedy


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("1", PulseWeight(1, UNIT_L)),
        ("10L", PulseWeight(10, UNIT_L)),
        ("100 mL", PulseWeight(100, UNIT_ML)),
        ("0.5L", PulseWeight(500, UNIT_ML)),
        ("1m3", PulseWeight(1, UNIT_M3)),
        ("1000L", PulseWeight(1, UNIT_M3)),
    ],
)
def test_pulse_weight_forms(text: str, weight: PulseWeight) -> None:
    assert parse_pulse_weight(text) == weight


@pytest.mark.parametrize("text", ["0", "abc", "0.0001L", "-1L", "5 gallons"])
def test_pulse_weight_rejects(text: str) -> None:
    with pytest.raises(BadValue, match="pulse weight"):
        parse_pulse_weight(text)


def test_register_is_reading_over_pulse_weight() -> None:
    r = register_from_reading(Decimal("123.456"), PulseWeight(1, UNIT_L))
    assert (r.pulses, r.represented_m3, r.dropped_litres) == (123456, Decimal("123.456"), 0)
    r = register_from_reading(Decimal("123.456"), PulseWeight(10, UNIT_L))
    assert r.pulses == 12345
    assert r.represented_m3 == Decimal("123.45")
    assert r.dropped_litres == Decimal(6)
    r = register_from_reading(Decimal("0.5"), PulseWeight(100, UNIT_ML))
    assert r.pulses == 5000


def test_register_beyond_32_bits_is_refused() -> None:
    with pytest.raises(BadValue, match="2\\^32"):
        register_from_reading(Decimal("9999999.999"), PulseWeight(1, UNIT_ML))


def test_device_id_is_crc32_of_normalised_serial_and_stable() -> None:
    import zlib

    assert derive_device_id("wm-2024-001") == zlib.crc32(b"WM-2024-001")
    assert derive_device_id("  WM-2024-001 ") == derive_device_id("wm-2024-001")
    assert derive_device_id("WM-2024-001") != derive_device_id("WM-2024-002")
    assert 0 < derive_device_id("X") < 2**32


def test_meter_serial_validation() -> None:
    assert normalise_meter_serial(" ab-12/3 ") == "AB-12/3"
    with pytest.raises(BadValue, match="meter serial"):
        normalise_meter_serial("AB 12")
    with pytest.raises(BadValue):
        normalise_meter_serial("")


def test_device_id_and_gps_parsing() -> None:
    assert parse_device_id("0x12345678") == 0x12345678
    assert parse_device_id("305419896") == 305419896
    for bad in ("0", "-3", "0x100000000", "abc"):
        with pytest.raises(BadValue, match="device id"):
            parse_device_id(bad)
    assert parse_gps("52.3702,4.8952") == (52.3702, 4.8952)
    with pytest.raises(BadValue, match="GPS"):
        parse_gps("95,4")
