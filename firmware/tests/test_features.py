"""The per-board feature table (meterlink.firmware.features) says what each board's bundle
really contains: each optional feature is looked for in `bundle(board)` itself, by the
code that implements it, and found exactly on the boards the table names.

The evidence is read from the bundles as they are built today (both boards from the lean
sources, mp/lean/); when the bundler changes their shape, a look-up here fails with a
message saying so, and this test is to be brought along."""

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
    which every build shares and which knows every field): boot phase 1 writes what the
    run phase gets to `cf`."""
    writer = [t for t in files.values() if "open('cf','wb')" in t]
    assert len(writer) == 1, "no `cf` writer, or more than one: update this test"
    [text] = writer
    loop = re.search(r"for \w+ in\s*\(([^)]*)\):\s*\w+\.write", text)
    pins = re.search(r"=\[(255(?:,\s*255)*)\]", text)
    assert loop and pins, "the `cf` writer changed shape: update this test"
    names = set(re.findall(r"'(\w+)'", loop.group(1)))
    if ".get('key'" in text:
        names.add("key")
    return names | set(PIN_FIELDS[:pins.group(1).count("255")])


def _downlink_decoder(files: Files) -> str:
    """The file that decodes downlink bodies (lean/downlink.py's downlink()), or ""."""
    return next((t for t in files.values() if "def downlink(" in t), "")


def _handles(frame_type: int) -> Callable[[Files], bool]:
    # the payload's first byte: version 2 and the frame type
    pattern = rf"==\s*(?:{frame_type}|0x{0x20 | frame_type:02x})\b"
    return lambda files: bool(re.search(pattern, _downlink_decoder(files), re.I))


def _called(name: str, text: str) -> bool:
    """Whether `text` calls function `name` (a call, not its `def`)."""
    return bool(re.search(rf"(?<!def )(?<![\w.]){name}\(", text))


EVIDENCE: dict[str, tuple[str, Callable[[Files], bool]]] = {
    "config_downlink": ("the downlink decoder takes frame type CONFIG",
                        _handles(FrameType.CONFIG)),
    "time_downlink": ("the downlink decoder takes frame type TIME", _handles(FrameType.TIME)),
    "burst_alarm": ("the burst thresholds reach the running firmware",
                    lambda f: {"burst_pulses", "burst_intervals"} <= run_time_config(f)),
    "tamper_alarm": ("the tamper pin reaches the running firmware",
                     lambda f: "pin_tamper" in run_time_config(f)),
    "low_battery_alarm": ("the firmware reads the battery (not just its glue defining it)",
                          lambda f: any(_called("battery", t) for t in f.values())),
    "daily_status": ("a day (86400 s) is counted",
                     lambda f: any("86400" in t for t in f.values())),
    "safe_mode_repeat": ("safe mode has a status period",
                         lambda f: any("_SAFE_MS" in t for t in f.values())),
    "at_modem": ("the AT modem's send command is there",
                 lambda f: any("AT+PSEND" in t for t in f.values())),
    "duty_cycle_budget": ("the duty-cycle budget (air.py's budget()) is there and asked "
                          "before sending",
                          lambda f: any("def budget(" in t for t in f.values())
                          and any(_called("budget", t) for t in f.values())),
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


# rp2 still carries firmware version 1.0, which its full profile shipped with every
# feature; its lean build lacks five of them until the nRF51 work's feature blocks land
# (issue 13): then this passes, and the mark must go (strict).
_RP2_GAP = pytest.mark.xfail(strict=True, reason="rp2's lean build at 1.0 lacks the burst, "
                             "tamper and low-battery alarms, the daily status and the "
                             "safe-mode repeat its 1.0 full profile shipped")


@pytest.mark.parametrize("board", [pytest.param(b, marks=_RP2_GAP) if b == "rp2" else b
                                   for b in SUPPORTED_BOARDS])  # fmt: skip
def test_the_features_of_the_current_release_are_recorded(board: str) -> None:
    """Modules registered before features were recorded get these at export: the entry
    for the version the bundles carry today must be today's table."""
    assert FIRMWARE_VERSION in RELEASED_FEATURES
    assert released_features(board, FIRMWARE_VERSION) == bundle_features(board)


def test_the_release_table_says_nothing_of_an_unknown_version_or_board() -> None:
    assert released_features("nrf51", 0x0999) is None
    with pytest.raises(ValueError, match="unknown board 'esp32'"):
        bundle_features("esp32")
