"""Power cuts at random instants on the emulated nRF51 board, with pulses arriving all
the time. The board runs the firmware as shipped (bundle("nrf51")) through its three boot
phases (config.txt, the records and the counter reservation, the run phase's files), but
with a small main loop in place of run.py's: counting.py's poll() and, every 10 pulses, its
commit(), each reported on the UART, so that cuts fall in the middle of record writes
often.

After every cut the board boots from the flash image saved at the cut and reports the
state it loaded. Checked: the register never goes backwards and never exceeds the pulses
sent; nothing committed is lost and at most the pulses since the last commit are
(commits every 10 pulses); the store is never found corrupt; the frame counter range
reserved at each boot never overlaps an earlier one. (Host-timed pulses can be missed
when the emulator is starved of CPU, so losses are judged against the commits the board
reported, not against the pulses sent.)"""

from __future__ import annotations

import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from meterlink.bundler import FIELDS, NRF51_NAMES, bundle, chunked, render_config
from meterlink.hil import EmulatedBoard
from meterlink.protocol import Alarm, Frame, LinkDecoder, LinkFrame, Reading, decode_frame

COMMIT_EVERY = 10
FI = {name: int(value) for name, value in FIELDS.items()}
# run.py's run() in its place (main.py unchanged): the
# state boot.py loaded (V_ERR 4: the store was corrupt; the record sequence, 1 on the
# first boot; the register; the first counter of this boot's range), then the counting
# loop; named `phase`, as run.py names run(), the function main.py calls
RUN = ("def run():\n"
       f" print('boot',V[{FI['V_ERR']}],S[{FI['S_SEQ']}],S[{FI['S_REG']}],V[{FI['V_FC']}])\n"
       " while 1:\n"
       "  poll()\n"
       f"  if V[{FI['V_NPULSE']}]>={COMMIT_EVERY}:commit();print('c',S[{FI['S_REG']}])\n"
       "phase=run\n")


def counting_loop_firmware() -> dict[str, bytes]:
    config = render_config(id=7, key=bytes(range(16)), gen=1, register=0, interval=600,
                           pin_pulse="pin0")  # fmt: skip
    files = {**bundle("nrf51"), "config.txt": config.encode()}
    files[NRF51_NAMES["run"]] = chunked(RUN).encode()
    return files


BOOT = re.compile(rb"boot (\d) (\d+) (\d+) (\d+)\r?\n")
COMMITTED = re.compile(rb"c (\d+)\r?\n")


def wait_boot_line(board: EmulatedBoard, cycle: int
                   ) -> tuple[re.Match[bytes] | None, list[int]]:  # fmt: skip
    """The next boot line (None: the run phase did not load, main.py's error path), and
    the registers the board reported committed before it."""
    got = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got += board.read(4096, timeout=0.5)
        m = BOOT.search(got)
        if m:
            return m, [int(x) for x in COMMITTED.findall(got[: m.start()])]
        if b"MemoryError" in got and got.rstrip().endswith(b"bytes"):
            return None, [int(x) for x in COMMITTED.findall(got)]
    raise AssertionError(f"cycle {cycle}: no boot line in {got[-300:]!r}")


def campaign(board: EmulatedBoard, cuts: int, seed: int) -> list[tuple[int, int, int]]:
    """Runs `cuts` cut/boot cycles; returns (pulses sent so far, register, counter) per
    boot, and checks each boot against the one before. A boot whose run phase does not
    load (MemoryError in ld(): main.py would wait 60 s and reset; seen about once in 100
    boots of the shipped bundle too) is cut at once and not counted."""
    rnd = random.Random(seed)
    board.flash(counting_loop_firmware())
    board.reset()
    sent = 0
    seen: list[tuple[int, int, int]] = []
    unloaded = 0
    earlier: list[int] = []  # commits reported before a boot that did not load
    for i in range(2 * cuts + 2):
        m, committed = wait_boot_line(board, i)
        committed, earlier = earlier + committed, []
        if m is None:
            unloaded += 1
            earlier = committed
            board.power_cut()
            board.power_on()
            continue
        err, seq, reg, fc = int(m[1]), int(m[2]), int(m[3]), int(m[4])
        assert err == 0, f"cycle {i}: the store was found corrupt"
        assert (seq == 1) == (i == unloaded == 0), f"cycle {i}: record sequence {seq}"
        if seen:
            prev_sent, prev_reg, prev_fc = seen[-1]
            # this cycle started from prev_reg and saw sent - prev_sent pulses
            most = prev_reg + sent - prev_sent
            assert prev_reg <= reg <= most, (i, prev_reg, reg, most)
            # nothing committed is lost; at most the pulses since the last commit are
            last = max(committed, default=prev_reg)
            assert last <= reg <= last + COMMIT_EVERY, (i, committed, reg)
            assert fc >= prev_fc + 32, (i, prev_fc, fc)  # reservations never overlap
        seen.append((sent, reg, fc))
        if len(seen) > cuts:
            break
        train = board.pulse_in_background("pin0", 10_000, high_ms=40, low_ms=40)
        time.sleep(rnd.uniform(0.3, 1.5))  # cut at a random instant of the train
        sent += train.cancel()
        board.power_cut()
        board.power_on()
    if unloaded:
        print(f"\nboard {seed}: {unloaded} boots whose run phase did not load (MemoryError)")
    assert len(seen) > cuts, f"{unloaded} boots of {i + 1} did not load"
    return seen


def _run(boards: Any, n: int, cuts: int) -> list[list[tuple[int, int, int]]]:
    bs = boards(n)
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda ib: campaign(ib[1], cuts, ib[0]), enumerate(bs)))


@pytest.mark.xdist_group("cpu-heavy")  # see docs/hil.md, "Parallel runs"
@pytest.mark.hil
def test_50_power_cuts_lose_nothing_committed(boards: Any) -> None:
    results = _run(boards, 2, 25)
    assert sum(len(r) - 1 for r in results) >= 50
    for r in results:
        assert r[-1][1] > 0  # pulses were counted at all


@pytest.mark.xdist_group("cpu-heavy")  # see docs/hil.md, "Parallel runs"
@pytest.mark.hil
@pytest.mark.slow
def test_200_power_cuts(boards: Any) -> None:
    results = _run(boards, 2, 100)
    assert sum(len(r) - 1 for r in results) >= 200


# ----------------------------------------------------------------------------------------
# The firmware as shipped for the nRF51 (bundle("nrf51")), cut at random instants: in any
# of its three boot phases, while counting, committing, sealing or sending. Every frame
# with a register (readings, and the alarm frames each cut's unexpected reset raises)
# must show a committed one: in the order the frames were made, registers never go back.

LEAN_KEY = bytes(range(16))
LEAN_REGISTER = 1000


def lean_campaign(board: EmulatedBoard, cuts: int, seed: int) -> tuple[int, list[Frame]]:
    """`cuts` power cuts, each 0.3-5 s after power-on with pulses arriving throughout.
    Returns the pulses sent and every frame heard, in order."""
    rnd = random.Random(seed)
    device = 0x4C000000 + seed
    config = render_config(
        id=device, key=LEAN_KEY, gen=1, register=LEAN_REGISTER, interval=2,
        rx_window_ms=100, pin_pulse="pin0",
    )  # fmt: skip
    board.flash({**bundle("nrf51"), "config.txt": config.encode()})
    board.reset()
    decoder = LinkDecoder()
    frames: list[Frame] = []
    sent = 0

    def listen(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for link in decoder.feed(board.read(4096, timeout=0.1)):
                if isinstance(link, LinkFrame):
                    frames.append(decode_frame(link.payload, LEAN_KEY))

    for _ in range(cuts):
        train = board.pulse_in_background("pin0", 10_000, high_ms=40, low_ms=40)
        listen(rnd.uniform(0.3, 5.0))
        sent += train.cancel()
        board.power_cut()
        board.power_on()
        decoder = LinkDecoder()  # a frame cut in half is not joined to the next
    listen(8)  # no pulses: a reading or two from the last boot
    return sent, frames


def check_lean_campaign(sent: int, frames: list[Frame]) -> None:
    by_counter: dict[int, Frame] = {}
    for f in frames:
        # a counter is used once: the same counter twice is the same frame resent
        assert by_counter.setdefault(f.counter, f).payload == f.payload, f.counter
    last = LEAN_REGISTER
    kinds = set()
    for counter in sorted(by_counter):  # the order the frames were made in
        body = by_counter[counter].body
        if isinstance(body, Reading | Alarm):
            # every frame's register was committed: never backwards (readings and the
            # alarm frames after each cut's unexpected reset alike), never more than the
            # pulses sent, so nothing committed was lost to any cut
            assert last <= body.register <= LEAN_REGISTER + sent, (counter, last, body)
            last = body.register
            kinds.add(type(body))
    assert last > LEAN_REGISTER  # pulses were counted at all
    assert kinds == {Reading, Alarm}, kinds  # both kinds were checked


def _run_lean(boards: Any, n: int, cuts: int) -> None:
    bs = boards(n)
    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(lambda ib: lean_campaign(ib[1], cuts, ib[0]), enumerate(bs)))
    for sent, frames in results:
        check_lean_campaign(sent, frames)
        # the run phase was reached, at least after the last cut (under load most cuts
        # fall in the boot phases)
        assert sum(isinstance(f.body, Reading) for f in frames) >= 2


@pytest.mark.xdist_group("cpu-heavy")  # see docs/hil.md, "Parallel runs"
@pytest.mark.hil
def test_50_power_cuts_of_the_shipped_nrf51_firmware(boards: Any) -> None:
    _run_lean(boards, 2, 25)


@pytest.mark.xdist_group("cpu-heavy")  # see docs/hil.md, "Parallel runs"
@pytest.mark.hil
@pytest.mark.slow
def test_200_power_cuts_of_the_shipped_nrf51_firmware(boards: Any) -> None:
    _run_lean(boards, 2, 100)


def boots_until_sending(board: EmulatedBoard, boots: int, seed: int) -> list[int]:
    """Power-cycles the shipped bundle `boots` times, pulses arriving throughout, each
    boot cut once the run phase has sent two frames (or 12 s passed); returns the boots
    whose run phase did not load (main.py's error path printed a MemoryError) or sent
    nothing."""
    rnd = random.Random(seed)
    config = render_config(id=0x4C000100 + seed, key=LEAN_KEY, gen=1, register=LEAN_REGISTER,
                           interval=2, rx_window_ms=100, pin_pulse="pin0")  # fmt: skip
    board.flash({**bundle("nrf51"), "config.txt": config.encode()})
    board.reset()
    failed = []
    for i in range(boots):
        train = board.pulse_in_background("pin0", 10_000, high_ms=40, low_ms=40)
        decoder, got, frames = LinkDecoder(), b"", 0
        end = time.monotonic() + 12
        while time.monotonic() < end and frames < 2 and b"MemoryError" not in got:
            data = board.read(4096, timeout=0.2)
            got = (got + data)[-4096:]
            frames += sum(isinstance(x, LinkFrame) for x in decoder.feed(data))
        time.sleep(rnd.uniform(0.0, 1.0))  # cut at a random instant of the run phase
        train.cancel()
        if frames < 2:
            failed.append(i)
        board.power_cut()
        board.power_on()
    return failed


@pytest.mark.xdist_group("cpu-heavy")  # see docs/hil.md, "Parallel runs"
@pytest.mark.hil
@pytest.mark.slow
def test_the_shipped_run_phase_loads_at_every_boot(boards: Any) -> None:
    """The nRF51 run phase's loading margin is a few dozen bytes (docs/firmware.md, "The
    nRF51: features and heap"): a boot that does not load it waits 60 s and resets,
    counting nothing. 2 x 100 boots of the shipped bundle must all send."""
    bs = boards(2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        failed = list(pool.map(lambda ib: boots_until_sending(ib[1], 100, ib[0]),
                               enumerate(bs)))  # fmt: skip
    assert failed == [[], []], f"boots whose run phase did not load or send: {failed}"
