"""Energy budget of the production build on the emulated RP2040: guest time awake,
measured from the emulator's guest clock (instructions executed, time in WFI with and
without SLEEPDEEP), for each part of a household's day, turned into average current and
battery life with cited currents. Prints a per-board table (docs/firmware.md, "Energy").

    .venv/bin/python -m pytest -s -m bench hil_tests/tests/test_bench_energy.py
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import pytest

from meterlink.firmware import bundle, render_config
from meterlink.hil.pico import EmulatedPico, GuestTime
from meterlink.protocol import LinkDecoder

pytestmark = [pytest.mark.bench, pytest.mark.hil, pytest.mark.xdist_group("cpu-heavy")]

KEY = bytes(range(16))
PULSE = 16

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
CELLS_MAH = {"ER14505 (2.7 Ah)": 2700, "ER34615 (19 Ah)": 19000}


def lora_airtime_s(payload: int, sf: int = 12, bw: float = 125e3, cr: int = 1) -> float:
    """Time on air of one LoRa packet (Semtech AN1200.13): explicit header, CRC on, 8
    preamble symbols, low-data-rate optimisation at SF11/12."""
    t_sym = (2**sf) / bw
    de = 1 if sf >= 11 else 0
    n = 8 + max(math.ceil((8 * payload - 4 * sf + 28 + 16) / (4 * (sf - 2 * de))) * (cr + 4), 0)
    return (8 + 4.25) * t_sym + n * t_sym


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


def test_energy_budget_per_board(pico: EmulatedPico) -> None:
    interval = 60
    text = render_config(id=0x0E0E0E0E, key=KEY, gen=1, interval=interval, pin_pulse=str(PULSE))
    pico.flash({**bundle("rp2"), "config.txt": text.encode()})
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
    print(f"\nsegments: idle {idle}, interval {whole}, pulses {pulses}")
    idle_rate = idle.active_s / idle.guest_s
    per_pulse = max(0.0, (pulses.active_s - idle_rate * pulses.guest_s) / 60)
    per_uplink = max(0.0, whole.active_s - idle_rate * whole.guest_s)
    awake = idle_rate * DAY_S + PULSES_PER_DAY * per_pulse + UPLINKS_PER_DAY * per_uplink
    asleep = DAY_S - awake
    mcu_mas = awake * RP2040_RUN_MA + asleep * RP2040_LIGHTSLEEP_MA
    air = lora_airtime_s(UPLINK_PAYLOAD)
    tx_s, rx_s = UPLINKS_PER_DAY * air, UPLINKS_PER_DAY * RX_WINDOW_S
    radio_mas = tx_s * LORA_TX_MA + rx_s * LORA_RX_MA + (DAY_S - tx_s - rx_s) * LORA_SLEEP_MA
    rp2_ma = (mcu_mas + radio_mas) / DAY_S
    # the same day if the MCU were dormant between events (wake on the pulse edge)
    dormant_ma = (awake * RP2040_RUN_MA + asleep * RP2040_DORMANT_MA + radio_mas) / DAY_S
    # nRF51 on QEMU: not measured here (see docs/firmware.md); its radio day is the same
    rows = [
        ("rp2 (RP2040, lightsleep(100))", awake, rp2_ma),
        ("rp2, dormant between events (design)", awake, dormant_ma),
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
    print("nrf51 (QEMU microbit): not measured (see docs/firmware.md, Energy)")
    assert idle.guest_s > 0 and 0 < idle_rate < 1 and whole.guest_s >= interval * 0.9
