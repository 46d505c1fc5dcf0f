"""mpremote's serial transport, opened the way the harness and provisioning need it:
a read timeout (mpremote's default blocks forever on a pty whose board hangs), writes
in small pieces, and an optional tap that records every byte the board sends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mpremote.transport_serial import SerialTransport

MAINTENANCE_BREAK = b"\x03" * 10  # docs/protocol.md section 5: 8 or more 0x03 bytes

# The board's UART receive buffer is small and QEMU's UART has no baud-rate timing: a
# burst can overrun it when the host is busy (bytes were lost with 8 boards on 2 cores).
# Writing in pieces with a pause, about the pace of a real 115200-baud line, avoids it.
_WRITE_PIECE = 32
_PIECE_PAUSE_S = 0.002


class _TappedSerial:
    """Wraps a pyserial port: records what is read, writes in small pieces."""

    def __init__(self, port: Any, tap: Callable[[bytes], None] | None) -> None:
        self._port = port
        self._tap = tap

    def read(self, size: int = 1) -> bytes:
        data: bytes = self._port.read(size)
        if data and self._tap is not None:
            self._tap(data)
        return data

    def write(self, data: bytes) -> int:
        for i in range(0, len(data), _WRITE_PIECE):
            if i:
                time.sleep(_PIECE_PAUSE_S)
            self._port.write(data[i : i + _WRITE_PIECE])
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)


def open_transport(
    device: str,
    *,
    baudrate: int = 115200,
    tap: Callable[[bytes], None] | None = None,
    read_timeout: float = 2.0,
) -> SerialTransport:
    """Opens device with mpremote's SerialTransport (not yet in raw REPL)."""
    transport = SerialTransport(device, baudrate=baudrate, timeout=read_timeout)
    transport.serial = _TappedSerial(transport.serial, tap)
    return transport


def enter_raw_repl(transport: SerialTransport, *, timeout: float = 10.0) -> None:
    """Sends the maintenance break (so running firmware returns to the REPL) and Ctrl-B
    (so a board left in the raw REPL goes back to the friendly one), waits for the `>>> `
    prompt, then enters the raw REPL without a soft reset (which would rerun main.py)."""
    port = transport.serial
    seen = b""
    deadline = time.monotonic() + timeout
    while b">>> " not in seen and time.monotonic() < deadline:
        port.write(MAINTENANCE_BREAK + b"\r\x02")
        quiet_until = time.monotonic() + 1.0
        while time.monotonic() < quiet_until and b">>> " not in seen:
            waiting = port.in_waiting
            if waiting:
                seen = (seen + port.read(waiting))[-64:]
            else:
                time.sleep(0.01)
    # let the tail of the banner and repeated prompts arrive, then drop them
    time.sleep(0.05)
    while port.in_waiting:
        port.read(port.in_waiting)
    transport.enter_raw_repl(soft_reset=False, timeout_overall=timeout)
    # A 0x03 of the break that the board took while busy leaves a KeyboardInterrupt
    # pending, raised in whatever runs next: absorb it with a no-op.
    for _ in range(3):
        _, err = transport.exec_raw("pass", timeout=timeout)
        if not err:
            break
