"""Puts the firmware sources, the fake boards (tests/fake: board.py for the full profile;
tests/nrf51: microbit, utime, machine for the nRF51 build) and the check scripts on
sys.path for the firmware's CPython tests (the on-board module names are top-level names)."""

import sys
from pathlib import Path

HERE = Path(__file__).parent
MP = HERE.parent / "meterlink" / "firmware" / "mp"
VECTORS = HERE.parents[1] / "protocol" / "vectors" / "v2.json"
for p in (MP, HERE / "fake", HERE / "cpython", HERE / "nrf51", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
