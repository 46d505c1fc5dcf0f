"""The 64-counter anti-replay window of spec 3.5 (as RFC 4303), pure logic."""

from __future__ import annotations

from typing import Literal

from .constants import UINT32_LIMIT
from .errors import ReplayError

__all__ = ["WINDOW", "ReplayWindow"]

WINDOW = 64
_MASK = (1 << WINDOW) - 1


class ReplayWindow:
    """`highest` is the highest counter accepted (-1: none yet); bit i of `bitmap` set means
    counter `highest - i` was accepted. The gateway persists both."""

    def __init__(self, highest: int = -1, bitmap: int = 0) -> None:
        if not -1 <= highest < UINT32_LIMIT:
            raise ValueError(f"highest counter {highest} is outside -1 .. 2^32-1")
        if not 0 <= bitmap <= _MASK:
            raise ValueError(f"bitmap {bitmap:#x} does not fit {WINDOW} bits")
        if highest == -1 and bitmap:
            raise ValueError("a window with no counter accepted must have an empty bitmap")
        self.highest = highest
        self.bitmap = bitmap

    def check(self, counter: int) -> Literal["new", "seen", "too_old"]:
        """Classify a counter without changing the window."""
        if not 0 <= counter < UINT32_LIMIT:
            raise ValueError(f"counter {counter} is outside 0 .. 2^32-1")
        if counter > self.highest:
            return "new"
        offset = self.highest - counter
        if offset >= WINDOW:
            return "too_old"
        return "seen" if self.bitmap >> offset & 1 else "new"

    def accept(self, counter: int) -> None:
        """Record a counter; ReplayError if it was already seen or is below the window."""
        verdict = self.check(counter)
        if verdict != "new":
            detail = (
                "already accepted"
                if verdict == "seen"
                else f"more than {WINDOW - 1} below the highest accepted"
            )
            raise ReplayError(f"counter {counter} {detail} (highest accepted: {self.highest})")
        if counter > self.highest:
            shift = counter - self.highest
            self.bitmap = ((self.bitmap << shift) | 1) & _MASK if shift < WINDOW else 1
            self.highest = counter
        else:
            self.bitmap |= 1 << (self.highest - counter)

    def __repr__(self) -> str:
        return f"ReplayWindow(highest={self.highest}, bitmap={self.bitmap:#x})"
