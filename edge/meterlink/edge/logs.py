"""Structured logs: one JSON object per line on stderr (journald keeps them as they are).

`RateLimitedLog` bounds how often a noisy event (rejected frames) is written: at most
`per_minute` lines in any 60 s window (`WindowLimit`, also usable as a `logging.Filter`);
past it, events are counted and the count is reported with the next line that gets out.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import deque
from typing import Any, TextIO

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class Logger:
    def __init__(self, level: str = "info", stream: TextIO | None = None) -> None:
        self.threshold = LEVELS[level]
        self.stream = stream if stream is not None else sys.stderr

    def log(self, level: str, event: str, **fields: Any) -> None:
        if LEVELS[level] < self.threshold:
            return
        record = {"ts": round(time.time(), 3), "level": level, "event": event, **fields}
        try:
            self.stream.write(json.dumps(record, default=str) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not stop the gateway

    def debug(self, event: str, **fields: Any) -> None:
        self.log("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log("error", event, **fields)

    def critical(self, event: str, **fields: Any) -> None:
        self.log("critical", event, **fields)


class WindowLimit(logging.Filter):
    """At most `limit` events in any `window_s` seconds (a sliding window: the times of the
    last `limit` events let through are kept, so memory is bounded by `limit`). A token
    bucket, by contrast, lets twice its rate through in the first window."""

    def __init__(self, limit: int, window_s: float = 60.0,
                 clock: Any = time.monotonic) -> None:
        super().__init__()
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._times: deque[float] = deque(maxlen=max(1, limit))
        self.suppressed = 0

    def allow(self, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        if self.limit <= 0:
            self.suppressed += 1
            return False
        if len(self._times) == self.limit and now - self._times[0] < self.window_s:
            self.suppressed += 1
            return False
        self._times.append(now)
        return True

    def filter(self, record: logging.LogRecord) -> bool:
        """As a `logging.Filter`: by the record's creation time; the count suppressed
        before it is attached as `record.suppressed_since_last`."""
        if not self.allow(record.created):
            return False
        record.suppressed_since_last = self.take_suppressed()
        return True

    def take_suppressed(self) -> int:
        n, self.suppressed = self.suppressed, 0
        return n


class RateLimitedLog:
    """At most `per_minute` lines in any 60 s window; the rest are counted."""

    def __init__(self, logger: Logger, per_minute: int,
                 clock: Any = time.monotonic) -> None:
        self.logger = logger
        self.limit = WindowLimit(per_minute, 60.0, clock)

    @property
    def suppressed(self) -> int:
        return self.limit.suppressed

    def log(self, level: str, event: str, **fields: Any) -> bool:
        if not self.limit.allow():
            return False
        suppressed = self.limit.take_suppressed()
        if suppressed:
            fields["suppressed_since_last"] = suppressed
        self.logger.log(level, event, **fields)
        return True
