"""ReplayWindow: the 64-counter anti-replay window of spec 3.5."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterlink.protocol import ReplayError, ReplayWindow


def test_fresh_window_accepts_zero() -> None:
    window = ReplayWindow()
    assert window.check(0) == "new"
    window.accept(0)
    assert (window.highest, window.bitmap) == (0, 1)
    assert window.check(0) == "seen"


def test_check_does_not_change_state() -> None:
    window = ReplayWindow(highest=100, bitmap=0b101)
    for c in (0, 37, 98, 99, 100, 101, 500):
        window.check(c)
    assert (window.highest, window.bitmap) == (100, 0b101)


def test_late_frames_inside_the_window() -> None:
    window = ReplayWindow()
    window.accept(100)
    assert window.check(37) == "new"  # offset 63: last slot of the window
    assert window.check(36) == "too_old"  # offset 64
    window.accept(37)
    assert window.check(37) == "seen"
    window.accept(99)
    assert window.bitmap == (1 << 63) | 0b11


def test_big_jump_clears_the_window() -> None:
    window = ReplayWindow(highest=10, bitmap=0xFF)
    window.accept(1000)
    assert (window.highest, window.bitmap) == (1000, 1)
    assert window.check(999) == "new"


def test_accept_rejects_replays_with_reason() -> None:
    window = ReplayWindow()
    window.accept(200)
    with pytest.raises(ReplayError, match="already accepted") as seen:
        window.accept(200)
    assert seen.value.code == "replay"
    with pytest.raises(ReplayError, match="below the highest"):
        window.accept(100)


def test_restored_state_behaves_like_the_original() -> None:
    window = ReplayWindow()
    for c in (5, 9, 7, 70):
        window.accept(c)
    restored = ReplayWindow(window.highest, window.bitmap)
    for c in range(0, 80):
        assert restored.check(c) == window.check(c)


def test_invalid_state_and_counters() -> None:
    with pytest.raises(ValueError):
        ReplayWindow(highest=-1, bitmap=1)
    with pytest.raises(ValueError):
        ReplayWindow(highest=5, bitmap=1 << 64)
    with pytest.raises(ValueError):
        ReplayWindow().check(2**32)
    with pytest.raises(ValueError):
        ReplayWindow().check(-1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=60))
def test_matches_a_set_model(counters: list[int]) -> None:
    """Against a plain model: accepted set plus highest; window of 64 below highest."""
    window, accepted, highest = ReplayWindow(), set(), -1
    for c in counters:
        if c > highest:
            expected = "new"
        elif highest - c >= 64:
            expected = "too_old"
        else:
            expected = "seen" if c in accepted else "new"
        assert window.check(c) == expected
        if expected == "new":
            window.accept(c)
            accepted.add(c)
            highest = max(highest, c)


def test_counter_extension_gap_rule() -> None:
    from meterlink.protocol import counter_candidates, extend_counter

    # inside the window below the highest, and up to 65,472 ahead
    assert extend_counter((1000 - 63) % 65536, 1000) == 937
    assert extend_counter((1000 + 65472) % 65536, 1000) == 1000 + 65472
    # 64 below the highest is read as 65,472 ahead: the MIC decides, then the candidate
    # 65,536 lower (below the window) is tried so that an old frame is a replay
    assert extend_counter((1000 - 64) % 65536, 1000) == 1000 + 65472
    assert counter_candidates((1000 - 64) % 65536, 1000) == (1000 + 65472, 936)
    assert counter_candidates(5, 10) == (5,)
    assert len(counter_candidates(5, -1)) == 16
    with pytest.raises(ValueError):
        extend_counter(65536, 0)
    with pytest.raises(ValueError, match="re-key"):
        extend_counter(0, 2**32 - 1)


@given(st.integers(0, 2**32 - 70000), st.integers(-63, 65472))
def test_every_counter_in_the_gap_rule_is_recovered(highest: int, step: int) -> None:
    from meterlink.protocol import extend_counter

    counter = highest + step
    if counter < 0:
        return
    assert extend_counter(counter % 65536, highest) == counter
