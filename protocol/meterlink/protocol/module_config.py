"""A module's configuration fields and their limits: the one table.

`config.txt` on the module (written by provisioning, checked at boot by the firmware's
`ml_cfg`), the `config` downlink (spec 4.5, sent by the gateway on a command from the
central system) and `meterlink provision`'s options all take their names, defaults and
limits from here; tests hold the firmware's `ml_cfg.INTS`, the gateway's command
validation, provisioning and the table in docs/architecture.md to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .constants import MAX_DELTAS, MAX_PULSE_WEIGHT, UINT32_LIMIT

__all__ = [
    "COMMAND_FIELDS",
    "CONFIG_FIELDS",
    "INT_FIELDS",
    "PIN_FIELDS",
    "ConfigField",
    "check_value",
    "config_field",
]

_U32 = UINT32_LIMIT - 1


@dataclass(frozen=True)
class ConfigField:
    """One integer field. `default` None: required. `command`: its name in a `config`
    command and downlink (None: set by provisioning only)."""

    name: str
    low: int
    high: int
    default: int | None
    meaning: str
    command: str | None = None

    def check(self, value: int) -> int:
        """`value` if it is within the limits; ValueError saying the range otherwise."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{self.name}: expected an integer, got {value!r}")
        if not self.low <= value <= self.high:
            raise ValueError(f"{self.name} {value} is out of range: use {self.low}..{self.high}")
        return value


# In the order config.txt lists them and ml_cfg checks them.
INT_FIELDS: tuple[ConfigField, ...] = (
    ConfigField("id", 0, _U32, None, "device id"),
    ConfigField("weight", 1, MAX_PULSE_WEIGHT, 1, "pulse weight, in `unit`"),
    ConfigField("unit", 0, 2, 1, "0 mL, 1 L, 2 m3"),
    ConfigField("register", 0, _U32, 0, "initial register in pulses (dial reading / weight)"),
    ConfigField("gen", 0, _U32, None,
                "provisioning generation; a new value resets the register to `register`"),
    ConfigField("interval", 1, 65535, 900, "interval length, seconds", command="interval_s"),
    ConfigField("leak_intervals", 1, 65535, 96,
                "intervals of unbroken flow that raise `leak`", command="leak_intervals"),
    ConfigField("burst_pulses", 1, _U32, 100,
                "pulses per interval that count towards `burst`", command="burst_pulses"),
    ConfigField("burst_intervals", 1, 65535, 2,
                "intervals in a row above burst_pulses that raise `burst`",
                command="burst_intervals"),
    ConfigField("backflow_pulses", 1, _U32, 10,
                "reverse pulses (this and the previous interval) that raise `backflow`",
                command="backflow_pulses"),
    ConfigField("rx_window_ms", 0, 60000, 2000, "receive window after an uplink, ms"),
    # at most what a reading can carry (protocol 8)
    ConfigField("history", 1, MAX_DELTAS, 12, "interval deltas kept and sent"),
    ConfigField("modem", 0, 1, 0,
                "0 transparent UART modem, 1 AT modem (RAK3172-class, RUI3 LoRa P2P)"),
    ConfigField("lora_freq", 863_000_000, 870_000_000, 868_100_000,
                "LoRa frequency, Hz; its EU868 sub-band sets the duty-cycle budget"),
    ConfigField("lora_sf", 7, 12, 9, "LoRa spreading factor"),
    ConfigField("lora_power", 5, 22, 14, "LoRa transmit power, dBm (AT modem)"),
)

# Text fields: the key (32 hex digits, required) and the input pins (a micro:bit pin
# name on nrf51, a GPIO number on rp2; empty for none, pin_pulse defaults to pin0).
PIN_FIELDS = ("pin_pulse", "pin_dir", "pin_tamper")
CONFIG_FIELDS: tuple[str, ...] = (*(f.name for f in INT_FIELDS), "key", *PIN_FIELDS)

_BY_NAME = {f.name: f for f in INT_FIELDS}
COMMAND_FIELDS: Mapping[str, ConfigField] = MappingProxyType(
    {f.command: f for f in INT_FIELDS if f.command is not None})


def config_field(name: str) -> ConfigField:
    """The field named `name` in config.txt; KeyError if there is none."""
    return _BY_NAME[name]


def check_value(name: str, value: int) -> int:
    """Checks one config.txt field's value against its limits."""
    return config_field(name).check(value)
