"""The board's UART as a byte stream: one reader thread per board drains the pty into a
bounded buffer, appends every byte to the UART log, and hands a copy to listeners (the
radio channel). The reader can be paused while mpremote's transport owns the pty."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import serial

UartListener = Callable[[bytes], None]

_BUFFER_LIMIT = 1 << 20  # bytes kept for read(); the log keeps everything


class UartLog:
    """Append-only file shared by the reader thread and the REPL transport."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: BinaryIO | None = path.open("ab")

    def append(self, data: bytes) -> None:
        with self._lock:
            if self._file is not None:
                self._file.write(data)
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class ReceivedBytes:
    """What an emulated line received and nobody has read yet (the newest
    _BUFFER_LIMIT bytes), with blocking reads: the micro:bit's UART pump and the Pico's
    modem line both keep their input here."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._cond = threading.Condition()

    def _received(self, data: bytes) -> None:
        with self._cond:
            self._buf += data
            if len(self._buf) > _BUFFER_LIMIT:
                del self._buf[: len(self._buf) - _BUFFER_LIMIT]
            self._cond.notify_all()

    def read(self, n: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    return b""
                self._cond.wait(left)
            out = bytes(self._buf[:n])
            del self._buf[:n]
            return out

    def read_until(self, token: bytes, timeout: float) -> bytes:
        """Returns everything up to and including token, or b"" (nothing consumed) if it
        does not arrive in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                i = self._buf.find(token)
                if i >= 0:
                    out = bytes(self._buf[: i + len(token)])
                    del self._buf[: i + len(token)]
                    return out
                left = deadline - time.monotonic()
                if left <= 0:
                    return b""
                self._cond.wait(left)

    def peek(self) -> bytes:
        with self._cond:
            return bytes(self._buf)

    def clear(self) -> None:
        with self._cond:
            self._buf.clear()


class UartPump(ReceivedBytes):
    """Keeps the pty open for the board's whole life (so QEMU never sees a hang-up and
    never discards output) and reads it in a background thread."""

    def __init__(self, device: str, log: UartLog, name: str) -> None:
        super().__init__()
        self.device = device
        self.log = log
        self._port = serial.Serial(device, 115200, timeout=0, exclusive=False)
        self._fd = self._port.fileno()
        self._listeners: list[UartListener] = []
        self._paused = threading.Event()
        self._pause_ack = threading.Event()
        self._stop = threading.Event()
        self.io_lock = threading.RLock()  # held by repl() and write()
        self._thread = threading.Thread(target=self._run, name=f"uart-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._paused.is_set():
                self._pause_ack.set()
                time.sleep(0.005)
                continue
            self._pause_ack.clear()
            try:
                ready, _, _ = select.select([self._fd], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self._fd, 4096)
            except (OSError, ValueError):
                if self._stop.wait(0.05):
                    return
                continue
            if data:
                self.deliver(data)

    def deliver(self, data: bytes) -> None:
        """Records bytes that came from the board (also used by the REPL transport)."""
        self.log.append(data)
        self._received(data)
        for listener in list(self._listeners):
            listener(data)

    def pause(self) -> None:
        """Stops reading the pty (returns once the reader has let go of it)."""
        self._pause_ack.clear()
        self._paused.set()
        self._pause_ack.wait(2.0)

    def resume(self) -> None:
        self._paused.clear()

    def add_listener(self, listener: UartListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: UartListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def write(self, data: bytes) -> None:
        with self.io_lock:
            view = memoryview(data)
            while view:
                _, ready, _ = select.select([], [self._fd], [], 5.0)
                if not ready:
                    raise TimeoutError(f"UART {self.device} does not accept data")
                n = os.write(self._fd, view)
                view = view[n:]

    def try_write(self, data: bytes) -> bool:
        """Writes unless the REPL owns the UART right now; False if it did not write."""
        if not self.io_lock.acquire(blocking=False):
            return False
        try:
            self.write(data)
            return True
        finally:
            self.io_lock.release()

    def close(self) -> None:
        self._stop.set()
        self._paused.clear()
        self._thread.join(2.0)
        with contextlib.suppress(OSError):
            self._port.close()
