"""Replay protection (protocol 3.5): per device, the highest counter accepted, a 64-counter
window below it, and a digest of each accepted frame in the window, so that a frame heard
again is told apart as a `duplicate` (same bytes) or a `replay` (different bytes, or below
the window).

State is per registered device (bounded by the registry), loaded from the outbox database
at start and written back in the same transaction as the accepted frames.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from meterlink.protocol import ReplayWindow
from meterlink.protocol.replay import WINDOW

SEEN_KEEP = WINDOW  # digests kept per device: one per counter of the window

Verdict = Literal["new", "duplicate", "replay"]


def digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


class ReplayGuard:
    def __init__(self, windows: dict[int, tuple[int, int]] | None = None,
                 seen: dict[int, dict[int, bytes]] | None = None) -> None:
        self.windows: dict[int, ReplayWindow] = {
            dev: ReplayWindow(highest=hi, bitmap=bm) for dev, (hi, bm) in (windows or {}).items()
        }
        self.seen: dict[int, dict[int, bytes]] = seen or {}

    def check(self, device_id: int, counter: int, payload: bytes) -> Verdict:
        window = self.windows.get(device_id)
        if window is None:
            return "new"
        verdict = window.check(counter)
        if verdict == "new":
            return "new"
        if verdict == "seen" and self.seen.get(device_id, {}).get(counter) == digest(payload):
            return "duplicate"
        return "replay"

    def forget(self, device_id: int) -> None:
        self.windows.pop(device_id, None)
        self.seen.pop(device_id, None)

    def accept(self, device_id: int, counter: int, payload: bytes) -> tuple[int, int, bytes]:
        """Records an accepted frame; returns (highest, bitmap, digest) to persist."""
        window = self.windows.get(device_id)
        if window is None:
            window = self.windows[device_id] = ReplayWindow()
        d = digest(payload)
        self.accept_digest(device_id, counter, d)
        return window.highest, window.bitmap, d

    def accept_digest(self, device_id: int, counter: int, d: bytes) -> None:
        window = self.windows.get(device_id)
        if window is None:
            window = self.windows[device_id] = ReplayWindow()
        window.accept(counter)
        seen = self.seen.setdefault(device_id, {})
        seen[counter] = d
        if len(seen) > SEEN_KEEP + 1:
            floor = window.highest - SEEN_KEEP
            for old in [c for c in seen if c < floor]:
                del seen[old]
