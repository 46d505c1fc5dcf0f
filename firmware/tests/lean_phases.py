"""The three boot phases of a lean bundle under CPython, as main.py runs them after
resets, in a directory (the board's filesystem): the one runner both boards' CPython
runners (tests/nrf51/lean_board.py, tests/rp2/lean_rp2.py) are made from. `form` is
"source" (the files of mp/lean/ as written, `from fields import *` and all) or "bundle"
(the on-board files, loaded by the bundle's own main.py's ld(), chunk by chunk): the same
checks run on both, so the code a bundle is made from and what it holds are both
tested."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meterlink.bundler import MP_DIR, NRF51_BOOT, NRF51_CONFIG, NRF51_NAMES, NRF51_RUN

FORMS = ("source", "bundle")


def loader_of(main: str) -> str:
    """The loader ld() of a bundle's main.py, as source to run (with its `import gc`)."""
    lines = main.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("def ld("))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
    return "import gc\n" + "".join(lines[start:end])


class LeanPhases:
    """One board's filesystem (the current folder) and the namespaces its phases run in.
    `files`: the bundle (with form "bundle"), each file written to the folder."""

    def __init__(self, form: str, files: dict[str, bytes] | None = None) -> None:
        assert form in FORMS, form
        self.form = form
        self.ns: dict[str, Any] = {}
        self.roles = (*NRF51_BOOT, *NRF51_RUN, NRF51_CONFIG)
        self.loader = ""
        if form == "bundle":
            assert files is not None, "the bundle form needs the bundle's files"
            self.roles = tuple(r for r in self.roles if NRF51_NAMES[r] in files)
            self.loader = loader_of(files["main.py"].decode())
            for name, data in files.items():
                Path(name).write_bytes(data)

    def _namespace(self, roles: tuple[str, ...]) -> dict[str, Any]:
        ns: dict[str, Any] = {"__name__": "__main__"}
        if self.form == "bundle":
            exec(self.loader, ns)
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


__all__ = ["FORMS", "LeanPhases", "loader_of"]
