"""Recently accepted frames, to merge copies heard by several receivers into one reading.

Bounded twice: entries older than `window_s` and the oldest beyond `max_entries` are
forgotten, whatever the traffic. A copy heard after its entry is forgotten is still
recognised as a duplicate by the replay guard; only its receiver is not added.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Sighting:
    device_id: int
    counter: int
    confirmed: bool
    best_receiver: str
    best_rssi: int | None
    receivers: list[str] = field(default_factory=list)
    first_seen: float = field(default_factory=time.monotonic)
    durable: bool = False  # committed to the outbox

    def add(self, receiver: str, rssi: int | None) -> bool:
        """Adds a receiver; True when the record changed (a new receiver or better rssi)."""
        changed = False
        if receiver not in self.receivers:
            self.receivers.append(receiver)
            changed = True
        if rssi is not None and (self.best_rssi is None or rssi > self.best_rssi):
            self.best_rssi = rssi
            self.best_receiver = receiver
            changed = True
        return changed


class Deduplicator:
    def __init__(self, window_s: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self.clock = clock
        self.entries: OrderedDict[tuple[int, int], Sighting] = OrderedDict()

    def _expire(self) -> None:
        now = self.clock()
        while self.entries:
            key, first = next(iter(self.entries.items()))
            if len(self.entries) > self.max_entries or now - first.first_seen > self.window_s:
                del self.entries[key]
            else:
                break

    def new(self, device_id: int, counter: int, confirmed: bool, receiver: str,
            rssi: int | None) -> Sighting:
        s = Sighting(device_id, counter, confirmed, receiver, rssi, [receiver],
                     first_seen=self.clock())
        self.entries[(device_id, counter)] = s
        self._expire()
        return s

    def get(self, device_id: int, counter: int) -> Sighting | None:
        self._expire()
        return self.entries.get((device_id, counter))

    def __len__(self) -> int:
        return len(self.entries)
