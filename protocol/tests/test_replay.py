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
