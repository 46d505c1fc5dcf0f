"""Pulse trains and a guest that does not run: the host stops QEMU's CPU (as a loaded host
that does not schedule its vCPU thread does) while a train is on. Timed on the host, the
pulses made while the guest is stopped are lost; timed in guest time (a guest-paced
board), every one is counted (docs/hil.md, "How pulses are timed")."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from meterlink.hil import EmulatedBoard
from meterlink.hil.board_scripts import PULSE_COUNTER
from meterlink.hil.pulses import GuestTime

pytestmark = pytest.mark.hil

PULSES, HIGH_MS, LOW_MS = 20, 20, 20
FREEZES, FREEZE_S, GAP_S = 3, 0.15, 0.1  # each freeze is longer than 3 whole pulses


def counted_with_freezes(board: EmulatedBoard) -> tuple[int, float]:
    """(pulses the board counted, train wall seconds) for a train during which the CPU
    is stopped FREEZES times for FREEZE_S."""
    board.flash({"main.py": PULSE_COUNTER})
    board.reset()
    board.read_until(b"ready", timeout=20)
    t0 = time.monotonic()
    train = board.pulse_in_background("pin0", PULSES, HIGH_MS, LOW_MS)

    def freeze() -> None:
        for _ in range(FREEZES):
            time.sleep(GAP_S)
            with board.frozen():
                time.sleep(FREEZE_S)

    freezer = threading.Thread(target=freeze)
    freezer.start()
    sent = train.wait(60)
    wall = time.monotonic() - t0
    freezer.join()
    assert sent == PULSES
    out = b""
    while chunk := board.read(4096, timeout=0.5):
        out += chunk
    counts = [int(n) for n in re.findall(rb"count (\d+)", out)]
    return (counts[-1] if counts else 0), wall


def test_host_timed_pulses_are_lost_while_the_guest_is_stopped(tmp_path: Path) -> None:
    with EmulatedBoard(tmp_path) as board:
        counted, wall = counted_with_freezes(board)
    print(f"\nhost-timed: {counted} of {PULSES} counted, train {wall:.2f} s")
    # each freeze hides at least two whole pulses (both edges while the guest is stopped)
    assert counted <= PULSES - 2 * FREEZES


def test_guest_timed_pulses_are_all_counted_while_the_guest_is_stopped(tmp_path: Path) -> None:
    with EmulatedBoard(tmp_path, guest_paced=True) as board:
        counted, wall = counted_with_freezes(board)
    print(f"\nguest-paced: {counted} of {PULSES} counted, train {wall:.2f} s")
    assert counted == PULSES
    # the guest did not run for the freezes: the train waited for it
    assert wall >= PULSES * (HIGH_MS + LOW_MS) / 1000 + 0.5 * FREEZES * FREEZE_S


def test_a_reset_during_a_guest_timed_train_does_not_hang_it(tmp_path: Path) -> None:
    """A reset stops TIMER2, the guest clock the train holds levels by: the train finds
    it stopped, starts it again and goes on."""
    with EmulatedBoard(tmp_path, guest_paced=True) as board:
        train = board.pulse_in_background("pin0", 5, 20, 20)
        time.sleep(0.05)
        board.reset(wait_for_repl=True)
        assert train.wait(30) == 5
        assert board.exec("print(1+1)").strip() == "2"


def test_a_jump_of_the_guest_clock_does_not_end_a_level_the_guest_has_not_run_through() -> None:
    """An idle guest's clock can jump by the wall time QEMU was not scheduled, before the
    guest runs again (the guest-paced flake: 19 of 20 counted in a full run). A 20 ms
    level whose first reading after it was set shows a 30 ms jump is held on until the
    clock has moved on by at least the width less one capped jump (5 ms)."""
    readings = iter([0, 30_000] + [30_000 + 500 * i for i in range(1, 1000)])
    seen: list[int] = []

    def read_us() -> int:
        seen.append(next(readings))
        return seen[-1]

    GuestTime(read_us, restart=lambda: None).hold(20, threading.Event())
    after_jump_us = seen[-1] - 30_000
    assert 15_000 <= after_jump_us <= 16_000
