"""Puts the firmware sources, the fakes of tests/nrf51 (microbit, utime, machine) and
tests/cpython (micropython) and the check scripts on sys.path for the firmware's CPython
tests (the on-board module names are top-level names), and mp/lean/glue_nrf51.py as
`glue`: the one on-board source (mp/lean/) runs here as it is written."""

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).parent
MP = HERE.parent / "meterlink" / "firmware" / "mp"
VECTORS = HERE.parents[1] / "protocol" / "vectors" / "v2.json"
for p in (MP, HERE / "cpython", HERE / "nrf51", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


def glue_module(board: str) -> ModuleType:
    """mp/lean/glue_<board>.py as a module: what the plain lean sources import as `glue`
    (the bundler inlines it for the nRF51)."""
    spec = importlib.util.spec_from_file_location("glue", MP / "lean" / f"glue_{board}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sys.modules["glue"] = glue_module("nrf51")  # the plain sources run on the fake micro:bit


@pytest.fixture(autouse=True)
def _back_to_the_folder_before() -> object:
    """The fake board works in its file system's folder (board.reset_all goes there): each
    test ends in the folder it started in."""
    cwd = os.getcwd()
    yield
    os.chdir(cwd)
