"""GPIO inputs of the emulated micro:bit and pulse trains driven through qtest.

The pins are levels set from outside (qtest set_irq_in on the nRF51's GPIO inputs);
firmware sees them by polling: QEMU's nRF51 has no GPIOTE/PPI and this MicroPython has
no pin interrupts. Pulse widths are host wall-clock times, or, on a guest-paced board,
guest times: each level is held until the guest clock has advanced by the width, so a
host that does not schedule QEMU for a while lengthens a pulse instead of hiding it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# micro:bit edge-connector name -> nRF51 GPIO line; pin8 is the firmware's maintenance
# input (docs/protocol.md section 5), which the programming cable drives
MICROBIT_PINS = {"pin0": 3, "pin1": 2, "pin2": 1, "pin8": 18}
MAINTENANCE_PIN = "pin8"


def pin_line(pin: str) -> int:
    """The nRF51 GPIO line of a micro:bit pin name; ValueError if unknown."""
    try:
        return MICROBIT_PINS[pin]
    except KeyError:
        raise ValueError(
            f"unknown pin {pin!r}: the emulated micro:bit has inputs {sorted(MICROBIT_PINS)}"
        ) from None


# a guest clock that has not moved for this long (wall seconds) is taken to be stopped (a
# reset stops TIMER2) and is started again
_STALL_S = 2.0
# one reading of the guest clock counts at most this much (ms, or a quarter of the
# width if that is more) towards a level's width; the clock is read at least twice as
# often, so a clock that moves as the guest runs is never capped (docs/hil.md, "How
# pulses are timed": an idle guest's clock can jump while the guest does not run)
_JUMP_MS = 5.0


class GuestTime:
    """Holds levels for guest time: read_us() reads a free-running microsecond counter
    of the guest (modulo 2^32), restart() (re)starts it."""

    def __init__(self, read_us: Callable[[], int], restart: Callable[[], None]) -> None:
        self._read = read_us
        self._restart = restart

    def hold(self, ms: float, cancel: threading.Event) -> None:
        """Returns once the guest clock has advanced by ms since the call (or on cancel).
        Waits in wall time for what is left, then reads the clock again: a guest that
        runs slower than the host (not scheduled) is waited for. A jump of the clock
        between two readings counts only up to the cap: QEMU advances an idle guest's
        clock by the wall time it was not scheduled before the guest runs again, so a
        level timed by the jump alone could end before the guest ever saw it."""
        cap_us = max(_JUMP_MS, ms / 4) * 1000
        held_us = 0.0
        last = self._read()
        moved_at = time.monotonic()
        while True:
            left_ms = ms - held_us / 1000
            if left_ms <= 0 or cancel.wait(min(left_ms, cap_us / 2000) / 1000):
                return
            now = self._read()
            if now != last:
                held_us += min((now - last) % (1 << 32), cap_us)
                moved_at, last = time.monotonic(), now
            elif time.monotonic() - moved_at > _STALL_S:
                self._restart()
                last = self._read()
                moved_at = time.monotonic()


class PulseTrain:
    """count pulses on a pin in a background thread. `sent` counts completed pulses.
    guest: time the widths in guest time (None: host wall-clock time)."""

    def __init__(
        self,
        set_pin: Callable[[str, int], None],
        pin: str,
        count: int,
        high_ms: float,
        low_ms: float,
        guest: GuestTime | None = None,
    ) -> None:
        if count < 0 or high_ms <= 0 or low_ms <= 0:
            raise ValueError("count must be >= 0 and pulse widths > 0 ms")
        self.pin = pin
        self.count = count
        self.sent = 0
        self.error: BaseException | None = None
        self._set_pin = set_pin
        self._high_ms = high_ms
        self._low_ms = low_ms
        self._guest = guest
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pulses-{pin}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for _ in range(self.count):
                if self._cancel.is_set():
                    break
                self._set_pin(self.pin, 1)
                self._hold(self._high_ms)
                self._set_pin(self.pin, 0)
                self.sent += 1
                self._hold(self._low_ms)
        except BaseException as exc:  # reported by wait()
            self.error = exc

    def _hold(self, ms: float) -> None:
        if self._guest is None:
            self._cancel.wait(ms / 1000)
        else:
            self._guest.hold(ms, self._cancel)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> int:
        """Waits for the train to end; returns pulses sent; re-raises a failure."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"pulse train on {self.pin} still running after {timeout}s")
        if self.error is not None:
            raise self.error
        return self.sent

    def cancel(self) -> int:
        self._cancel.set()
        self._thread.join()
        return self.sent
