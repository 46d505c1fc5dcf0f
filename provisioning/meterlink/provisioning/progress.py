"""A small text progress bar on stderr (no dependency needed for one bar)."""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 30):
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0
        self._tty = self.stream.isatty()
        self._last_pct = -1

    def advance(self, nbytes: int, note: str = "") -> None:
        self.done = min(self.total, self.done + nbytes)
        self.show(note)

    def show(self, note: str = "") -> None:
        pct = self.done * 100 // self.total
        if not self._tty and pct // 10 == self._last_pct // 10 and pct != 100:
            return  # in a log, one line per 10 %
        self._last_pct = pct
        filled = self.width * self.done // self.total
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{self.label} [{bar}] {pct:3d}% {self.done}/{self.total} B {note}"
        if self._tty:
            self.stream.write("\r" + line.ljust(78)[:100])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
