"""Frame counters at a receiver (spec 3.4, 3.5): extending the 16 bits on air to 32, the
64-counter anti-replay window (RFC 4303), and telling a `duplicate` from a `replay`.

Pure logic: the gateway persists `ReplayWindow.highest`, `.bitmap` and the digests of
`SeenFrames` in the same transaction as the frames it accepts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Literal

from .constants import COUNTER_SEARCH, ON_AIR_COUNTER_MOD, UINT32_LIMIT
from .errors import ReplayError

__all__ = [
    "WINDOW",
    "Outcome",
    "ReplayWindow",
    "classify",
    "counter_candidates",
    "extend_counter",
    "payload_digest",
]

WINDOW = 64
_MASK = (1 << WINDOW) - 1
# Spec 3.4: a counter is taken in [highest - 63, highest - 63 + 65535]: up to 65,472
# counters may be lost in a row (frames nobody heard) before the receiver loses track.
MAX_GAP = ON_AIR_COUNTER_MOD - WINDOW

Outcome = Literal["new", "duplicate", "replay"]


def extend_counter(on_air: int, highest: int) -> int:
    """The 32-bit counter whose low 16 bits are `on_air`, nearest above highest - 63.

    `highest` is the highest counter accepted (-1: none). ValueError if the result would
    not fit 32 bits (the device must be re-keyed long before: 2^32 frames).
    """
    if not 0 <= on_air < ON_AIR_COUNTER_MOD:
        raise ValueError(f"on-air counter {on_air} is outside 0 .. 65535")
    if highest < 0:
        return on_air
    floor = max(0, highest - (WINDOW - 1))
    counter = floor + ((on_air - floor) % ON_AIR_COUNTER_MOD)
    if counter >= UINT32_LIMIT:
        raise ValueError(f"counter {counter} does not fit 32 bits: re-key the device")
    return counter


def counter_candidates(on_air: int, highest: int) -> tuple[int, ...]:
    """The counters a receiver tries, in order, until one's MIC verifies (spec 3.4).

    With a window: the extended counter, then the one 65,536 below it, which lies below
    the window (so that an old frame heard again is a `replay`, not a `bad_mic`). Without
    (a device never heard, or its state lost): the first COUNTER_SEARCH high parts, so a
    replaced gateway finds a module's counter again.
    """
    if highest >= 0:
        counter = extend_counter(on_air, highest)
        below = counter - ON_AIR_COUNTER_MOD
        return (counter, below) if below >= 0 else (counter,)
    return tuple(on_air + k * ON_AIR_COUNTER_MOD for k in range(COUNTER_SEARCH))


def payload_digest(payload: bytes) -> bytes:
    """What the gateway keeps of an accepted frame to recognise its exact bytes again."""
    return hashlib.blake2b(bytes(payload), digest_size=16).digest()


class ReplayWindow:
    """`highest` is the highest counter accepted (-1: none yet); bit i of `bitmap` set means
    counter `highest - i` was accepted. The window is highest - 63 .. highest (RFC 4303)."""

    __slots__ = ("bitmap", "highest")  # one per device at the gateway: kept small

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

    def in_window(self, counter: int) -> bool:
        return self.highest >= 0 and self.highest - WINDOW < counter <= self.highest

    def __repr__(self) -> str:
        return f"ReplayWindow(highest={self.highest}, bitmap={self.bitmap:#x})"


def classify(window: ReplayWindow | None, seen: Mapping[int, bytes] | None, counter: int,
             payload: bytes) -> Outcome:
    """Spec 3.5: `new` (accept once its MIC and body check), `duplicate` (the very bytes of
    a frame accepted with this counter: answer as before, use nothing), or `replay`."""
    if window is None:
        return "new"
    verdict = window.check(counter)
    if verdict == "new":
        return "new"
    if verdict == "seen" and seen is not None and seen.get(counter) == payload_digest(payload):
        return "duplicate"
    return "replay"
