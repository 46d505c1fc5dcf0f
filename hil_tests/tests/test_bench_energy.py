"""Energy budget of the production build on the emulated RP2040: guest time awake,
measured from the emulator's guest clock (instructions executed, time in WFI with and
without SLEEPDEEP), for each part of a household's day, turned into average current and
battery life with cited currents; and of the nRF51 build on the emulated micro:bit,
from guest instructions (QEMU icount) over guest time (TIMER2). Prints a per-board table
(docs/firmware.md, "Energy").

    .venv/bin/python -m pytest -s -m bench hil_tests/tests/test_bench_energy.py
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from meterlink.bundler import NRF51_NAMES, bundle, render_config
from meterlink.hil import EmulatedBoard
from meterlink.hil.pico import EmulatedPico, GuestTime
from meterlink.protocol import LinkDecoder

pytestmark = [pytest.mark.bench, pytest.mark.hil, pytest.mark.xdist_group("cpu-heavy")]

KEY = bytes(range(16))
PULSE = 16
N_PULSES = 40  # nRF51 pulses, 50 ms high and 50 ms low in guest time
N_INTERVALS = 8  # nRF51 reading intervals sampled

# A household's day (docs/firmware.md, "Energy"): 300 L at 1 L a pulse, 96 readings, the
# daily status frame, one confirmed alarm acked at its first send.
DAY_S = 86400
PULSES_PER_DAY = 300
READINGS_PER_DAY = 96
UPLINKS_PER_DAY = READINGS_PER_DAY + 1 + 1
RX_WINDOW_S = 2.0  # config default rx_window_ms: the modem listens after each uplink
UPLINK_PAYLOAD = 44  # bytes: a household reading frame (protocol: at most 51)

# Currents (mA). RP2040: a Pico running MicroPython at 125 MHz draws about 20 mA busy
# (an estimate, not a datasheet figure; the RP2040 datasheet, section 5.4, tabulates only
# its demos); machine.lightsleep(n): 1.5 mA and dormant (lightsleep() without a period):
# 0.9 mA, measured on a Pico board by MicroPython (commit b004e7e "rp2/modmachine:
# Implement lightsleep()"). nRF51822 (Product Specification v3.x): 4.4 mA running from
# flash at 16 MHz, 2.6 uA System ON idle with RTC. LoRa modem SX1276 (datasheet, IDDT):
# 29 mA TX at +13/14 dBm on RFO, 10.8 mA RX (band 1, LnaBoost off), 0.2 uA sleep.
RP2040_RUN_MA = 20.0
RP2040_LIGHTSLEEP_MA = 1.5
RP2040_DORMANT_MA = 0.9
NRF51_RUN_MA = 4.4
NRF51_IDLE_MA = 0.0026
LORA_TX_MA = 29.0
LORA_RX_MA = 10.8
LORA_SLEEP_MA = 0.0002
NRF51_HZ = 16e6
# Cycles per instruction: QEMU with -icount shift=6 gives every instruction 64 ns, i.e.
# 1.024 cycles at 16 MHz, and the firmware's own timing (1 ms sleeps between passes) runs
# on that time base, so the figures are for CPI 1.024. A Cortex-M0 takes 1 cycle for ALU
# operations, 2 for loads and stores, 3 for taken branches (Cortex-M0 TRM, table 3-1); an
# interpreter may average about 1.5, which the benchmark prints as a sensitivity.
NRF51_CPI = 1.024
NRF51_CPI_HIGH = 1.5
CELLS_MAH = {"ER14505 (2.7 Ah)": 2700, "ER34615 (19 Ah)": 19000}


def lora_airtime_s(payload: int, sf: int = 12, bw: float = 125e3, cr: int = 1) -> float:
    """Time on air of one LoRa packet (Semtech AN1200.13): explicit header, CRC on, 8
    preamble symbols, low-data-rate optimisation at SF11/12."""
    t_sym = (2**sf) / bw
    de = 1 if sf >= 11 else 0
    n = 8 + max(math.ceil((8 * payload - 4 * sf + 28 + 16) / (4 * (sf - 2 * de))) * (cr + 4), 0)
    return (8 + 4.25) * t_sym + n * t_sym


@dataclass
class Nrf51Span:
    guest_s: float
    instructions: int

    @property
    def awake_s(self) -> float:
        return self.instructions * NRF51_CPI / NRF51_HZ


class Nrf51Clock:
    """Guest time and instructions of an emulated micro:bit (TIMER2 and QEMU's icount)."""

    def __init__(self, board: EmulatedBoard) -> None:
        self.board = board
        self.wrap = 2**32

    def now(self) -> tuple[int, int]:
        return self.board.guest_clock()

    def between(self, a: tuple[int, int], b: tuple[int, int]) -> Nrf51Span:
        return Nrf51Span(((b[0] - a[0]) % self.wrap) / 1e6, b[1] - a[1])

    def since(self, start: tuple[int, int]) -> Nrf51Span:
        return self.between(start, self.now())

    def wait(self, seconds: float, timeout: float = 60) -> None:
        """Waits `seconds` of guest time (a poll every 2 ms: guest time runs fast)."""
        start = self.now()
        deadline = time.monotonic() + timeout
        while self.since(start).guest_s < seconds:
            assert time.monotonic() < deadline, "guest time did not advance"
            time.sleep(0.002)


def board_frames(board: EmulatedBoard, decoder: LinkDecoder, n: int, timeout: float) -> int:
    got = 0
    deadline = time.monotonic() + timeout
    while got < n:
        assert time.monotonic() < deadline, "the firmware did not send"
        got += len(decoder.feed(board.read(4096, timeout=0.05)))
    return got


@dataclass
class Nrf51Day:
    idle_ips: float  # instructions per guest second, idle main loop (a pass, sleep_ms(1))
    per_pulse: float  # on top of the idle loop: below this measurement's noise
    per_uplink: float

    @property
    def share(self) -> float:
        """Fraction of guest time spent executing instructions, idle main loop."""
        return self.idle_ips * NRF51_CPI / NRF51_HZ

    def awake_s(self, *, polling: bool = True, per_pass: float = 0.0) -> float:
        if polling:
            n = self.idle_ips * DAY_S + PULSES_PER_DAY * max(0.0, self.per_pulse)
        else:  # woken by each edge: a pass, and a pass for the debounce check 5 ms later
            n = PULSES_PER_DAY * 4 * per_pass
        n += UPLINKS_PER_DAY * self.per_uplink
        return n * NRF51_CPI / NRF51_HZ


def main_loop_pass(sleep1: Nrf51Day, sleep5: Nrf51Day) -> tuple[float, float]:
    """(instructions per pass, ms a sleep_ms(n) lasts beyond n) from the idle shares with
    sleep_ms(1) and sleep_ms(5): share = x / (x + n + d), x the pass's time in ms."""
    r1, r5 = (1 - sleep1.share) / sleep1.share, (1 - sleep5.share) / sleep5.share
    x_ms = 4 / (r5 - r1)
    return x_ms * 1e-3 * NRF51_HZ / NRF51_CPI, r1 * x_ms - 1


@pytest.fixture(scope="module")
def nrf51_days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Nrf51Day, Nrf51Day]:
    """The nRF51 build as it is (sleep_ms(1) between passes), and a variant of its main
    loop made here (sleep_ms(5)) that checks the per-pass model's prediction."""
    workdir = tmp_path_factory.mktemp("nrf51-energy")
    return measure_nrf51(workdir / "now", 1, N_INTERVALS), measure_nrf51(workdir / "v5", 5, 4)


def measure_nrf51(workdir: Path, loop_sleep_ms: int, intervals: int) -> Nrf51Day:
    """The nRF51 build (bundle("nrf51")) on a deterministic micro:bit: guest instructions
    per idle second, per pulse and per uplink (with its receive window)."""
    interval = 20
    text = render_config(
        id=0x0E0E0E0F, key=KEY, gen=1, interval=interval, pin_pulse="pin0", pin_dir="pin1"
    )
    files = {**bundle("nrf51"), "config.txt": text.encode()}
    if loop_sleep_ms != 1:  # the same length: the file's chunk lengths stay right
        run = NRF51_NAMES["run"]  # the main loop, lean/run.py
        assert files[run].count(b"step();sleep_ms(1)") == 1
        patched = f"step();sleep_ms({loop_sleep_ms})".encode()
        assert len(patched) == len(b"step();sleep_ms(1)")
        files[run] = files[run].replace(b"step();sleep_ms(1)", patched)
    # flashed in real time (raw-REPL writes under -icount with sleep=off lose bytes), then
    # powered on from that flash image with guest time following the instruction count
    with EmulatedBoard(workdir, name="flashing") as board:
        board.flash(files)
        image = board.power_cut()
    with EmulatedBoard(workdir, deterministic=True, flash_image=image) as board:
        decoder = LinkDecoder()
        board_frames(board, decoder, 2, 300)  # the boot status frame, then a reading
        board.start_guest_clock()  # after the reset (it stops TIMER2), not before
        clock = Nrf51Clock(board)
        # the idle rate wanders (5.7 to 9.3 M instructions per guest second over a few
        # seconds), so it is averaged over whole intervals sampled about every guest
        # second; the windows around each reading frame (the seal and send before it,
        # the receive window after it) carry the uplink's work on top of that rate
        samples: list[tuple[Nrf51Span, int]] = []
        a = start = clock.now()
        deadline = time.monotonic() + 120
        while sum(n for _, n in samples) < intervals:
            assert time.monotonic() < deadline, "the firmware did not send"
            time.sleep(0.03)
            b = clock.now()
            samples.append((clock.between(a, b), len(decoder.feed(board.read(4096, 0.01)))))
            a = b
        whole = clock.between(start, a)
        # pulses, after the last reading's receive window, paced in guest time (the guest
        # runs many times faster than the wall clock); a reading on the way is subtracted
        clock.wait(4)
        a = clock.now()
        for _ in range(N_PULSES):
            board.set_pin("pin0", 1)
            clock.wait(0.05)
            board.set_pin("pin0", 0)
            clock.wait(0.05)
        pulses = clock.since(a)
        sent = len(decoder.feed(board.read(4096, timeout=0.05)))
    marked = set()
    for j, (_, n) in enumerate(samples):
        if n:
            marked.update(range(j - 2, j + 4))  # before the frame, and its 2 s window
    quiet = [span for j, (span, _) in enumerate(samples) if j not in marked]
    idle_ips = sum(q.instructions for q in quiet) / sum(q.guest_s for q in quiet)
    busy = [samples[j][0] for j in marked if 0 <= j < len(samples)]
    extra = sum(q.instructions - idle_ips * q.guest_s for q in busy)
    per_uplink = extra / intervals
    per_pulse = (pulses.instructions - idle_ips * pulses.guest_s - sent * per_uplink) / N_PULSES
    print(f"\nnrf51 sleep_ms({loop_sleep_ms}): {whole} over {intervals} intervals in "
          f"{len(samples)} samples; "
          f"pulses {pulses} ({sent} uplinks on the way)")  # fmt: skip
    # the guest clock agrees with the firmware's own: N intervals of `interval` seconds
    # (the first sample starts just after a reading, the last ends just after one)
    assert abs(whole.guest_s - intervals * interval) <= interval * 0.5, whole
    assert 0 < idle_ips < 16e6 / NRF51_CPI and per_uplink > 0
    return Nrf51Day(idle_ips, per_pulse, per_uplink)


@dataclass
class Segment:
    guest_s: float
    active_s: float
    deep_s: float
    wakeups: int


def between(a: GuestTime, b: GuestTime) -> Segment:
    return Segment(
        (b.guest_ns - a.guest_ns) / 1e9,
        (b.active_ns - a.active_ns) / 1e9,
        (b.deep_sleep_ns - a.deep_sleep_ns) / 1e9,
        b.wakeups - a.wakeups,
    )


def wait_frames(pico: EmulatedPico, decoder: LinkDecoder, n: int, timeout: float) -> None:
    got = 0
    deadline = time.monotonic() + timeout
    while got < n:
        assert time.monotonic() < deadline, "the firmware did not send"
        got += len(decoder.feed(pico.take_modem_bytes()))
        time.sleep(0.05)


def rp2_segments(pico: EmulatedPico, files: dict[str, bytes], interval: int
                 ) -> tuple[GuestTime, GuestTime, GuestTime]:  # fmt: skip
    """The rp2 build `files` on the emulated Pico, guest time uncapped: 30 s idle after a
    reading's receive window, one whole interval with its uplink, 60 pulses at 2 Hz."""
    text = render_config(id=0x0E0E0E0E, key=KEY, gen=1, interval=interval, pin_pulse=str(PULSE))
    pico.flash({**files, "config.txt": text.encode()})
    pico.set_speed(0)  # guest time as fast as the host runs it: sleeps cost no wall time
    pico.take_modem_bytes()
    pico.reset()
    decoder = LinkDecoder()
    wait_frames(pico, decoder, 2, 300)  # the boot status frame, then the first reading

    def guest_wait(seconds: float) -> None:
        start = pico.guest_time().guest_ns
        while pico.guest_time().guest_ns - start < seconds * 1e9:
            time.sleep(0.05)

    # idle: from 5 s after a reading (its receive window is over) for 30 s
    guest_wait(5)
    a = pico.guest_time()
    guest_wait(30)
    idle = between(a, pico.guest_time())
    # one whole interval, from one reading frame to the next: idle plus one uplink
    wait_frames(pico, decoder, 1, 300)
    a = pico.guest_time()
    wait_frames(pico, decoder, 1, 300)
    whole = between(a, pico.guest_time())
    # pulses at 2 Hz, once the receive window after that reading is over
    guest_wait(5)
    a = pico.guest_time()
    pico.pulses(PULSE, 60, 20, 480)
    pulses = between(a, pico.guest_time())
    pico.set_speed(1)
    return idle, whole, pulses


def rp2_day(idle: GuestTime, whole: GuestTime, pulses: GuestTime
            ) -> tuple[float, float, float, float, float]:  # fmt: skip
    """(awake s/day, average mA, idle share awake, s awake per pulse, s per uplink) of the
    household's day built from rp2_segments()."""
    idle_rate = idle.active_s / idle.guest_s
    per_pulse = max(0.0, (pulses.active_s - idle_rate * pulses.guest_s) / 60)
    per_uplink = max(0.0, whole.active_s - idle_rate * whole.guest_s)
    awake = idle_rate * DAY_S + PULSES_PER_DAY * per_pulse + UPLINKS_PER_DAY * per_uplink
    mcu_mas = awake * RP2040_RUN_MA + (DAY_S - awake) * RP2040_LIGHTSLEEP_MA
    return awake, (mcu_mas + radio_day_mas()) / DAY_S, idle_rate, per_pulse, per_uplink


def radio_day_mas() -> float:
    air = lora_airtime_s(UPLINK_PAYLOAD)
    tx_s, rx_s = UPLINKS_PER_DAY * air, UPLINKS_PER_DAY * RX_WINDOW_S
    return tx_s * LORA_TX_MA + rx_s * LORA_RX_MA + (DAY_S - tx_s - rx_s) * LORA_SLEEP_MA


def test_rp2_energy(pico: EmulatedPico) -> None:
    """The household's day of rp2's build alone (bundle("rp2"), made from the lean
    sources: the one debouncer run by pin interrupts and a 6 ms timer, lightsleep(100)
    between events), without the nRF51 runs of test_energy_budget_per_board. (Measured
    against the full profile it replaced, when rp2 still shipped that: docs/firmware.md,
    "Energy".)"""
    segments = rp2_segments(pico, bundle("rp2"), 60)
    print(f"\nrp2 segments: {segments}")
    awake, ma, idle_rate, per_pulse, per_uplink = rp2_day(*segments)
    print(f"rp2 awake {awake:7.0f} s/day, {ma:.3f} mA; idle {idle_rate * 100:.2f} % awake, "
          f"{per_pulse * 1e3:.2f} ms per pulse, {per_uplink * 1e3:.0f} ms per uplink")
    assert 0 < idle_rate < 1 and per_uplink > 0


def test_energy_budget_per_board(nrf51_days: tuple[Nrf51Day, Nrf51Day], pico: EmulatedPico) -> None:
    interval = 60
    idle, whole, pulses = rp2_segments(pico, bundle("rp2"), interval)
    print(f"\nsegments: idle {idle}, interval {whole}, pulses {pulses}")
    awake, rp2_ma, idle_rate, per_pulse, per_uplink = rp2_day(idle, whole, pulses)
    asleep = DAY_S - awake
    air = lora_airtime_s(UPLINK_PAYLOAD)
    radio_mas = radio_day_mas()
    # the same day if the MCU were dormant between events (wake on the pulse edge)
    dormant_ma = (awake * RP2040_RUN_MA + asleep * RP2040_DORMANT_MA + radio_mas) / DAY_S
    # nRF51: awake at its run current, asleep in System ON idle; the same radio day
    nrf, nrf5 = nrf51_days
    per_pass, sleep_extra_ms = main_loop_pass(nrf, nrf5)
    nrf_rows = []
    for name, day, polling in (("nrf51 (micro:bit, sleep_ms(1) polling)", nrf, True),
                               ("nrf51, sleep_ms(5) polling (variant)", nrf5, True),
                               ("nrf51, wake on pulse edge (design)", nrf, False)):  # fmt: skip
        nrf_awake = day.awake_s(polling=polling, per_pass=per_pass)
        nrf_ma = nrf_awake * NRF51_RUN_MA + (DAY_S - nrf_awake) * NRF51_IDLE_MA + radio_mas
        nrf_rows.append((name, nrf_awake, nrf_ma / DAY_S))
    rows = [
        ("rp2 (RP2040, lightsleep(100))", awake, rp2_ma),
        ("rp2, dormant between events (design)", awake, dormant_ma),
        *nrf_rows,
    ]
    print()
    print(f"rp2 measured: idle {idle_rate * 100:.2f} % awake ({idle.wakeups / idle.guest_s:.0f} "
          f"wake-ups/s), {per_pulse * 1e3:.2f} ms awake per pulse, {per_uplink * 1e3:.0f} ms "
          f"awake per uplink (seal, send, {RX_WINDOW_S:.0f} s receive window)")  # fmt: skip
    radio_ua = radio_mas / DAY_S * 1e3
    print(f"radio: {air * 1e3:.0f} ms on air per {UPLINK_PAYLOAD}-byte uplink (SF12/125 kHz), "
          f"{UPLINKS_PER_DAY} uplinks/day, radio {radio_ua:.1f} uA average")  # fmt: skip
    head = f"{'board':40} {'awake s/day':>12} {'avg mA':>8}"
    print(head + "".join(f" {name + ' years':>24}" for name in CELLS_MAH))
    for name, awake_s, ma in rows:
        years = [cap / ma / 24 / 365 for cap in CELLS_MAH.values()]
        print(f"{name:40} {awake_s:12.0f} {ma:8.3f}" + "".join(f" {y:24.2f}" for y in years))
    print(f"nrf51 measured: idle {nrf.idle_ips / 1e3:.0f} k instructions per guest second "
          f"({nrf.idle_ips * NRF51_CPI / NRF51_HZ * 100:.1f} % awake at CPI {NRF51_CPI}, "
          f"{NRF51_HZ / 1e6:.0f} MHz), {nrf.per_pulse / 1e3:.1f} k per pulse (within the noise), "
          f"{per_pass / 1e3:.1f} k per main-loop pass, "
          f"{nrf.per_uplink / 1e3:.0f} k per uplink (seal, send, receive window)")  # fmt: skip
    share = nrf.share
    r = NRF51_CPI_HIGH / NRF51_CPI  # each pass's work takes r times longer, the 1 ms sleep not
    t = NRF51_CPI / NRF51_HZ
    print(f"nrf51 sleep_ms(5) variant: idle {nrf5.share * 100:.1f} % awake; sleep_ms(1) "
          f"{nrf.share * 100:.1f} %: a pass is {per_pass / 1e3:.1f} k instructions "
          f"({per_pass * t * 1e3:.2f} ms), sleep_ms(n) takes n + {sleep_extra_ms:.1f}")  # fmt: skip
    print(f"nrf51 at CPI {NRF51_CPI_HIGH}: idle {r * share / (r * share + 1 - share) * 100:.0f} "
          "% awake (sensitivity, not emulated)")  # fmt: skip
    assert idle.guest_s > 0 and 0 < idle_rate < 1 and whole.guest_s >= interval * 0.9
