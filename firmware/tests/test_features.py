"""The per-board feature table (meterlink.bundler.features) says what each board's bundle
really contains: each optional feature is looked for in `bundle(board)` itself, by the
code that implements it, and found exactly on the boards the table names.

The evidence is read from the bundles as they are built today (both boards from the lean
sources, mp/lean/, whose `if HAS_X:` blocks the bundler keeps or drops per feature); when
the bundler changes their shape, a look-up here fails with a message saying so, and this
test is to be brought along. Each feature the nRF51 can take is also looked for in a
bundle made with it alone, and not found in one made without it: so the evidence is the
feature's code, not its config field (`cf` has a fixed layout with every field)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from meterlink.bundler import (
    FIRMWARE_VERSION,
    SUPPORTED_BOARDS,
    bundle,
    bundle_features,
    is_loaded,
    split_chunks,
)
from meterlink.bundler.features import (
    BOARD_FEATURES,
    POSSIBLE_FEATURES,
    RELEASED_FEATURES,
    released_features,
)
from meterlink.protocol import FrameType
from meterlink.protocol.features import ALL_FEATURES
from meterlink.protocol.module_config import PIN_FIELDS

Files = dict[str, str]


def _files(board: str, features: set[str] | frozenset[str] | None = None) -> Files:
    return {name: data.decode() for name, data in bundle(board, features).items()}


# Features the nRF51 can take whose code is not in mp/lean/ yet.
NO_NRF51_CODE_YET: set[str] = set()


def run_time_config(files: Files) -> set[str]:
    """The config.txt fields the running firmware keeps (beyond the parse in ml_cfg.py,
    which every build shares and which knows every field): boot phase 1 writes what the
    run phase gets to `cf`."""
    writer = [t for t in files.values() if "open('cf','wb')" in t]
    assert len(writer) == 1, "no `cf` writer, or more than one: update this test"
    [text] = writer
    loops = re.findall(r"for \w+ in\s*\(([^)]*)\):\s*\w+\.write", text)
    pins = re.search(r"=\[(255(?:,\s*255)*)\]", text)
    assert loops and pins, "the `cf` writer changed shape: update this test"
    names = {n for loop in loops for n in re.findall(r"'(\w+)'", loop)}
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


def _code(files: Files) -> str:
    """The run-time code of a bundle: its loaded files' chunks, joined."""
    return "".join("".join(split_chunks(t)) for n, t in files.items() if is_loaded(n))


def _called(name: str, text: str) -> bool:
    """Whether `text` calls function `name` (a call, not its `def`)."""
    return bool(re.search(rf"(?<!def )(?<![\w.]){name}\(", text))


def _in_code(pattern: str) -> Callable[[Files], bool]:
    return lambda files: bool(re.search(pattern, _code(files)))


EVIDENCE: dict[str, tuple[str, Callable[[Files], bool]]] = {
    "config_downlink": ("the downlink decoder takes frame type CONFIG",
                        _handles(FrameType.CONFIG)),
    "time_downlink": ("the downlink decoder takes frame type TIME", _handles(FrameType.TIME)),
    "burst_alarm": ("the interval end raises flag 2 (burst)", _in_code(r"\w\|=2\b")),
    "tamper_alarm": ("the 100 ms check reads the tamper input and raises flag 8",
                     _in_code(r"if Q\[3\]\(\):\w\|=8")),
    "low_battery_alarm": ("the firmware reads the battery (rp2: calls its glue's battery(); "
                          "nRF51: the supervisor's pin16, the glue inlined)",
                          lambda f: any(_called("battery", t) for t in f.values())
                          or "pin16.read_digital()" in _code(f)),
    "daily_status": ("a day (86400 s) is counted",
                     lambda f: any("86400" in t for t in f.values())),
    "safe_mode_repeat": ("safe mode has a status period (300 s in run())",
                         _in_code(r"def run\(\):(\n .*)*>=300000")),
    "at_modem": ("the AT modem's send command is there",
                 lambda f: any("AT+PSEND" in t for t in f.values())),
    "duty_cycle_budget": ("the duty-cycle budget (air.py's budget()) is there and asked "
                          "before sending",
                          lambda f: any("def budget(" in t for t in f.values())
                          and any(_called("budget", t) for t in f.values())),
    "status_detail": ("the status body gets the optional keys (counting.py's detail())",
                      lambda f: "def detail(" in _code(f) and _called("detail", _code(f))),
}


def test_every_feature_has_its_evidence() -> None:
    assert set(EVIDENCE) == ALL_FEATURES
    assert set(BOARD_FEATURES) == set(SUPPORTED_BOARDS)


@pytest.mark.parametrize("feature", sorted(POSSIBLE_FEATURES["nrf51"]))
def test_each_nrf51_feature_is_in_a_bundle_with_it_alone_and_not_without(feature: str) -> None:
    alone = {n for n, (_, has) in EVIDENCE.items() if has(_files("nrf51", {feature}))}
    without = {n for n, (_, has) in EVIDENCE.items()
               if has(_files("nrf51", POSSIBLE_FEATURES["nrf51"] - {feature}))}
    if feature in NO_NRF51_CODE_YET:
        assert feature not in alone | without
        return
    assert alone == {feature}
    assert feature not in without


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
                                      "history", "key", "pin_pulse", "pin_dir", "pin_tamper",
                                      "burst_pulses", "burst_intervals"}


@pytest.mark.parametrize("board", SUPPORTED_BOARDS)
def test_the_features_of_the_current_release_are_recorded(board: str) -> None:
    """Modules registered before features were recorded get these at export: the entry
    for the version the bundles carry today must be today's table."""
    assert FIRMWARE_VERSION in RELEASED_FEATURES
    assert released_features(board, FIRMWARE_VERSION) == bundle_features(board)


def test_the_release_table_says_nothing_of_an_unknown_version_or_board() -> None:
    assert released_features("nrf51", 0x0999) is None
    with pytest.raises(ValueError, match="unknown board 'esp32'"):
        bundle_features("esp32")
