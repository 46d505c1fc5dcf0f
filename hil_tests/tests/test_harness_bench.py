"""Figures of the harness: boot to REPL, exec round trip, flash throughput, icount shifts.
Run with `pytest -s -m bench hil_tests/tests/test_harness_bench.py`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from meterlink.hil import EmulatedBoard

pytestmark = [pytest.mark.hil, pytest.mark.bench]


def test_bench_boot_exec_flash(tmp_path: Path) -> None:
    boots = []
    for i in range(3):
        with EmulatedBoard(tmp_path / f"b{i}", name=f"b{i}") as b:
            assert b.boot_seconds is not None
            boots.append(b.boot_seconds)
    with EmulatedBoard(tmp_path / "f", name="f") as b:
        t0 = time.perf_counter()
        for _ in range(10):
            assert b.exec("print(1)").strip() == "1"
        exec_s = (time.perf_counter() - t0) / 10
        data = bytes(range(256)) * 16  # 4 KiB of every byte value (the worst to quote)
        text = b"# firmware source\n" * 228  # 4 KiB of plain text
        rates = {}
        for label, blob in (("binary", data), ("text", text)):
            t0 = time.perf_counter()
            b.flash({"x.bin": blob})
            rates[label] = len(blob) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        assert b.read_file("x.bin") == text
        read_rate = len(text) / (time.perf_counter() - t0)
    print(f"\nboot to REPL: {min(boots):.3f}-{max(boots):.3f} s;"
          f" exec round trip {exec_s * 1000:.0f} ms")  # fmt: skip
    print(f"flash incl. verify: binary {rates['binary']:.0f} B/s, text {rates['text']:.0f} B/s;"
          f" read_file {read_rate:.0f} B/s")  # fmt: skip


@pytest.mark.parametrize("shift", [0, 4, 6, 8, 10])
def test_bench_icount_shift(tmp_path: Path, shift: int) -> None:
    """Guest time per instruction is 2^shift ns; the REPL must stay usable."""
    with EmulatedBoard(tmp_path, deterministic=True, icount_shift=shift, seed=1) as b:
        t0 = time.perf_counter()
        out = b.exec(
            "import utime\nt = utime.ticks_ms()\nfor i in range(2000):\n    pass\n"
            "print(utime.ticks_diff(utime.ticks_ms(), t))\nt = utime.ticks_ms()\n"
            "utime.sleep_ms(1000)\nprint(utime.ticks_diff(utime.ticks_ms(), t))"
        )
        wall = time.perf_counter() - t0
        loop_ms, sleep_ms = (int(x) for x in out.split())
    print(f"\nshift {shift}: boot {b.boot_seconds:.2f} s, 2000-iteration loop {loop_ms} ms guest,"
          f" sleep_ms(1000) measured {sleep_ms} ms, exec {wall:.2f} s wall")  # fmt: skip
