"""The basic board: boot, REPL, files (write, verify, rewrite, read), pins."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meterlink.boardlink import files as board_files
from meterlink.hil import BoardError, EmulatedBoard
from meterlink.hil.board_scripts import PULSE_COUNTER

pytestmark = pytest.mark.hil


def test_exec_returns_output_and_raises_with_the_board_traceback(board: EmulatedBoard) -> None:
    assert board.exec("print(6 * 7)").strip() == "42"
    with pytest.raises(BoardError, match="ZeroDivisionError"):
        board.exec("x = 1\nprint(x / 0)")
    assert board.exec("print(x)").strip() == "1"  # globals survive between exec calls
    assert 5000 < board.mem_free() < 16384


def test_flash_then_read_back_every_byte_value(board: EmulatedBoard) -> None:
    data = bytes(range(256)) * 6 + b"\xc0\xdb'\"\\\n\r"
    seen: list[tuple[str, int, int]] = []
    board.flash({"blob.bin": data, "t.py": b"X = 5\n"}, progress=lambda *a: seen.append(a))
    assert board.list_files() == {"blob.bin": len(data), "t.py": 6}
    assert board.read_file("blob.bin") == data
    # each file's completion is reported; a file whose verification failed on a loaded
    # host is written again (FLASH_TRIES), so its report may come after the other one's
    assert {("blob.bin", len(data), len(data)), ("t.py", 6, 6)} <= set(seen)
    assert ("blob.bin", len(data), len(data)) in seen
    assert board.exec("import t\nprint(t.X)").strip() == "5"
    board.remove_file("t.py")
    assert "t.py" not in board.list_files()
    with pytest.raises(BoardError, match="no such file"):
        board.read_file("t.py")


def test_verify_reports_a_file_altered_behind_the_harness_and_flash_rewrites_it(
    board: EmulatedBoard,
) -> None:
    data = b"register=1234\n" * 20
    board.flash({"cfg.txt": data})
    assert board.verify({"cfg.txt": data})["cfg.txt"].ok
    # alter one byte on the board, behind the harness' back
    board.exec(
        "f = open('cfg.txt')\ns = f.read()\nf.close()\n"
        "f = open('cfg.txt', 'w')\nf.write(s[:5] + 'X' + s[6:])\nf.close()"
    )
    check = board.verify({"cfg.txt": data})["cfg.txt"]
    assert not check.ok
    assert check.size == len(data)
    assert "content differs" in check.describe()
    board.flash({"cfg.txt": data})
    assert board.verify({"cfg.txt": data})["cfg.txt"].ok


def test_flash_rewrites_a_file_damaged_during_transfer(board: EmulatedBoard) -> None:
    """Bytes that reach the file but were not sent (as a noisy line would add) are found
    by the verification and the file is written again."""
    data = bytes(range(200))
    writes: list[int] = []
    with board.repl() as transport:

        def damage_first_write(name: str, done: int, total: int) -> None:
            if done == total:
                writes.append(done)
                if len(writes) == 1:  # file still open on the board: add stray bytes
                    board_files.run(transport, "w(b'noise')")

        board_files.flash_files(transport, {"d.bin": data}, progress=damage_first_write)
        assert board_files.check_file(transport, "d.bin", data).ok
    assert len(writes) == 2


def test_flash_gives_up_with_a_clear_error_when_the_file_keeps_differing(
    board: EmulatedBoard,
) -> None:
    with board.repl() as transport:

        def always_damage(name: str, done: int, total: int) -> None:
            if done == total:
                board_files.run(transport, "w(b'!')")

        with pytest.raises(BoardError, match=r"still differ after 3 writes: d.bin: 11 bytes"):
            board_files.flash_files(transport, {"d.bin": b"0123456789"}, progress=always_damage)


def test_bad_file_names_are_refused_before_anything_is_sent(board: EmulatedBoard) -> None:
    with pytest.raises(ValueError, match="flat name"):
        board.flash({"lib/x.py": b""})


def test_pulses_on_pin0_are_counted_by_a_polling_script(board: EmulatedBoard) -> None:
    board.flash({"main.py": PULSE_COUNTER})
    board.reset()
    board.read_until(b"ready", timeout=20)
    board.pulse("pin0", 20)
    out = board.read_until(b"count 20\r\n", timeout=10)
    counts = [int(n) for n in re.findall(rb"count (\d+)", out)]
    assert counts == list(range(1, 21))
    assert board.read(timeout=0.3).count(b"count") == 0  # no pulse counted twice
    # Ctrl-C (the harness sends it with the maintenance input) stops this plain script;
    # its globals are left at the REPL
    assert board.exec("print(n)").strip() == "20"


def test_pin_levels_are_seen_by_the_firmware(board: EmulatedBoard) -> None:
    read = "from microbit import pin1\npin1.set_pull(pin1.NO_PULL)\nprint(pin1.read_digital())"
    board.set_pin("pin1", 1)
    assert board.exec(read).strip() == "1"
    board.set_pin("pin1", 0)
    assert board.exec(read).strip() == "0"


def test_unknown_pin_name_is_a_value_error(tmp_path: Path) -> None:
    b = EmulatedBoard(tmp_path)  # never started: the name is checked first
    with pytest.raises(ValueError, match="pin0"):
        b.set_pin("P0.03", 1)
    with pytest.raises(ValueError):
        b.pulse_in_background("pin9", 3)


def test_a_board_that_is_off_says_so(tmp_path: Path) -> None:
    b = EmulatedBoard(tmp_path)
    with pytest.raises(BoardError, match="not running"):
        b.read(timeout=0.1)


def test_guest_clock_follows_the_guest_and_counts_its_instructions(tmp_path: Path) -> None:
    """TIMER2 (guest time) and QEMU's icount (instructions) agree with the firmware's own
    ticks: a busy loop runs at 64 ns per instruction (icount shift 6), a sleep costs time
    but few instructions. The energy benchmark's nRF51 figures rest on this."""
    with EmulatedBoard(tmp_path, deterministic=True) as b:
        b.start_guest_clock()
        b.exec("from utime import sleep_ms, ticks_us")
        a = b.guest_clock()
        busy_us = int(b.exec("u=ticks_us()\nfor i in range(20000): pass\nprint(ticks_us()-u)"))
        c = b.guest_clock()
        # the exec's own overhead (the raw REPL) comes on top of the loop
        assert busy_us <= (c[1] - a[1]) * 0.064 <= busy_us * 1.3 + 100_000
        assert busy_us <= c[0] - a[0]
        a = b.guest_clock()
        b.exec("sleep_ms(1000)")
        c = b.guest_clock()
        assert c[0] - a[0] >= 1_000_000
        assert (c[1] - a[1]) * 0.064 < 0.3 * (c[0] - a[0])  # asleep most of that second
    with EmulatedBoard(tmp_path / "rt") as b, pytest.raises(BoardError, match="deterministic"):
        b.guest_clock()
