"""Replay protection (protocol 3.4, 3.5): per device, the highest counter accepted, the
64-counter window below it, and a digest of each accepted frame in the window, so that a
frame heard again is told apart as a `duplicate` (same bytes: answered again, an alarm is
acked again even after a restart) or a `replay` (different bytes, or below the window).

The rules are meterlink.protocol's (`counter_candidates`, `classify`, `payload_digest`);
this module holds the state. It is per registered device (bounded by the registry),
loaded from the outbox database at start and written back in the same transaction as the
accepted frames, so what is acked has its digest on disk.
"""

from __future__ import annotations

from meterlink.protocol import (
    ReplayWindow,
    classify,
    counter_candidates,
    payload_digest,
)
from meterlink.protocol.replay import WINDOW, Outcome

SEEN_KEEP = WINDOW  # digests kept per device: one per counter of the window

Verdict = Outcome


def digest(payload: bytes) -> bytes:
    return payload_digest(payload)


class ReplayGuard:
    def __init__(self, windows: dict[int, tuple[int, int]] | None = None,
                 seen: dict[int, dict[int, bytes]] | None = None) -> None:
        self.windows: dict[int, ReplayWindow] = {
            dev: ReplayWindow(highest=hi, bitmap=bm) for dev, (hi, bm) in (windows or {}).items()
        }
        self.seen: dict[int, dict[int, bytes]] = seen or {}

    def candidates(self, device_id: int, on_air: int) -> tuple[int, ...]:
        """The 32-bit counters the 16 on-air bits may stand for, in the order to try."""
        window = self.windows.get(device_id)
        return counter_candidates(on_air, window.highest if window else -1)

    def check(self, device_id: int, counter: int, payload: bytes) -> Verdict:
        return classify(self.windows.get(device_id), self.seen.get(device_id), counter, payload)

    def forget(self, device_id: int) -> None:
        """Re-keying: a fresh window and no digests (protocol 3.5)."""
        self.windows.pop(device_id, None)
        self.seen.pop(device_id, None)

    def accept(self, device_id: int, counter: int, payload: bytes) -> tuple[int, int, bytes]:
        """Records an accepted frame; returns (highest, bitmap, digest) to persist."""
        d = digest(payload)
        self.accept_digest(device_id, counter, d)
        window = self.windows[device_id]
        return window.highest, window.bitmap, d

    def accept_digest(self, device_id: int, counter: int, d: bytes) -> None:
        window = self.windows.get(device_id)
        if window is None:
            window = self.windows[device_id] = ReplayWindow()
        window.accept(counter)
        seen = self.seen.setdefault(device_id, {})
        seen[counter] = d
        if len(seen) > SEEN_KEEP + 1:
            for old in [c for c in seen if not window.in_window(c)]:
                del seen[old]
