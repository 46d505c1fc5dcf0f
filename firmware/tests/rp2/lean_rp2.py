"""rp2's build under CPython: its three boot phases (tests/lean_phases.py) with the Pico's
glue (mp/lean/glue_rp2.py as `glue`) and the fake machine of this folder (GPIO, UART0,
ADC3, lightsleep), in both forms: "source" (the files as written: every feature on) and
"bundle" (bundle("rp2"): chunks loaded by its main.py's own ld(), its glue.py imported as
`glue`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import utime
from lean_phases import FORMS, LeanPhases

from meterlink.bundler import MP_DIR, bundle

HERE = Path(__file__).parent


def _module(name: str, path: Path) -> ModuleType:
    module = ModuleType(name)
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    return module


def fake_machine() -> ModuleType:
    spec = importlib.util.spec_from_file_location("machine", HERE / "machine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Rp2Lean(LeanPhases):
    """One emulated Pico. While it is in use, `machine` and `glue` in sys.modules are the
    rp2 ones (put back by close())."""

    def __init__(self, form: str) -> None:
        self.saved = {n: sys.modules.get(n) for n in ("machine", "glue")}
        self.ticks_ms = utime.ticks_ms
        self.machine = fake_machine()
        utime.ticks_ms = self.machine.ticked(utime.ticks_ms)  # interrupts run as time passes
        sys.modules["machine"] = self.machine
        self.machine.reset_all()
        self.files = bundle("rp2") if form == "bundle" else {}
        super().__init__(form, self.files or None)
        glue = Path("glue.py") if form == "bundle" else MP_DIR / "lean" / "glue_rp2.py"
        self.glue = sys.modules["glue"] = _module("glue", glue)

    def close(self) -> None:
        utime.ticks_ms = self.ticks_ms
        for name, module in self.saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module

    def run_until(self, t: int) -> None:
        """Main-loop passes as run() makes them (step, then the glue's idle) until the
        fake clock reaches t; the pin interrupts and timers run between them."""
        step, up, idle, v = self.ns["step"], self.ns["up"], self.ns["idle"], self.ns["V"]
        service = self.machine.service
        while utime.clock[0] < t:
            k = step()  # as run() does
            if k:
                up(k - 1)
            service()
            idle(v)
            service()


__all__ = ["FORMS", "Rp2Lean", "fake_machine"]
