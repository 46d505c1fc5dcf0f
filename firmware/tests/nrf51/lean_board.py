"""The nRF51 build under CPython: its three boot phases run in a directory (the board's
filesystem) with the fake micro:bit, utime and machine of this folder. `form` is
"source" (the files of mp/lean/ as written, `from fields import *` and all) or "bundle"
(the on-board files bundle("nrf51") makes from them, loaded by main.py's own ld(), chunk
by chunk): the same checks run on both, so the code the bundle is made from and what the
bundle holds are both tested."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import machine
import microbit

from meterlink.firmware import (
    MP_DIR,
    NRF51_BOOT,
    NRF51_CONFIG,
    NRF51_NAMES,
    NRF51_RUN,
    bundle,
    nrf51_loader,
)

FORMS = ("source", "bundle")


class LeanBoard:
    def __init__(self, form: str, features: frozenset[str] | None = None) -> None:
        """`features`: the bundle's (None: the nRF51's own list); the sources as written
        have every feature on."""
        assert form in FORMS, form
        self.form = form
        self.ns: dict[str, Any] = {}
        self.roles = (*NRF51_BOOT, *NRF51_RUN, NRF51_CONFIG)
        if form == "bundle":
            files = bundle("nrf51", features=features)
            self.roles = tuple(r for r in self.roles if NRF51_NAMES[r] in files)
            for role in self.roles:
                Path(NRF51_NAMES[role]).write_bytes(files[NRF51_NAMES[role]])

    def _namespace(self, roles: tuple[str, ...]) -> dict[str, Any]:
        ns: dict[str, Any] = {"__name__": "__main__"}
        if self.form == "bundle":
            exec(nrf51_loader(), ns)
            for role in roles:
                if role in self.roles:  # the files of the features it has
                    ns["ld"](NRF51_NAMES[role])
        else:
            for role in roles:
                path = MP_DIR / "lean" / f"{role}.py"
                exec(compile(path.read_text(), str(path), "exec"), ns)
        return ns

    def phase1(self) -> Any:
        """config.txt to 'cf' (config.py's read(), imported on the board)."""
        if self.form == "bundle":
            path = Path(NRF51_NAMES[NRF51_CONFIG])
        else:
            path = MP_DIR / "lean" / f"{NRF51_CONFIG}.py"
        ns: dict[str, Any] = {"__name__": "config"}
        exec(compile(path.read_text(), str(path), "exec"), ns)
        return ns["read"]()

    def phase2(self) -> Any:
        """'cf' to the records and 'rt' (boot.py's boot())."""
        return self._namespace(NRF51_BOOT)["boot"]()

    def phase3(self) -> dict[str, Any]:
        """'rt' read, every run-phase file loaded: the namespace run() runs in."""
        self.ns = self._namespace(NRF51_RUN)
        return self.ns

    def boot(self) -> dict[str, Any]:
        """The three phases, as main.py runs them after resets."""
        assert not self.phase1()
        assert not self.phase2()
        return self.phase3()

    def run_until(self, t: int) -> None:
        """main loop passes (run.py's loop body) until the fake clock reaches t."""
        import utime

        step = self.ns["step"]
        while utime.clock[0] < t:
            step()
            utime.sleep_ms(1)


def reset_all() -> None:
    microbit.reset_all()


__all__ = ["FORMS", "LeanBoard", "machine", "reset_all"]
