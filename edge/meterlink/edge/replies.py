"""Replies to commands, waiting for the broker: the downlink posts them (also at start,
before the broker is connected), the forwarder publishes them on `commands/<id>/reply`.

Held in memory only, at most MAX_WAITING (the oldest go first when the broker stays
away that long); the log line and the metric of each outcome are the durable record.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

MAX_WAITING = 1000


class CommandReplies:
    def __init__(self, limit: int = MAX_WAITING) -> None:
        self._waiting: deque[tuple[str, dict[str, Any]]] = deque(maxlen=limit)
        self._new = asyncio.Event()
        self.dropped = 0  # replies pushed out by newer ones before they were published

    def post(self, device: str, payload: dict[str, Any]) -> None:
        """Queues the reply to a command sent on `commands/<device>`."""
        if len(self._waiting) == self._waiting.maxlen:
            self.dropped += 1
        self._waiting.append((device, payload))
        self._new.set()

    def __len__(self) -> int:
        return len(self._waiting)

    async def wait(self) -> None:
        """Returns once a reply waits."""
        while not self._waiting:
            self._new.clear()
            await self._new.wait()

    def peek(self) -> tuple[str, dict[str, Any]]:
        return self._waiting[0]

    def pop(self) -> None:
        """The oldest reply was published."""
        self._waiting.popleft()
