"""Structured logs: one JSON object per line on stderr (journald keeps them as they are).

`RateLimitedLog` bounds how often a noisy event (rejected frames) is written: past the
budget, events are counted and the count is reported with the next line that gets out.
"""

from __future__ import annotations

import json
import sys
import time
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


class RateLimitedLog:
    """At most `per_minute` lines per minute (token bucket); the rest are counted."""

    def __init__(self, logger: Logger, per_minute: int,
                 clock: Any = time.monotonic) -> None:
        self.logger = logger
        self.capacity = float(per_minute)
        self.tokens = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.last = clock()
        self.suppressed = 0

    def log(self, level: str, event: str, **fields: Any) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1.0:
            self.suppressed += 1
            return False
        self.tokens -= 1.0
        if self.suppressed:
            fields["suppressed_since_last"] = self.suppressed
            self.suppressed = 0
        self.logger.log(level, event, **fields)
        return True
