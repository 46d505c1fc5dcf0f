"""Replay protection (protocol 3.4, 3.5): per device, the highest counter accepted, the
64-counter window below it, and a digest of each accepted frame in the window, so that a
frame heard again is told apart as a `duplicate` (same bytes: answered again, an alarm is
acked again even after a restart) or a `replay` (different bytes, or below the window).

The rules are meterlink.protocol's (`counter_candidates`, `classify`, `payload_digest`);
this module holds the state. It is per registered device (bounded by the registry),
loaded from the outbox database at start and written back in the same transaction as the
accepted frames, so what is acked has its digest on disk.

Memory (issue 14): a device's digests sit in one fixed ring of WINDOW slots of
DIGEST_SIZE bytes (slot = counter mod WINDOW: the window holds 64 consecutive counters, so
no two of them share a slot) and a 64-bit mask of the slots that hold a digest of a
counter in the window. About 1.2 KiB per device, whatever the traffic, against about
8 KiB for a dict of bytes objects per device.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from meterlink.protocol import (
    ReplayWindow,
    classify,
    counter_candidates,
    payload_digest,
)
from meterlink.protocol.replay import WINDOW, Outcome

SEEN_KEEP = WINDOW  # digests kept per device: one per counter of the window
DIGEST_SIZE = len(payload_digest(b""))

Verdict = Outcome


def digest(payload: bytes) -> bytes:
    return payload_digest(payload)


class DeviceDigests(Mapping[int, bytes]):
    """The digests of the frames accepted in one device's window, by counter: a Mapping,
    so that meterlink.protocol's `classify` reads it as it reads a dict."""

    __slots__ = ("present", "ring", "window")

    def __init__(self, window: ReplayWindow) -> None:
        self.window = window
        self.present = 0  # bit s: slot s holds the digest of the window's counter = s mod 64
        self.ring = bytearray(WINDOW * DIGEST_SIZE)

    def __getitem__(self, counter: int) -> bytes:
        slot = counter % WINDOW
        if not (self.window.in_window(counter) and self.present >> slot & 1):
            raise KeyError(counter)
        return bytes(self.ring[slot * DIGEST_SIZE:(slot + 1) * DIGEST_SIZE])

    def __iter__(self) -> Iterator[int]:
        hi = self.window.highest
        return (c for c in range(max(0, hi - WINDOW + 1), hi + 1)
                if self.present >> (c % WINDOW) & 1)

    def __len__(self) -> int:
        return self.present.bit_count()

    def advanced(self, old_highest: int) -> None:
        """The window moved up from `old_highest`: the slots of the counters it left are
        emptied (the new highest's slot is filled by `put`)."""
        hi = self.window.highest
        if hi - old_highest >= WINDOW or old_highest < 0:
            self.present = 0
            return
        for c in range(old_highest + 1, hi + 1):
            self.present &= ~(1 << (c % WINDOW))

    def put(self, counter: int, d: bytes) -> None:
        if len(d) != DIGEST_SIZE:
            raise ValueError(f"digest of counter {counter} is {len(d)} bytes, not {DIGEST_SIZE}")
        if not self.window.in_window(counter):
            return  # below the window: nothing to tell apart any more
        slot = counter % WINDOW
        self.ring[slot * DIGEST_SIZE:(slot + 1) * DIGEST_SIZE] = d
        self.present |= 1 << slot


class ReplayGuard:
    def __init__(self, windows: Mapping[int, tuple[int, int]] | None = None,
                 seen: Mapping[int, Mapping[int, bytes]] | None = None,
                 rows: Iterable[tuple[int, int, bytes]] = ()) -> None:
        """`windows`: (highest, bitmap) by device; digests either as `seen` (by device,
        by counter) or as `rows` of (device, counter, digest), read one at a time (the
        outbox's `iter_seen`, so a restart does not build the whole table in memory).
        Digests of devices without a window, or below their window, are dropped."""
        self._devices: dict[int, DeviceDigests] = {
            dev: DeviceDigests(ReplayWindow(highest=hi, bitmap=bm))
            for dev, (hi, bm) in (windows or {}).items()
        }
        for dev, by_counter in (seen or {}).items():
            for ctr, d in by_counter.items():
                self._restore(dev, ctr, d)
        for dev, ctr, d in rows:
            self._restore(dev, ctr, d)

    def _restore(self, device_id: int, counter: int, d: bytes) -> None:
        state = self._devices.get(device_id)
        if state is not None and len(d) == DIGEST_SIZE:
            state.put(counter, bytes(d))

    def __len__(self) -> int:
        return len(self._devices)

    def window(self, device_id: int) -> ReplayWindow | None:
        state = self._devices.get(device_id)
        return state.window if state else None

    def digests(self, device_id: int) -> dict[int, bytes]:
        """A copy of a device's digests by counter (for tests and diagnostics)."""
        state = self._devices.get(device_id)
        return dict(state) if state else {}

    def candidates(self, device_id: int, on_air: int) -> tuple[int, ...]:
        """The 32-bit counters the 16 on-air bits may stand for, in the order to try."""
        state = self._devices.get(device_id)
        return counter_candidates(on_air, state.window.highest if state else -1)

    def check(self, device_id: int, counter: int, payload: bytes) -> Verdict:
        state = self._devices.get(device_id)
        if state is None:
            return classify(None, None, counter, payload)
        return classify(state.window, state, counter, payload)

    def forget(self, device_id: int) -> None:
        """Re-keying: a fresh window and no digests (protocol 3.5)."""
        self._devices.pop(device_id, None)

    def accept(self, device_id: int, counter: int, payload: bytes) -> tuple[int, int, bytes]:
        """Records an accepted frame; returns (highest, bitmap, digest) to persist."""
        d = digest(payload)
        window = self.accept_digest(device_id, counter, d)
        return window.highest, window.bitmap, d

    def accept_digest(self, device_id: int, counter: int, d: bytes) -> ReplayWindow:
        state = self._devices.get(device_id)
        if state is None:
            state = self._devices[device_id] = DeviceDigests(ReplayWindow())
        old = state.window.highest
        state.window.accept(counter)  # ReplayError if seen or below: nothing changes
        if state.window.highest != old:
            state.advanced(old)
        state.put(counter, d)
        return state.window
