"""The one list of optional features (`meterlink.protocol.features`) each board's bundle
is made with, and which features a board can take at all.

`bundle(board)` (meterlink.bundler) is made from `BOARD_FEATURES[board]`: each feature
is an `if HAS_X:` block in the on-board sources, lowered per board at bundle time
(meterlink.bundler.lowering), and a file only one feature uses is bundled only with it
(meterlink.bundler.FEATURE_FILES). `bundle(board, features)` makes another set, within
`POSSIBLE_FEATURES[board]`. `bundle_features()` is the one way to ask what a board ships;
provisioning records it in the key file, and the gateway refuses a command a module's
features cannot take.

Both boards run the same sources (`mp/lean/`), which have every feature.
- rp2 ships them all.
- nrf51 ships what fits its heap with a margin for configurations (firmware 1.3:
  `burst_alarm`, `daily_status`); its AT modem is not for it (its one UART serves the
  transparent modem and the programming cable).

`firmware/tests/test_features.py` holds this table to the bundle's contents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from meterlink.protocol.features import ALL_FEATURES

__all__ = [
    "BOARD_FEATURES",
    "POSSIBLE_FEATURES",
    "RELEASED_FEATURES",
    "bundle_features",
    "check_features",
    "released_features",
]

# nrf51 (firmware 1.3): what fits its heap with >= 1 KB free at the worst moment and a
# margin for configurations, measured by hil_tests/tests/test_firmware_footprint.py
# (docs/firmware.md, "Features per board").
_NRF51_1_3 = frozenset({"burst_alarm", "daily_status"})
BOARD_FEATURES: Mapping[str, frozenset[str]] = MappingProxyType({
    "nrf51": _NRF51_1_3,
    "rp2": ALL_FEATURES,
})
# What each board's sources can be bundled with (a feature outside it is refused).
POSSIBLE_FEATURES: Mapping[str, frozenset[str]] = MappingProxyType({
    "nrf51": ALL_FEATURES - {"at_modem"},
    "rp2": ALL_FEATURES,
})

# Firmware version (major * 256 + minor) -> board -> the features its bundle shipped.
# For modules registered before the registry recorded features: provisioning exports
# these for them.
RELEASED_FEATURES: Mapping[int, Mapping[str, frozenset[str]]] = MappingProxyType({
    # 1.0: rp2 ran the full profile, whose status frames had the optional keys
    256: MappingProxyType({"nrf51": frozenset(), "rp2": ALL_FEATURES}),
    # 1.1: rp2's lean build sent the status frame's optional keys only with a config
    # downlink's thresholds (no status_detail)
    257: MappingProxyType({"nrf51": frozenset({"burst_alarm"}),
                           "rp2": ALL_FEATURES - {"status_detail"}}),
    # 1.2: rp2 gains status_detail
    258: MappingProxyType({"nrf51": frozenset({"burst_alarm"}), "rp2": ALL_FEATURES}),
    # 1.3: nrf51 gains the daily status
    259: MappingProxyType({"nrf51": _NRF51_1_3, "rp2": ALL_FEATURES}),
})


def bundle_features(board: str) -> frozenset[str]:
    """The optional features `bundle(board)` ships."""
    try:
        return BOARD_FEATURES[board]
    except KeyError:
        raise ValueError(f"unknown board {board!r}; supported boards: "
                         f"{', '.join(BOARD_FEATURES)}") from None


def released_features(board: str, firmware_version: int) -> frozenset[str] | None:
    """What the bundle of `firmware_version` for `board` shipped; None if not known."""
    return RELEASED_FEATURES.get(firmware_version, {}).get(board)


def check_features(board: str, features: Iterable[str]) -> frozenset[str]:
    """`features` as a set, if `board` can take each of them; else ValueError naming the
    board and the feature."""
    possible = POSSIBLE_FEATURES.get(board)
    if possible is None:
        raise ValueError(f"unknown board {board!r}; supported boards: "
                         f"{', '.join(BOARD_FEATURES)}")
    chosen = frozenset(features)
    unknown = sorted(chosen - ALL_FEATURES)
    if unknown:
        raise ValueError(f"unknown feature {unknown[0]!r} for board {board!r}; the features "
                         f"are: {', '.join(sorted(ALL_FEATURES))}")
    impossible = sorted(chosen - possible)
    if impossible:
        raise ValueError(f"board {board!r} cannot take feature {impossible[0]!r}; it can "
                         f"take: {', '.join(sorted(possible))}")
    return chosen
