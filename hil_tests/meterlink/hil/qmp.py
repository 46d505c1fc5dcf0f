"""A minimal QMP (QEMU Machine Protocol) client over a unix socket: one command at a time,
asynchronous events skipped."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path
from typing import Any


class QmpError(RuntimeError):
    """QEMU answered a QMP command with an error, or the socket failed."""


class QmpClient:
    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = path
        self._sock = _connect_unix(path, timeout)
        self._sock.settimeout(timeout)
        self._buf = b""
        self._read_message()  # greeting
        self.command("qmp_capabilities")

    def _read_message(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise QmpError(f"QMP socket {self.path} closed by QEMU")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg: dict[str, Any] = json.loads(line)
        return msg

    def command(self, name: str, **arguments: Any) -> Any:
        req: dict[str, Any] = {"execute": name}
        if arguments:
            req["arguments"] = arguments
        self._sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            msg = self._read_message()
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise QmpError(f"QMP {name} failed: {msg['error'].get('desc', msg['error'])}")
            # an event ("event" key): not ours, keep reading

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def _connect_unix(path: Path, timeout: float) -> socket.socket:
    """Connects to a unix socket QEMU creates, retrying while QEMU is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return sock
        except OSError as exc:
            sock.close()
            if time.monotonic() > deadline:
                raise QmpError(f"cannot connect to {path}: {exc}") from exc
            time.sleep(0.02)
