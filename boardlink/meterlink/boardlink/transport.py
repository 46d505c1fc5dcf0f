"""mpremote's serial transport, opened the way the harness and provisioning need it:
a read timeout (mpremote's default blocks forever on a pty whose board hangs), writes
in small pieces, and an optional tap that records every byte the board sends."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

# Ctrl-C, repeated: stops a script running at the REPL. The nRF51 firmware ignores it
# (Ctrl-C is off while it runs, docs/protocol.md section 5): only the maintenance input
# stops it. On rp2 the REPL is the USB console, apart from the modem: Ctrl-C there
# stops the firmware (maintenance, docs/protocol.md section 5).
INTERRUPT = b"\x03" * 10

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


def wait_prompt(transport: SerialTransport, timeout: float) -> bool:
    """Sends Ctrl-C (stops a script at the REPL) and Ctrl-B (so a board left in the raw
    REPL goes back to the friendly one) until the `>>> ` prompt comes; False if it does
    not within timeout. The meterlink firmware does not answer this (enter_maintenance)."""
    port = transport.serial
    seen = b""
    deadline = time.monotonic() + timeout
    while b">>> " not in seen and time.monotonic() < deadline:
        port.write(INTERRUPT + b"\r\x02")
        quiet_until = min(time.monotonic() + 1.0, deadline)
        while time.monotonic() < quiet_until and b">>> " not in seen:
            waiting = port.in_waiting
            if waiting:
                seen = (seen + port.read(waiting))[-64:]
            else:
                time.sleep(0.01)
    return b">>> " in seen


# How long one try at the raw REPL's banner may take. A board answers Ctrl-A within
# milliseconds; when a byte of the exchange is lost on a busy host's line the banner never
# comes, and waiting the whole timeout for it would leave no time to try again.
RAW_REPL_TRY_S = 3.0


def enter_raw_repl(transport: SerialTransport, *, timeout: float = 10.0) -> None:
    """Waits for the `>>> ` prompt (wait_prompt), then enters the raw REPL without a soft
    reset (which would rerun main.py), trying again while `timeout` allows: a Ctrl-A or a
    byte of the banner lost on the line is the usual cause of mpremote's "could not
    enter raw repl". The meterlink firmware does not answer: put the module in
    maintenance first (enter_maintenance)."""
    port = transport.serial
    deadline = time.monotonic() + timeout
    while True:
        wait_prompt(transport, max(deadline - time.monotonic(), 0.5))
        # let the tail of the banner and repeated prompts arrive, then drop them
        time.sleep(0.05)
        while port.in_waiting:
            port.read(port.in_waiting)
        left = deadline - time.monotonic()
        try:
            transport.enter_raw_repl(soft_reset=False,
                                     timeout_overall=max(min(RAW_REPL_TRY_S, left), 0.5))
            break
        except TransportError:
            if deadline - time.monotonic() < 1.0:
                raise
    # A 0x03 the board took while busy leaves a KeyboardInterrupt pending, raised in
    # whatever runs next: absorb it with a no-op.
    for _ in range(3):
        _, err = transport.exec_raw("pass", timeout=timeout)
        if not err:
            break


class MaintenanceCable(Protocol):
    """The module's maintenance input and reset as the programming cable drives them
    (docs/protocol.md section 5): nothing sent over the UART (the radio's line) can
    stop the firmware."""

    def hold(self, held: bool) -> None:
        """Drives the maintenance input: held (True) or released."""

    def reset(self) -> None:
        """Resets the module (it boots main.py, which sees the input if held)."""


class SerialLinesCable:
    """A programming cable whose DTR line drives the maintenance input (high while
    asserted) and whose RTS line drives the reset (low while asserted), the wiring of
    the usual auto-reset programming cables. On a port without modem lines (a pty)
    nothing happens: then the installer holds the input and presses reset."""

    def __init__(self, transport: SerialTransport) -> None:
        self._serial = transport.serial
        with contextlib.suppress(OSError, ValueError):
            self._serial.rts = False  # pyserial asserts it on open: not held in reset

    def hold(self, held: bool) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._serial.dtr = held

    def reset(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._serial.rts = True
            time.sleep(0.05)
            self._serial.rts = False


# How long the module may take to stop by itself once the maintenance input is held
# (running, it checks every 100 ms and after each receive window; booting, it ends the
# phase it is in, about 2 s) before it is reset with the input held. A reset is a power
# cut to the firmware: only for a module that does not answer (a crash's wait).
STOP_WAIT_S = 6.0


def enter_maintenance(
    transport: SerialTransport,
    cable: MaintenanceCable,
    *,
    timeout: float = 10.0,
    stop_wait: float = STOP_WAIT_S,
) -> None:
    """Puts the module in maintenance and its raw REPL: holds the maintenance input;
    running firmware commits its state and stops within `stop_wait`; otherwise (safe
    mode's wait, a boot phase, a crash's wait) the module is reset with the input held,
    and main.py stops at boot. The input is released at the REPL, so the next reset
    boots the firmware."""
    cable.hold(True)
    try:
        if not wait_prompt(transport, stop_wait):
            cable.reset()
            wait_prompt(transport, timeout)
    finally:
        cable.hold(False)
    enter_raw_repl(transport, timeout=timeout)
