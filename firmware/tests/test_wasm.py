"""The core checks and the protocol vectors under current MicroPython (the official
WebAssembly port, 1.27, in Node): CPython-only code in the firmware fails here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import HERE, MP, SHARED, VECTORS

WASM = HERE.parent / "wasm"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None or not (WASM / "node_modules").is_dir(),
    reason="needs node and `make setup` (npm install in firmware/wasm)",
)


def run(script: Path, *dirs: Path) -> subprocess.CompletedProcess[str]:
    args = [str(NODE), str(WASM / "run.mjs")]
    for d in dirs:
        args += ["--dir", str(d)]
    return subprocess.run(
        [*args, str(script)], capture_output=True, text=True, timeout=300, check=False
    )


def test_core_checks_pass_on_micropython_1_27() -> None:
    r = run(HERE / "wasm_main.py", MP, SHARED, HERE / "fake", HERE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "version=(1, 27" in r.stdout
    assert "FAIL" not in r.stdout and "failed: 0" in r.stdout


def test_vectors_pass_on_micropython_1_27(tmp_path: Path) -> None:
    shutil.copy(VECTORS, tmp_path / "v2.json")
    r = run(HERE / "wasm_vectors.py", MP, SHARED, HERE / "fake", HERE, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vectors passed: 137" in r.stdout


def test_runner_fails_when_the_script_raises(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import ml_core\nassert ml_core.crc16(b'123456789', 9) == 0, 'wrong'\n")
    r = run(bad, MP, SHARED, HERE / "fake")
    assert r.returncode == 1 and "wrong" in r.stderr


def test_nrf51_build_sources_pass_on_micropython_1_27(tmp_path: Path) -> None:
    """lean_checks.py and the protocol vectors (lean_vectors.py) on the sources of
    mp/lean/ (the code every board's bundle is made from), with the fake micro:bit and
    clock of tests/nrf51."""
    shutil.copy(VECTORS, tmp_path / "v2.json")
    r = run(HERE / "wasm_lean.py", MP, MP / "lean", SHARED, HERE / "fake", HERE, HERE / "nrf51",
            tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "version=(1, 27" in r.stdout
    assert "FAIL" not in r.stdout and "lean checks: 5 failed: 0" in r.stdout
    cases = 137 if (MP / "lean" / "downlink.py").exists() else 28
    assert f"lean vectors: ({cases}, 42)" in r.stdout
