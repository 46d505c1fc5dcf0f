"""The nRF51 build under CPython: its three boot phases (tests/lean_phases.py) with the
fake micro:bit, utime and machine of this folder, in both forms: "source" (the files of
mp/lean/ as written) and "bundle" (the on-board files bundle("nrf51") makes from them)."""

from __future__ import annotations

import machine
import microbit
import utime
from lean_phases import FORMS, LeanPhases

from meterlink.bundler import NRF51_NAMES, bundle


class LeanBoard(LeanPhases):
    def __init__(self, form: str, features: frozenset[str] | set[str] | None = None) -> None:
        """`features`: the bundle's (None: the nRF51's own list); the sources as written
        have every feature on."""
        files = None
        if form == "bundle":  # the loaded files and main.py, as the board holds them
            made = bundle("nrf51", features=features)
            loaded = set(NRF51_NAMES.values()) | {"main.py"}
            files = {name: data for name, data in made.items() if name in loaded}
        super().__init__(form, files)

    def run_until(self, t: int) -> None:
        """main loop passes (run.py's loop body) until the fake clock reaches t."""
        step, up = self.ns["step"], self.ns["up"]
        while utime.clock[0] < t:
            k = step()  # as run() does
            if k:
                up(k - 1)
            utime.sleep_ms(1)


def reset_all() -> None:
    microbit.reset_all()


__all__ = ["FORMS", "LeanBoard", "machine", "reset_all"]
