"""Puts the firmware sources, the fake boards (tests/fake: board.py for the full profile;
tests/nrf51: microbit, utime, machine for the nRF51 build) and the check scripts on
sys.path for the firmware's CPython tests (the on-board module names are top-level names).
The modules the bundler makes from mp/lean/ for the rp2 build (SHARED_MODULES: ml_record,
ml_cipher) are written to a temporary folder, SHARED, as bundle("rp2") has them."""

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

from meterlink.firmware import SHARED_MODULES, shared_source

HERE = Path(__file__).parent
MP = HERE.parent / "meterlink" / "firmware" / "mp"
VECTORS = HERE.parents[1] / "protocol" / "vectors" / "v2.json"
SHARED = Path(tempfile.mkdtemp(prefix="ml_shared_"))
atexit.register(shutil.rmtree, SHARED, True)
for name in SHARED_MODULES:
    (SHARED / name).write_text(shared_source(name))
for p in (MP, SHARED, HERE / "fake", HERE / "cpython", HERE / "nrf51", HERE):
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
