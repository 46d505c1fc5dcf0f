"""rp2's lean form under CPython: the shared sources of mp/lean/ with the Pico's glue
(mp/lean/glue_rp2.py as `glue`) and the fake machine of this folder (GPIO, UART0, ADC3,
lightsleep), in two forms as tests/nrf51/lean_board.py does for the nRF51: "source"
(the files as written: every feature on, as rp2 ships) and "bundle" (bundle("rp2"),
chunks loaded by its main.py's own ld(), its glue.py imported as `glue`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import utime

from meterlink.firmware import MP_DIR, NRF51_BOOT, NRF51_CONFIG, NRF51_NAMES, NRF51_RUN, bundle

HERE = Path(__file__).parent
FORMS = ("source", "bundle")


def _module(name: str, path: Path | None = None, text: str | None = None) -> ModuleType:
    module = ModuleType(name)
    module.__file__ = str(path or name)
    code = text if text is not None else (path.read_text() if path else "")
    exec(compile(code, str(path or name), "exec"), module.__dict__)
    return module


def fake_machine() -> ModuleType:
    spec = importlib.util.spec_from_file_location("machine", HERE / "machine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Rp2Lean:
    """One emulated Pico's filesystem (the current folder) and namespaces. While it is
    in use, `machine` and `glue` in sys.modules are the rp2 ones (put back by close())."""

    def __init__(self, form: str) -> None:
        assert form in FORMS, form
        self.form = form
        self.saved = {n: sys.modules.get(n) for n in ("machine", "glue")}
        self.ticks_ms = utime.ticks_ms
        self.machine = fake_machine()
        utime.ticks_ms = self.machine.ticked(utime.ticks_ms)  # interrupts run as time passes
        sys.modules["machine"] = self.machine
        self.machine.reset_all()
        self.ns: dict[str, Any] = {}
        if form == "bundle":
            self.files = bundle("rp2")
            for name, data in self.files.items():
                Path(name).write_bytes(data)
            glue = _module("glue", Path("glue.py"))
        else:
            glue = _module("glue", MP_DIR / "lean" / "glue_rp2.py")
        sys.modules["glue"] = glue
        self.glue = glue

    def close(self) -> None:
        utime.ticks_ms = self.ticks_ms
        for name, module in self.saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module

    def _namespace(self, roles: tuple[str, ...]) -> dict[str, Any]:
        ns: dict[str, Any] = {"__name__": "__main__"}
        if self.form == "bundle":
            main = Path("main.py").read_text()
            start = main.index("def ld(")
            end = main.index("\ntry:")
            exec("import gc\n" + main[start:end] + "\n", ns)
            for role in roles:
                ns["ld"](NRF51_NAMES[role])
        else:
            for role in roles:
                path = MP_DIR / "lean" / f"{role}.py"
                exec(compile(path.read_text(), str(path), "exec"), ns)
        return ns

    def phase1(self) -> Any:
        if self.form == "bundle":
            path = Path(NRF51_NAMES[NRF51_CONFIG])
        else:
            path = MP_DIR / "lean" / f"{NRF51_CONFIG}.py"
        ns: dict[str, Any] = {"__name__": "config"}
        exec(compile(path.read_text(), str(path), "exec"), ns)
        return ns["read"]()

    def phase2(self) -> Any:
        return self._namespace(NRF51_BOOT)["boot"]()

    def phase3(self) -> dict[str, Any]:
        self.ns = self._namespace(NRF51_RUN)
        return self.ns

    def boot(self) -> dict[str, Any]:
        assert not self.phase1()
        assert not self.phase2()
        return self.phase3()

    def run_until(self, t: int) -> None:
        """Main-loop passes as run() makes them (step, then the glue's idle) until the
        fake clock reaches t; the pin interrupts and timers run between them."""
        step, idle, v = self.ns["step"], self.ns["idle"], self.ns["V"]
        service = self.machine.service
        while utime.clock[0] < t:
            step()
            service()
            idle(v)
            service()


__all__ = ["FORMS", "Rp2Lean", "fake_machine"]
