"""Values an installer types, parsed strictly: the dial reading, the pulse weight, the
meter serial, and the device id derived from it."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from decimal import Decimal

from meterlink.protocol import Unit
from meterlink.protocol.module_config import config_field
from meterlink.provisioning.errors import BadValue

UNIT_ML, UNIT_L, UNIT_M3 = Unit.ML, Unit.L, Unit.M3
_MAX_U32 = 2**32 - 1

READING_FORM = "the black digits of the dial in m³, e.g. 123.456 (up to 3 decimals)"
_READING_RE = re.compile(r"^\d{1,7}(?:[.,]\d{1,3})?$")


def parse_reading(text: str) -> Decimal:
    """The dial reading in m³. Accepts `123.456`, `123,456`, `00123.4`, an optional
    `m3`/`m³` suffix and spaces between digit groups; rejects anything else with a
    message that points at the offending character."""
    raw = text
    s = text.strip().replace(" ", "").replace("\u00a0", "")
    for suffix in ("m³", "m3", "M3"):
        if s.endswith(suffix):
            s = s[: -len(suffix)]
            break
    if not s:
        raise BadValue("no meter reading was entered", f"enter {READING_FORM}")
    if not _READING_RE.match(s):
        raise BadValue(_explain_bad_reading(raw, s), f"enter {READING_FORM}")
    return Decimal(s.replace(",", "."))


def _explain_bad_reading(raw: str, s: str) -> str:
    for i, ch in enumerate(s):
        if ch.isalpha():
            hint = " (letter O instead of zero?)" if ch in "oO" else ""
            hint = " (letter l/I instead of one?)" if ch in "lI" else hint
            return f"reading {raw!r} contains the letter {ch!r} at position {i + 1}{hint}"
        if ch == "-":
            return f"reading {raw!r} is negative; a meter register cannot be"
    if s.count(".") + s.count(",") > 1:
        return f"reading {raw!r} has more than one decimal separator"
    if re.match(r"^\d+[.,]\d{4,}$", s):
        return f"reading {raw!r} has more than 3 decimals; the dial shows litres at most"
    if re.match(r"^\d{8,}", s):
        return f"reading {raw!r} has more than 7 digits before the decimal separator"
    bad = next((c for c in s if not (c.isdigit() or c in ".,")), None)
    if bad is not None:
        return f"reading {raw!r} contains {bad!r}, which is not a digit"
    return f"reading {raw!r} is not a number of the form 123.456"


@dataclass(frozen=True)
class PulseWeight:
    """Volume of one pulse: `amount` in `unit` (0 mL, 1 L, 2 m³), as in config.txt."""

    amount: int
    unit: int

    @property
    def millilitres(self) -> int:
        return self.amount * Unit(self.unit).millilitres

    def __str__(self) -> str:
        return f"{self.amount} {Unit(self.unit).symbol}"


_WEIGHT_RE = re.compile(r"^(\d+(?:[.,]\d+)?)\s*(ml|l|m3|m³)?$", re.IGNORECASE)


def parse_pulse_weight(text: str) -> PulseWeight:
    """`1`, `10L`, `100 mL`, `0.5L` (-> 500 mL), `1m3`. A bare number is litres."""
    m = _WEIGHT_RE.match(text.strip())
    form = "a volume per pulse such as 1L, 10L, 100mL or 1m3 (printed on the pulse sensor)"
    if not m:
        raise BadValue(f"pulse weight {text!r} is not understood", f"enter {form}")
    value = Decimal(m.group(1).replace(",", "."))
    unit_name = (m.group(2) or "l").lower()
    ml = value * {"ml": 1, "l": 1000, "m3": 1_000_000, "m³": 1_000_000}[unit_name]
    if ml <= 0 or ml != ml.to_integral_value():
        raise BadValue(f"pulse weight {text!r} is not a whole number of mL", f"enter {form}")
    ml_int = int(ml)
    for unit in (UNIT_M3, UNIT_L, UNIT_ML):  # the coarsest unit that keeps it whole
        if ml_int % unit.millilitres == 0:
            amount = ml_int // unit.millilitres
            if amount <= config_field("weight").high:
                return PulseWeight(amount, unit)
    raise BadValue(f"pulse weight {text!r} is too large", f"enter {form}")


@dataclass(frozen=True)
class InitialRegister:
    """The register the module starts from, and what of the dial reading it represents."""

    pulses: int
    represented_m3: Decimal
    dropped_litres: Decimal  # the part of the reading below one pulse


def register_from_reading(reading_m3: Decimal, weight: PulseWeight) -> InitialRegister:
    """pulses = reading / pulse weight, rounded down (a module counts whole pulses)."""
    ml = int(reading_m3 * 1_000_000)
    pulses, rest = divmod(ml, weight.millilitres)
    if pulses > _MAX_U32:
        raise BadValue(
            f"reading {reading_m3} m³ at {weight} per pulse is more than 2^32 pulses",
            "check the reading and the pulse weight",
        )
    represented = Decimal(pulses * weight.millilitres) / Decimal(1_000_000)
    return InitialRegister(pulses, represented, Decimal(rest) / Decimal(1000))


_SERIAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,47}$")


def normalise_meter_serial(text: str) -> str:
    """Upper case, surrounding spaces removed; letters, digits and . _ / - only."""
    s = text.strip().upper()
    if not _SERIAL_RE.match(s):
        raise BadValue(
            f"meter serial {text!r} is not valid",
            "enter the serial printed on the meter (letters, digits, . _ / -, at most 48)",
        )
    return s


def derive_device_id(meter_serial: str) -> int:
    """Device id = CRC-32 of the normalised meter serial: the same meter always gets the
    same id, on any laptop. 0 is avoided (it reads as "unset" in tools)."""
    value = zlib.crc32(normalise_meter_serial(meter_serial).encode("ascii"))
    return value or 1


def parse_device_id(text: str) -> int:
    """A device id given by hand: decimal, or hex with 0x."""
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if not 0 < value <= _MAX_U32:
        raise BadValue(
            f"device id {text!r} is not an integer from 1 to 4294967295",
            "give it in decimal (305419896) or hex (0x12345678), or leave it out to derive "
            "it from the meter serial",
        )
    return value


def parse_gps(text: str) -> tuple[float, float]:
    """`lat,lon` in decimal degrees, e.g. `52.3702,4.8952`."""
    parts = text.replace(";", ",").split(",")
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        lat, lon = 999.0, 999.0
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadValue(
            f"GPS position {text!r} is not understood",
            "give latitude,longitude in decimal degrees, e.g. 52.3702,4.8952",
        )
    return lat, lon
