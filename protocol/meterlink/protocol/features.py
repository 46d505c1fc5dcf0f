"""Module features: the one list of what a firmware build may leave out, and which
commands need which feature.

A board's bundle ships some of these (the per-board table is the firmware's:
`meterlink.bundler.features`); provisioning records a module's set in the key file
(`meterlink.protocol.keyfile`), and the gateway refuses a command the module cannot
take (`missing_features`) instead of sending it into a receive window where it would be
ignored. What every build does (counting, readings, leak, backflow, the unexpected-reset
alarm, the boot status, safe mode, acks) is not a feature here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ALL_FEATURES",
    "COMMAND_FEATURES",
    "FEATURES",
    "FEATURE_NAME",
    "FIELD_FEATURES",
    "Feature",
    "missing_features",
]


@dataclass(frozen=True)
class Feature:
    name: str
    meaning: str


FEATURES: tuple[Feature, ...] = (
    Feature("burst_alarm", "the burst alarm (burst_pulses in each of burst_intervals)"),
    Feature("tamper_alarm", "the tamper input (pin_tamper) and its alarm"),
    Feature("low_battery_alarm", "the low-battery alarm (battery below 10 %)"),
    Feature("config_downlink", "takes `config` downlinks (protocol 4.5) in its receive "
                               "window"),
    Feature("time_downlink", "takes `time` downlinks (protocol 4.6) in its receive window"),
    Feature("daily_status", "a periodic status frame once a day"),
    Feature("safe_mode_repeat", "repeats the safe-mode status every 300 s"),
    Feature("at_modem", "drives an AT modem (modem=1, RAK3172-class, RUI3 LoRa P2P)"),
    Feature("duty_cycle_budget", "keeps the EU868 sub-band's duty-cycle budget "
                                 "(protocol 6.4)"),
    Feature("status_detail", "status frames carry protocol 4.4's optional keys the module "
                             "has (alarms, interval, thresholds, register, reverse, weight, "
                             "unit) as they fit"),
)
ALL_FEATURES: frozenset[str] = frozenset(f.name for f in FEATURES)

# How a feature name is spelled (a key file may name features this gateway does not know
# yet: they are kept and need no command).
FEATURE_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")

# A command of this kind (docs/mqtt.md) needs this feature.
COMMAND_FEATURES: Mapping[str, str] = MappingProxyType(
    {"config": "config_downlink", "time": "time_downlink"})
# A `config` command field (module_config.COMMAND_FIELDS) that sets a threshold of an
# optional alarm needs that alarm too: a module without it would apply nothing.
FIELD_FEATURES: Mapping[str, str] = MappingProxyType(
    {"burst_pulses": "burst_alarm", "burst_intervals": "burst_alarm"})


def missing_features(kind: str, fields: Iterable[str], have: Iterable[str]) -> tuple[str, ...]:
    """The features a command of `kind` setting `fields` needs and a module with the
    features `have` lacks, in FEATURES order; () when the module can take it."""
    need = {COMMAND_FEATURES[kind]} if kind in COMMAND_FEATURES else set()
    need.update(FIELD_FEATURES[f] for f in fields if f in FIELD_FEATURES)
    lacking = need - set(have)
    return tuple(f.name for f in FEATURES if f.name in lacking)
