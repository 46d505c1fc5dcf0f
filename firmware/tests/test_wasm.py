"""The checks of lean_checks.py and the protocol vectors of lean_vectors.py on the one
on-board source (mp/lean/) under current MicroPython (the official WebAssembly port,
1.27, in Node): CPython-only code in the firmware fails here."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import lean_checks
import pytest
from conftest import HERE, MP, VECTORS
from test_lean import gateway_downlink

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


def test_runner_fails_when_the_script_raises(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import fields\nassert fields.FW_VERSION == 0, 'wrong'\n")
    r = run(bad, MP)
    assert r.returncode == 1 and "wrong" in r.stderr


def downlinks(folder: Path) -> None:
    """downlinks.json for wasm_lean.py: every downlink lean_checks sends
    (lean_checks.DOWNLINKS), made by the gateway's encoder (test_lean.gateway_downlink)."""
    made = [[t, c, b.hex(), k.hex(), gateway_downlink(t, c, b, k).hex()]
            for t, c, b, k in lean_checks.DOWNLINKS]  # fmt: skip
    (folder / "downlinks.json").write_text(json.dumps(made))


def test_nrf51_build_sources_pass_on_micropython_1_27(tmp_path: Path) -> None:
    """lean_checks.py and the protocol vectors (lean_vectors.py) on the sources of
    mp/lean/ (the code every board's bundle is made from), with the fake micro:bit and
    clock of tests/nrf51."""
    shutil.copy(VECTORS, tmp_path / "v2.json")
    downlinks(tmp_path)
    r = run(HERE / "wasm_lean.py", MP, MP / "lean", HERE, HERE / "nrf51", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "version=(1, 27" in r.stdout
    checks = len([n for n in vars(lean_checks) if n.startswith("check_")])
    assert "FAIL" not in r.stdout and f"lean checks: {checks} failed: 0" in r.stdout
    cases = 137 if (MP / "lean" / "downlink.py").exists() else 28
    assert f"lean vectors: ({cases}, 42)" in r.stdout
