"""A minimal client for QEMU's qtest protocol (text lines) over a unix socket.

Used with `-accel tcg` so the CPU keeps running; serialised by a lock so a background
pulse train and the test thread can share it.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from pathlib import Path

from meterlink.hil.qmp import _connect_unix


class QtestError(RuntimeError):
    """QEMU refused a qtest command or the socket failed."""


class QtestClient:
    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = path
        self._sock = _connect_unix(path, timeout)
        self._sock.settimeout(max(timeout, 30.0))
        self._buf = b""
        self._lock = threading.Lock()

    def command(self, line: str) -> str:
        """Sends one command; returns the text after "OK" (empty for plain "OK")."""
        with self._lock:
            self._sock.sendall(line.encode() + b"\n")
            while True:
                while b"\n" not in self._buf:
                    chunk = self._sock.recv(1 << 20)
                    if not chunk:
                        raise QtestError(f"qtest socket {self.path} closed by QEMU")
                    self._buf += chunk
                reply, self._buf = self._buf.split(b"\n", 1)
                text = reply.decode(errors="replace")
                if text.startswith("IRQ "):  # intercepted pin events: not an answer
                    continue
                if text == "OK" or text.startswith("OK "):
                    return text[3:]
                raise QtestError(f"qtest {line.split(' ')[0]} failed: {text}")

    def writel(self, addr: int, value: int) -> None:
        self.command(f"writel {addr:#x} {value:#x}")

    def readl(self, addr: int) -> int:
        return int(self.command(f"readl {addr:#x}"), 16)

    def b64write(self, addr: int, data: bytes) -> None:
        self.command(f"b64write {addr:#x} {len(data):#x} {base64.b64encode(data).decode()}")

    def b64read(self, addr: int, size: int) -> bytes:
        return base64.b64decode(self.command(f"b64read {addr:#x} {size:#x}"))

    def set_irq_in(self, path: str, name: str, line: int, level: int) -> None:
        self.command(f"set_irq_in {path} {name} {line} {level}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
