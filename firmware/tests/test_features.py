"""The per-board feature table (meterlink.firmware.features) says what each board's bundle
really contains: each optional feature is looked for in `bundle(board)` itself, by the
code that implements it, and found exactly on the boards the table names.

The evidence is read from the bundles as they are built today (the full profile for rp2,
the lean nRF51 profile); when the one-codebase bundler changes their shape, a look-up
here fails with a message saying so, and this test is to be brought along."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from meterlink.firmware import FIRMWARE_VERSION, SUPPORTED_BOARDS, bundle, bundle_features
from meterlink.firmware.features import BOARD_FEATURES, RELEASED_FEATURES, released_features
from meterlink.protocol import FrameType
from meterlink.protocol.features import ALL_FEATURES
from meterlink.protocol.module_config import PIN_FIELDS

Files = dict[str, str]


def _files(board: str) -> Files:
    return {name: data.decode() for name, data in bundle(board).items()}


def run_time_config(files: Files) -> set[str]:
    """The config.txt fields the running firmware keeps (beyond the parse in ml_cfg.py,
    which every build shares and which knows every field)."""
    writer = [t for t in files.values() if "open('cf','wb')" in t]
    if writer:  # the lean profile: boot phase 1 writes what the run phase gets to `cf`
        [text] = writer
        loop = re.search(r"for \w+ in\s*\(([^)]*)\):\s*\w+\.write", text)
        pins = re.search(r"=\[(255(?:,\s*255)*)\]", text)
        assert loop and pins, "the nRF51 `cf` writer changed shape: update this test"
        names = set(re.findall(r"'(\w+)'", loop.group(1)))
        if ".get('key'" in text:
            names.add("key")
        return names | set(PIN_FIELDS[:pins.group(1).count("255")])
    boot = files.get("ml_boot.py")  # the full profile applies config.txt in ml_boot
    assert boot is not None, "no `cf` writer and no ml_boot.py: update this test"
    return set(re.findall(r"\bg(?:\[|\.get\()'(\w+)'", boot))


def _downlink_decoder(files: Files) -> str:
    """The file that decodes downlink bodies (the bounded CBOR map reader: ml_dl's dmap,
    lean/downlink.py's downlink), or ""."""
    return next((t for t in files.values() if "def dmap(" in t or "def downlink(" in t), "")


def _handles(frame_type: int) -> Callable[[Files], bool]:
    # the frame type (ml_dl), or the payload's first byte, version 2 and the type (lean)
    pattern = rf"==\s*(?:{frame_type}|0x{0x20 | frame_type:02x})\b"
    return lambda files: bool(re.search(pattern, _downlink_decoder(files), re.I))


EVIDENCE: dict[str, tuple[str, Callable[[Files], bool]]] = {
    "config_downlink": ("the downlink decoder takes frame type CONFIG",
                        _handles(FrameType.CONFIG)),
    "time_downlink": ("the downlink decoder takes frame type TIME", _handles(FrameType.TIME)),
    "burst_alarm": ("the burst thresholds reach the running firmware",
                    lambda f: {"burst_pulses", "burst_intervals"} <= run_time_config(f)),
    "tamper_alarm": ("the tamper pin reaches the running firmware",
                     lambda f: "pin_tamper" in run_time_config(f)),
    "low_battery_alarm": ("the firmware reads the battery",
                          lambda f: any("battery()" in t for t in f.values())),
    "daily_status": ("a day (86400 s) is counted",
                     lambda f: any("86400" in t for t in f.values())),
    "safe_mode_repeat": ("safe mode has a status period",
                         lambda f: any("_SAFE_MS" in t for t in f.values())),
    "at_modem": ("the AT modem's send command is there",
                 lambda f: any("AT+PSEND" in t for t in f.values())),
    "duty_cycle_budget": ("the duty-cycle budget (ml_air) is there and asked before sending",
                          lambda f: any(n.startswith("ml_air") for n in f)
                          and any("ml_air.ok(" in t for t in f.values())),
}


def test_every_feature_has_its_evidence() -> None:
    assert set(EVIDENCE) == ALL_FEATURES
    assert set(BOARD_FEATURES) == set(SUPPORTED_BOARDS)


@pytest.mark.parametrize("board", SUPPORTED_BOARDS)
def test_the_table_is_what_the_bundle_contains(board: str) -> None:
    files = _files(board)
    found = {name for name, (_, has) in EVIDENCE.items() if has(files)}
    table = bundle_features(board)
    assert found == table, (
        f"{board}: in the bundle but not in the table: "
        f"{[(n, EVIDENCE[n][0]) for n in sorted(found - table)]}; in the table but not in "
        f"the bundle: {[(n, EVIDENCE[n][0]) for n in sorted(table - found)]}")


def test_the_nrf51_build_has_no_downlink_handler_and_its_window_takes_only_an_ack() -> None:
    files = _files("nrf51")
    assert _downlink_decoder(files) == ""
    window = [t for t in files.values() if "def ack(" in t or "def listen(" in t]
    assert len(window) == 1
    # the payload's first byte is the header: version 2, frame type ACK only
    headers = set(re.findall(r"==\s*(0x2[0-9A-Fa-f])\b", window[0]))
    assert {int(h, 0) for h in headers} == {(2 << 4) | FrameType.ACK}
    assert run_time_config(files) == {"id", "gen", "register", "weight", "unit", "interval",
                                      "leak_intervals", "rx_window_ms", "backflow_pulses",
                                      "history", "key", "pin_pulse", "pin_dir"}


def test_the_features_of_the_current_release_are_recorded() -> None:
    """Modules registered before features were recorded get these at export: the entry
    for the version the bundles carry today must be today's table."""
    assert FIRMWARE_VERSION in RELEASED_FEATURES
    for board in SUPPORTED_BOARDS:
        assert released_features(board, FIRMWARE_VERSION) == bundle_features(board)
    assert released_features("nrf51", 0x0999) is None
    with pytest.raises(ValueError, match="unknown board 'esp32'"):
        bundle_features("esp32")
