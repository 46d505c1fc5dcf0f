"""GPIO inputs of the emulated micro:bit and pulse trains driven through qtest.

The pins are levels set from outside (qtest set_irq_in on the nRF51's GPIO inputs);
firmware sees them by polling: QEMU's nRF51 has no GPIOTE/PPI and this MicroPython has
no pin interrupts. Pulse widths are host wall-clock times.
"""

from __future__ import annotations

import threading
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


class PulseTrain:
    """count pulses on a pin in a background thread. `sent` counts completed pulses."""

    def __init__(
        self,
        set_pin: Callable[[str, int], None],
        pin: str,
        count: int,
        high_ms: float,
        low_ms: float,
    ) -> None:
        if count < 0 or high_ms <= 0 or low_ms <= 0:
            raise ValueError("count must be >= 0 and pulse widths > 0 ms")
        self.pin = pin
        self.count = count
        self.sent = 0
        self.error: BaseException | None = None
        self._set_pin = set_pin
        self._high = high_ms / 1000
        self._low = low_ms / 1000
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pulses-{pin}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for _ in range(self.count):
                if self._cancel.is_set():
                    break
                self._set_pin(self.pin, 1)
                self._cancel.wait(self._high)
                self._set_pin(self.pin, 0)
                self.sent += 1
                self._cancel.wait(self._low)
        except BaseException as exc:  # reported by wait()
            self.error = exc

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
