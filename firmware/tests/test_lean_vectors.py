"""The protocol vectors (lean_vectors.py) against the lean sources under CPython: the
files of mp/lean/ as written (every feature on), and the chunks of bundle("rp2")
loaded by its main.py's ld() with the Pico's glue. The same script runs under
MicroPython 1.27 (test_wasm.py) and on the emulated RP2040 (HIL)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import lean_vectors
import pytest
from conftest import VECTORS

from meterlink.bundler import MP_DIR, NRF51_NAMES

sys.path.insert(0, str(Path(__file__).parent / "rp2"))
from lean_rp2 import Rp2Lean

DOC = json.loads(VECTORS.read_text())
# every case of the protocol vectors, as the protocol tests count them; without downlink.py
# (the config and time downlinks, branch fw-downlink) the uplink side only
CASES = 137 if (MP_DIR / "lean" / "downlink.py").exists() else 28
AIRTIMES = 42  # 7 frame sizes x SF 7..12


def from_sources(ns: dict[str, Any], roles: tuple[str, ...]) -> None:
    for role in roles:
        path = MP_DIR / "lean" / f"{role}.py"
        if path.exists():
            exec(compile(path.read_text(), str(path), "exec"), ns)


def test_vectors_on_the_lean_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # commit() writes the records here
    ns = lean_vectors.space(from_sources)
    assert lean_vectors.run_all(DOC, ns) == (CASES, AIRTIMES)


def test_vectors_on_the_lean_rp2_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pico = Rp2Lean("bundle")
    try:
        main = Path("main.py").read_text()
        loader = "import gc\n" + main[main.index("def ld(") : main.index("\ntry:")] + "\n"

        def from_chunks(ns: dict[str, Any], roles: tuple[str, ...]) -> None:
            exec(loader, ns)
            for role in roles:
                if role in NRF51_NAMES and Path(NRF51_NAMES[role]).exists():
                    ns["ld"](NRF51_NAMES[role])

        ns = lean_vectors.space(from_chunks)
        assert lean_vectors.run_all(DOC, ns) == (CASES, AIRTIMES)
    finally:
        pico.close()
