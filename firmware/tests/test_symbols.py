"""The nRF51 bundle's symbol map: a traceback from the bundled files (chunks compiled one
at a time, statements joined, locals renamed, short file names) translated back to the
source file, line and names. The tracebacks are real: CPython runs the bundled chunks
with main.py's own loader, as the board does."""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from meterlink.bundler import (
    MP_DIR,
    NRF51_BOOT,
    NRF51_NAMES,
    bundle,
    nrf51_loader,
    symbol_map,
)
from meterlink.bundler.symbols import translate


def source_line(path: str, line: int) -> str:
    return (MP_DIR / path).read_text().splitlines()[line - 1]


def boot_phase_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Boot phase 2's files loaded into one namespace by main.py's ld(), in CPython."""
    files = bundle("nrf51")
    for role in NRF51_BOOT:
        (tmp_path / NRF51_NAMES[role]).write_bytes(files[NRF51_NAMES[role]])
    monkeypatch.chdir(tmp_path)
    microbit = type(sys)("microbit")  # boot.py imports it: the maintenance input is low
    microbit.pin8 = type("Pin", (), {"read_digital": staticmethod(lambda: 0)})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "microbit", microbit)
    names: dict[str, object] = {}
    exec(nrf51_loader(), names)
    for role in NRF51_BOOT:
        exec(f"ld({NRF51_NAMES[role]!r})", names)
    return names


def test_a_traceback_from_a_later_chunk_names_the_source_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = boot_phase_namespace(tmp_path, monkeypatch)  # and no file 'cf'
    with pytest.raises(OSError) as info:
        names["boot"]()  # type: ignore[operator]
    text = "".join(traceback.format_exception(info.value))
    assert 'File "<string>"' in text and "in boot" in text  # what the board would print
    out = translate(text, symbol_map("nrf51"))
    frame = next(ln for ln in out.splitlines() if "in boot" in ln)
    assert frame.strip().startswith('File "lean/boot.py", line ')
    line = int(frame.split("line ")[1].split(" ")[0].rstrip(","))
    assert "f = open('cf', 'rb')" in source_line("lean/boot.py", line), out
    # boot() is several chunks into the file: the chunk offset was applied
    smap = symbol_map("nrf51")["files"][NRF51_NAMES["boot"]]
    assert smap["functions"]["boot"]["minified_line"] > smap["chunks"][1]
    # a function folded onto one line on the board: the source lines it may be
    with pytest.raises(AttributeError) as info:
        names["keys"](None, bytes(16))  # type: ignore[operator]
    out = translate("".join(traceback.format_exception(info.value)), symbol_map("nrf51"))
    frame = next(ln for ln in out.splitlines() if "in keys" in ln)
    first, last = (int(x) for x in frame.split("source lines ")[1].split(",")[0].split("-"))
    body = "\n".join(source_line("lean/boot.py", n) for n in range(first, last + 1))
    assert "def keys(f, r):" in body and "f.write(ks(e))" in body, frame


def test_a_traceback_in_the_first_function_and_an_imported_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = boot_phase_namespace(tmp_path, monkeypatch)
    with pytest.raises(TypeError) as info:
        names["crc"](None, 1)  # type: ignore[operator]
    out = translate("".join(traceback.format_exception(info.value)), symbol_map("nrf51"))
    frame = next(ln for ln in out.splitlines() if "in crc" in ln)
    line = int(frame.split("line ")[1].split(" ")[0].rstrip(","))
    assert 'File "lean/crc.py"' in frame and "c ^= b[i] << 8" in source_line("lean/crc.py", line)
    # an imported file (config.py) keeps its on-board name in the traceback
    config = NRF51_NAMES["config"]
    text = f'Traceback (most recent call last):\n  File "{config}", line 3, in read\n'
    out = translate(text, symbol_map("nrf51"))
    assert 'File "lean/config.py", line ' in out and "in read" in out


def test_local_names_and_file_names_in_a_report_are_put_back() -> None:
    smap = symbol_map("nrf51")
    close = smap["files"][NRF51_NAMES["loop"]]["functions"]["close"]
    short = next(k for k, v in close["locals"].items() if v == "iv")
    text = (
        "Traceback (most recent call last):\n"
        '  File "<string>", line 3, in close\n'
        f"NameError: local variable '{short}' referenced before assignment\n"
    )
    out = translate(text, smap)
    assert "'iv'" in out and 'File "lean/loop.py"' in out
    heap = f"after {NRF51_NAMES['state']}: 6416 free\n"  # a heap report naming a file
    assert translate(heap, smap) == f"after {NRF51_NAMES['state']} (lean/state.py): 6416 free\n"
    assert translate("nothing to map\n", smap) == "nothing to map\n"


def test_the_map_is_written_by_the_command_line() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "meterlink.bundler.symbols", "map", "nrf51"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    data = json.loads(r.stdout)
    assert data["firmware_version"] == 259 and data["fields"]["V_ACT"] == 10
    assert {f["source"] for f in data["files"].values()} >= {"lean/state.py", "lean/main.py"}
    bad = subprocess.run(
        [sys.executable, "-m", "meterlink.bundler.symbols", "map", "esp32"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "nrf51, rp2" in bad.stderr
