"""Features chosen at bundle time: the `if HAS_X:` blocks of the on-board sources lowered
per board (meterlink.bundler.lowering), feature-only files bundled only with their
feature, and a feature set a board cannot take refused."""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import meterlink.bundler as fw
from meterlink.bundler import (
    MP_DIR,
    NRF51_NAMES,
    bundle,
    split_chunks,
    symbol_map,
)
from meterlink.bundler.features import BOARD_FEATURES, POSSIBLE_FEATURES
from meterlink.bundler.lowering import FLAGS, FeatureSourceError, lower_features
from meterlink.bundler.symbols import translate
from meterlink.protocol.features import ALL_FEATURES

SOURCE = """\
def f(x):
    y = 1
    if HAS_BURST_ALARM:
        y = 2  # burst
        if HAS_TAMPER_ALARM:
            y = 3
    else:
        y = 4
    if HAS_DAILY_STATUS:
        z = (x,
             5)
    return y


def g():
    if HAS_TIME_DOWNLINK:
        return 6
"""


def _run(source: str) -> dict[str, object]:
    space: dict[str, object] = {}
    exec(compile(source, "<lowered>", "exec"), space)
    return space


@pytest.mark.parametrize(("on", "f", "g"), [
    (ALL_FEATURES, 3, 6),
    ({"burst_alarm"}, 2, None),
    ({"tamper_alarm", "time_downlink"}, 4, 6),
    (set(), 4, None),
])
def test_the_live_branch_is_kept_dedented_and_the_dead_one_is_gone(
        on: set[str], f: int, g: int | None) -> None:
    lowered = lower_features(SOURCE, on)
    assert lowered.count("\n") == SOURCE.count("\n")  # line numbers kept
    assert "HAS_" not in lowered and "if 1" not in lowered and "else" not in lowered
    space = _run(lowered)
    assert space["f"](0) == f  # type: ignore[operator]
    assert space["g"]() == g  # type: ignore[operator]
    lines = lowered.splitlines()
    if "burst_alarm" in on:
        assert lines[3] == "    y = 2  # burst"  # at the if's level
        assert ("y = 3" in lowered) == ("tamper_alarm" in on)
    else:
        assert "y = 2" not in lowered and "y = 3" not in lowered
        assert lines[7] == "    y = 4"
    if "daily_status" in on:
        assert lines[9:11] == ["    z = (x,", "         5)"]
    # a block left empty keeps a `pass`, at the line of what it held
    assert (lines[15] == "    pass") == ("time_downlink" not in on)


SHARED = """\
def f():
    y = 1
    if HAS_STATUS_DETAIL or HAS_CONFIG_DOWNLINK:
        y = 2  # shared
        if HAS_STATUS_DETAIL:
            y = 3
    else:
        y = 4
    return y
"""


@pytest.mark.parametrize(("on", "f"), [
    ({"status_detail", "config_downlink"}, 3),
    ({"status_detail"}, 3),
    ({"config_downlink", "burst_alarm"}, 2),
    ({"burst_alarm", "time_downlink"}, 4),
    (set(), 4),
])
def test_flags_joined_by_or_keep_the_block_if_any_is_on(on: set[str], f: int) -> None:
    lowered = lower_features(SHARED, on)
    assert lowered.count("\n") == SHARED.count("\n")
    assert "HAS_" not in lowered and " or " not in lowered and "else" not in lowered
    assert _run(lowered)["f"]() == f  # type: ignore[operator]
    lines = lowered.splitlines()
    if f == 4:
        assert lines[7] == "    y = 4" and "y = 2" not in lowered
    else:
        assert lines[3] == "    y = 2  # shared" and "y = 4" not in lowered


@pytest.mark.parametrize(("source", "words"), [
    ("x = HAS_BURST_ALARM\n", "mp/t.py:1: HAS_BURST_ALARM used inside a statement"),
    ("if HAS_BURST_ALARM or x:\n    y = 1\n", "mp/t.py:1: HAS_BURST_ALARM used inside"),
    ("if HAS_BURST_ALARM or HAS_NO_SUCH_THING:\n    y = 1\n", "HAS_BURST_ALARM used inside"),
    ("if HAS_BURST_ALARM and HAS_TAMPER_ALARM:\n    y = 1\n", "HAS_BURST_ALARM used inside"),
    ("if HAS_BURST_ALARM or HAS_TAMPER_ALARM and HAS_DAILY_STATUS:\n    y = 1\n",
     "HAS_BURST_ALARM used inside"),
    ("if HAS_BURST_ALARM or not HAS_TAMPER_ALARM:\n    y = 1\n", "HAS_BURST_ALARM used"),
    ("if (HAS_BURST_ALARM or\n        HAS_TAMPER_ALARM): y = 1\n",
     "mp/t.py:1: a body on the `if` line"),
    ("if HAS_BURST_ALARM and x:\n    y = 1\n", "mp/t.py:1: HAS_BURST_ALARM used inside"),
    ("if not HAS_TAMPER_ALARM:\n    y = 1\n", "HAS_TAMPER_ALARM used inside"),
    ("if HAS_BURST_ALARM: y = 1\n", "mp/t.py:1: a body on the `if` line"),
    ("if HAS_BURST_ALARM:\n    y = 1\nelif x:\n    y = 2\n", "mp/t.py:3: `elif`"),
    ("if HAS_BURST_ALARM:\n    y = 1\nelse: y = 2\n", "mp/t.py:3: a body on the `else`"),
    ("if HAS_NO_SUCH_THING:\n    y = 1\n", "HAS_NO_SUCH_THING used inside"),
])
def test_a_flag_used_otherwise_is_refused_naming_file_and_line(source: str, words: str) -> None:
    with pytest.raises(FeatureSourceError, match=words.replace("(", r"\(")) as err:
        lower_features(source, {"burst_alarm"}, "mp/t.py")
    assert "write `if HAS_X:` as a whole statement" in str(err.value)


def test_each_feature_has_its_flag_in_fields_py() -> None:
    assert set(FLAGS.values()) == ALL_FEATURES
    text = (MP_DIR / "fields.py").read_text()
    for flag in FLAGS:
        assert f"\n{flag} = const(1)" in text  # all on in the plain source


@pytest.mark.parametrize(("board", "features", "words"), [
    ("nrf51", {"at_modem"}, "board 'nrf51' cannot take feature 'at_modem'"),
    ("nrf51", {"burst_alarm", "warp_drive"}, "unknown feature 'warp_drive' for board 'nrf51'"),
    ("rp2", {"warp_drive"}, "unknown feature 'warp_drive' for board 'rp2'"),
    ("esp32", set(), "unknown board 'esp32'"),
])
def test_a_feature_set_the_board_cannot_take_is_refused(
        board: str, features: set[str], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        bundle(board, features)
    with pytest.raises(ValueError, match=words):
        symbol_map(board, features)


def test_the_default_bundle_is_the_boards_own_feature_list() -> None:
    for board in BOARD_FEATURES:
        assert bundle(board) == bundle(board, BOARD_FEATURES[board])
        assert BOARD_FEATURES[board] <= POSSIBLE_FEATURES[board]
        assert symbol_map(board)["features"] == sorted(BOARD_FEATURES[board])
    assert bundle("rp2", ALL_FEATURES) != bundle("rp2", set())  # rp2 is lowered too
    # a source without a flag is what it was: lowering adds and moves nothing
    for path in sorted((MP_DIR / "lean").glob("*.py")):
        text = path.read_text()
        if "HAS_" not in text:
            assert lower_features(text, set()) == text


@pytest.fixture
def mp_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of mp/ that the bundler reads instead, for sources edited by a test."""
    copy = tmp_path / "mp"
    shutil.copytree(MP_DIR, copy)
    monkeypatch.setattr(fw, "MP_DIR", copy)
    fw._lowered.cache_clear()
    yield copy
    fw._lowered.cache_clear()


BLOCK = """\
    if HAS_BURST_ALARM:
        burst_probe = v[V_FWD] + 77
        v[V_NFLOW] = burst_probe
    else:
        no_burst_probe = 55
"""


def test_a_dead_block_costs_the_nrf51_bundle_nothing(mp_copy: Path) -> None:
    loop = mp_copy / "lean/loop.py"
    plain = bundle("nrf51", set())
    text = loop.read_text()
    anchor = "    poll()\n"
    loop.write_text(text.replace(anchor, anchor + BLOCK, 1))
    fw._lowered.cache_clear()
    name = NRF51_NAMES["loop"]
    off, on = bundle("nrf51", set()), bundle("nrf51", {"burst_alarm"})
    # off: only the else branch is added; on: only the body, dedented, no test left
    # (in the statements: a chunk's 3-digit length may read 77 too)
    off_text, on_text = ("".join(split_chunks(b[name].decode())) for b in (off, on))
    assert "77" not in off_text and "=55" in off_text
    assert "+77" in on_text and "55" not in on_text and "if 1" not in on_text
    assert {n: d for n, d in off.items() if n != name} == {
        n: d for n, d in plain.items() if n != name}
    step = "".join(split_chunks(on[name].decode()))
    ast.parse(step)
    # the symbol map still names the source line of the kept body
    src_line = text[: text.index(anchor)].count("\n") + 3  # `burst_probe = ...`
    mapping = symbol_map("nrf51", {"burst_alarm"})["files"][name]
    assert src_line in mapping["lines"] or any(
        a <= src_line <= b for a, b in zip(mapping["lines"], mapping["last"], strict=True))
    report = translate(f"{name} here\n", symbol_map("nrf51", {"burst_alarm"}))
    assert "lean/loop.py" in report


def test_a_feature_only_file_is_bundled_and_loaded_only_with_its_feature(
        mp_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fw, "FEATURE_FILES", {"lean/seal.py": "tamper_alarm"})
    name = NRF51_NAMES["seal"]
    letter = name[4]
    off, on = bundle("nrf51", set()), bundle("nrf51", {"tamper_alarm"})
    assert name not in off and name in on
    assert set(on) - set(off) == {name}
    main_off, main_on = off["main.py"].decode(), on["main.py"].decode()
    run_off = main_off.split("(b'", 1)[1].split("'", 1)[0]  # the run phase's order
    run_on = main_on.split("(b'", 1)[1].split("'", 1)[0]
    assert letter in run_on and letter not in run_off
    assert run_off == run_on.replace(letter, "")
    assert name not in symbol_map("nrf51", set())["files"]
