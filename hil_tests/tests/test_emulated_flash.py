"""The emulated micro:bit's flash starts as a programmed chip's does (erased, 0xFF, where
the firmware hex writes nothing), so MicroPython's own filesystem keeps every file when
it reclaims space by a *sweep* (moving every page one page along).

QEMU's `microbit` machine starts its flash at 0x00 instead. MicroPython then cannot mark
its spare page (a flash write only clears bits: 0x00 AND 0xFD is 0x00), and its first
sweep moves the pages without the mark that tells the next boot so: the files in one
page vanish and files longer than a chunk link into other files' chunks (the boot-window
power-cut sweep's SyntaxError in main.py's loader). The second test reproduces that
state, at the REPL, with no meterlink code and no power cut."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterlink.hil import EmulatedBoard
from meterlink.hil.microbit_fs import read_fs
from meterlink.hil.qemu import FLASH_SIZE, hex_records, programmed_flash

pytestmark = pytest.mark.hil

# 1-chunk files until the filesystem is full, every other one removed: no unused chunk
# and no wholly freed page, so the next write sweeps
FILL = """import os
n = 0
try:
    while n < 200:
        f = open('f%03d' % n, 'w')
        f.write(('%03d' % n) * 38)
        f.close()
        n += 1
except OSError:
    pass
for i in range(0, n, 2):
    os.remove('f%03d' % i)
print(n)
"""
# and, first, one file of three chunks
LONG = "f = open('long', 'w')\nf.write(''.join('%03d,' % i for i in range(80)))\nf.close()\n"
WRITE = "f = open('g', 'w')\nf.write('x' * 100)\nf.close()\nprint('written')"
CHECK = """import os
names = sorted(x for x in os.listdir() if x[0] == 'f')
bad = [x for x in names if open(x).read() != x[1:] * 38]
print(len(names), len(bad), open('long').read() == ''.join('%03d,' % i for i in range(80)))
"""


def _fill_and_sweep(board: EmulatedBoard) -> tuple[int, str, str]:
    board.exec(LONG)
    n = int(board.exec(FILL, timeout=60).strip())
    before = board.exec(CHECK, timeout=60).strip()
    assert board.exec(WRITE, timeout=60).strip() == "written"
    return n, before, board.exec(CHECK, timeout=60).strip()


def test_a_new_board_has_erased_flash_and_a_filesystem_sweep_keeps_every_file(
    tmp_path: Path,
) -> None:
    with EmulatedBoard(tmp_path, name="fs") as board:
        flash = board.save_flash_image(tmp_path / "new.bin").read_bytes()
        fs = read_fs(flash)
        area = flash[fs.first_page : fs.last_page]
        assert area == b"\xff" * len(area), "the filesystem's pages are not erased"
        assert fs.spare == "last"  # MicroPython marked its spare page at boot
        assert flash[fs.last_page + 1 : fs.last_page + 1024] == b"\xff" * 1023
        n, before, after = _fill_and_sweep(board)
        swept = read_fs(board.power_cut().read_bytes())
    half = n // 2
    assert before == f"{half} 0 True"
    assert after == before, f"after the sweep (files, wrong, long intact): {after}"
    assert swept.spare == "first" and not swept.broken_links  # the sweep ran, and moved it


def test_qemus_unerased_flash_loses_files_in_a_sweep(tmp_path: Path) -> None:
    """The reproduction of QEMU's own start state (kept to show why the harness erases
    the flash first; if this starts to fail, QEMU no longer needs it)."""
    qemu_start = bytearray(FLASH_SIZE)  # 0x00, then the hex, as QEMU's loader leaves it
    for addr, data in hex_records(EmulatedBoard(tmp_path).options.firmware_hex):
        if addr + len(data) <= FLASH_SIZE:
            qemu_start[addr : addr + len(data)] = data
    image = tmp_path / "qemu-start.bin"
    image.write_bytes(bytes(qemu_start))
    assert bytes(qemu_start) != programmed_flash(EmulatedBoard(tmp_path).options.firmware_hex)
    board = EmulatedBoard(tmp_path, name="raw", flash_image=image)
    try:
        board.start(wait_for_repl=True)  # no main.py: the REPL
        n, before, after = _fill_and_sweep(board)
    finally:
        board.close()
    assert before == f"{n // 2} 0 True"
    print(f"\nQEMU's start state, {n // 2} files and one of 3 chunks, after one sweep "
          f"(files, wrong, long one intact): {after}")
    assert after != before, f"QEMU's start state kept every file: {after}"

