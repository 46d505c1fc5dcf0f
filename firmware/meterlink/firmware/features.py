"""Which optional features (`meterlink.protocol.features`) each board's bundle ships.

Stated from the sources in `mp/` as they are bundled today:
- rp2 runs the full firmware (`ml_main`, `ml_boot`, `ml_dl`, `ml_at`, `ml_air`): burst,
  tamper and low-battery alarms, config and time downlinks (`ml_dl`), the daily status,
  the safe-mode status every 300 s, the AT modem (`ml_at`) and the duty-cycle budget
  (`ml_air`): every feature.
- nrf51 runs the nRF51 build (`mp/lean/`): its receive window (`lean/ack.py`) takes an
  ack and nothing else, there is no burst, tamper or low-battery alarm, no daily status, the
  safe-mode status is sent once, the modem is the transparent one and no duty-cycle
  budget is kept (docs/firmware.md, "nRF51 build"): none of them.

`firmware/tests/test_features.py` holds this table to the bundle's contents. When the
bundler chooses features per board (issue 13, the one-codebase work), it generates this
table instead; `bundle_features()` stays the one way to ask.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from meterlink.protocol.features import ALL_FEATURES

__all__ = ["BOARD_FEATURES", "RELEASED_FEATURES", "bundle_features", "released_features"]

BOARD_FEATURES: Mapping[str, frozenset[str]] = MappingProxyType({
    "nrf51": frozenset(),
    "rp2": ALL_FEATURES,
})

# Firmware version (major * 256 + minor) -> board -> the features its bundle shipped.
# For modules registered before the registry recorded features: provisioning exports
# these for them.
RELEASED_FEATURES: Mapping[int, Mapping[str, frozenset[str]]] = MappingProxyType({
    256: MappingProxyType({"nrf51": frozenset(), "rp2": ALL_FEATURES}),  # 1.0
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
