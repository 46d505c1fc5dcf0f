"""A stand-in for a board on the radio channel, without QEMU: a pty pair. The test plays
the module: it writes link frames to `port_path` (as the firmware writes to its modem)
and reads the downlinks the channel delivers from it."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from collections.abc import Callable
from types import TracebackType


class PtyBoard:
    def __init__(self, name: str) -> None:
        self.name = name
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port_path = os.ttyname(self._slave)
        self._listeners: list[Callable[[bytes], None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pty-board-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                if self._stop.wait(0.05):
                    return
                continue
            for listener in list(self._listeners):
                listener(data)

    def add_uart_listener(self, listener: Callable[[bytes], None]) -> None:
        self._listeners.append(listener)

    def remove_uart_listener(self, listener: Callable[[bytes], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def try_write(self, data: bytes) -> bool:
        try:
            os.write(self._master, data)
        except OSError:
            return False
        return True

    def send(self, data: bytes) -> None:
        """Writes bytes as the module would (to the slave side)."""
        os.write(self._slave, data)

    def receive(self, timeout: float = 0.1) -> bytes:
        """What the channel or modem wrote to the board (read on the slave side)."""
        ready, _, _ = select.select([self._slave], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self._slave, 4096)
        except OSError:
            return b""

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyBoard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
