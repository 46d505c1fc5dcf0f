"""A fake micro:bit module for running the nRF51 build's sources (mp/lean/) under
CPython: the pins the board has (pin0..pin16, pin19, pin20), each read from a level or a
function of the fake clock (utime.py here), and a UART made of two byte buffers.
Only what the firmware uses: read_digital, set_pull/NO_PULL, uart.read/write/any."""

from __future__ import annotations

from collections.abc import Callable

import utime

levels: dict[str, int | Callable[[int], int]] = {}
tx: list[bytes] = []  # what the firmware wrote on the UART
rx: list[bytes] = []  # chunks waiting to be read
on_write: list[Callable[[bytes], None] | None] = [None]


class Pin:
    NO_PULL = 0
    PULL_DOWN = 1
    PULL_UP = 2

    def __init__(self, name: str) -> None:
        self.name = name
        self.pull = self.PULL_DOWN

    def set_pull(self, pull: int) -> None:
        self.pull = pull

    def read_digital(self) -> int:
        v = levels.get(self.name, 0)
        return int(v(utime.clock[0]) if callable(v) else v)


class _Uart:
    def read(self, n: int | None = None) -> bytes | None:
        return rx.pop(0) if rx else None

    def any(self) -> int:
        return len(rx[0]) if rx else 0

    def write(self, b: bytes) -> int:
        b = bytes(b)
        tx.append(b)
        if on_write[0] is not None:
            on_write[0](b)
        return len(b)


uart = _Uart()
PINS = (*range(17), 19, 20)
for _n in PINS:
    globals()[f"pin{_n}"] = Pin(f"pin{_n}")


def reset_all() -> None:
    levels.clear()
    del tx[:]
    del rx[:]
    on_write[0] = None
    utime.clock[0] = 1000
