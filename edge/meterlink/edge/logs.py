"""Structured logs: stdlib `logging`, one JSON object per line on stderr (journald keeps
them as they are).

`configure_logging` is called once, by `meterlink gateway run`: it gives the `meterlink`
logger a `JsonFormatter` handler on stderr and sets the MQTT client's child logger
(`meterlink.edge.mqtt`, handed to aiomqtt) to WARNING, so its queue-full and pending-calls
warnings reach the journal. `Logger` is the event-style front (`log.info("event", k=v)`)
over a stdlib logger; the fields travel on the record and the formatter writes them as
`{"ts", "level", "event", **fields}`.

Rejected-frame logs are bounded by `WindowLimit`, a `logging.Filter` on their own child
logger (`RateLimitedLog`): at most `per_minute` lines in any 60 s window; past it, events
are counted and the count is reported with the next line that gets out.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import deque
from typing import Any, TextIO

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
ROOT = "meterlink"
GATEWAY = "meterlink.edge"
MQTT = "mqtt"  # child of the gateway's logger that aiomqtt writes to
MQTT_LEVEL = logging.WARNING


class JsonFormatter(logging.Formatter):
    """One JSON object per record. A record from `Logger` carries its event as the message
    and its fields in `record.fields`; a library's record (aiomqtt) is written as event
    `library` with its logger name and message."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        out: dict[str, Any] = {"ts": round(record.created, 3),
                               "level": record.levelname.lower()}
        if fields is None:
            out.update(event="library", logger=record.name, msg=record.getMessage())
            if record.exc_info:
                out["exc"] = self.formatException(record.exc_info)
        else:
            out["event"] = record.msg
            out.update(fields)
        suppressed = getattr(record, "suppressed_since_last", 0)
        if suppressed:
            out["suppressed_since_last"] = suppressed
        return json.dumps(out, default=str)


class JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler with the JSON formatter; a closed stderr must not stop the
    gateway, so write errors are dropped rather than reported on that same stderr."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self.setFormatter(JsonFormatter())

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def configure_logging(level: str = "info", stream: TextIO | None = None) -> logging.Logger:
    """Once per process, by the gateway command: JSON lines on `stream` (stderr) for
    everything under `meterlink`; the MQTT client's logger at WARNING."""
    root = logging.getLogger(ROOT)
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(JsonHandler(stream))
    root.setLevel(LEVELS[level])
    root.propagate = False
    logging.getLogger(f"{GATEWAY}.{MQTT}").setLevel(MQTT_LEVEL)
    return root


class Logger:
    """Event-style calls onto a stdlib logger.

    `Logger()` writes to the `meterlink.edge` logger that `configure_logging` set up.
    `Logger(level, stream)` makes a private logger with its own JSON handler on `stream`,
    outside the global hierarchy (tests, and a gateway embedded in another program)."""

    def __init__(self, level: str | None = None, stream: TextIO | None = None, *,
                 std: logging.Logger | None = None) -> None:
        if std is not None:
            self.std = std
        elif stream is None and level is None:
            self.std = logging.getLogger(GATEWAY)
        else:
            self.std = logging.Logger(GATEWAY, LEVELS[level or "info"])
            self.std.addHandler(JsonHandler(stream))
            self.std.propagate = False

    def child(self, suffix: str, level: str | None = None) -> Logger:
        """A child logger (`<name>.<suffix>`) that writes through this one's handlers."""
        if self.std.manager.loggerDict.get(self.std.name) is self.std:
            std = self.std.getChild(suffix)
        else:  # private: not in the manager, so link the child by hand
            std = logging.Logger(f"{self.std.name}.{suffix}")
            std.parent = self.std
        if level is not None:
            std.setLevel(LEVELS[level])
        return Logger(std=std)

    def log(self, level: str, event: str, **fields: Any) -> None:
        self.std.log(LEVELS[level], event, extra={"fields": fields})

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
        self.passed = 0

    def allow(self, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        if self.limit <= 0:
            self.suppressed += 1
            return False
        if len(self._times) == self.limit and now - self._times[0] < self.window_s:
            self.suppressed += 1
            return False
        self._times.append(now)
        self.passed += 1
        return True

    def filter(self, record: logging.LogRecord) -> bool:
        """As a `logging.Filter` (on the filter's clock, monotonic by default, so a wall
        clock step does not open or shut the window); the count suppressed before it is
        attached as `record.suppressed_since_last`. `passed` counts what got out."""
        if not self.allow():
            return False
        record.suppressed_since_last = self.take_suppressed()
        return True

    def take_suppressed(self) -> int:
        n, self.suppressed = self.suppressed, 0
        return n


class RateLimitedLog:
    """At most `per_minute` lines in any 60 s window; the rest are counted. The limit is a
    `WindowLimit` filter on a child logger (`<name>.rejects`) of `logger`."""

    def __init__(self, logger: Logger, per_minute: int,
                 clock: Any = time.monotonic) -> None:
        self.limit = WindowLimit(per_minute, 60.0, clock)
        self.logger = logger.child("rejects")
        self.logger.std.filters[:] = [self.limit]

    @property
    def suppressed(self) -> int:
        return self.limit.suppressed

    def log(self, level: str, event: str, **fields: Any) -> bool:
        """Log through the filter; whether the line got out."""
        before = self.limit.passed
        self.logger.log(level, event, **fields)
        return self.limit.passed != before
