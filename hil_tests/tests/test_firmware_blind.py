"""Pulses arriving while frames are sealed on the emulated nRF51 board are all counted:
the board has no pin interrupts, so the pure-Python AES calls the poll function after
every round. The board seals 38-byte reading bodies back to back (CTR + CMAC: 6 AES
blocks each, keys derived per frame as in a session) while 40 ms pulses arrive.

The driver (main.py here) loads the nRF51 bundle's own files as its main.py does (ld()):
CRC, AES, the key derivation of boot.py, seal.py and counting.py, whose debouncer,
poll(), is what the AES calls: rising edges seen in two samples 5 ms apart."""

from __future__ import annotations

import re
import time

import pytest

from meterlink.bundler import FIELDS, NRF51_NAMES, bundle, chunked, nrf51_loader, render_config
from meterlink.hil import EmulatedBoard
from meterlink.protocol import LinkDecoder, Reading, decode_frame

ROLES = ("counting", "crc", "aes", "boot", "seal")  # the largest first, as main.py loads
FI = {name: int(value) for name, value in FIELDS.items()}
# main.py: the loader and the files (counting.py's poll() kept from boot.py's `poll = int`),
# then the driver, stored as chunks too (a main.py that large leaves no heap for the files)
# and run from main.py (the C stack has no room for its calls inside ld()'s exec)
MAIN = nrf51_loader() + "".join(
    f"ld({NRF51_NAMES[r]!r})\n" + ("P=poll\n" if r == "counting" else "") for r in ROLES
) + "ld('ml_nz')\ngo()\n"
DRIVER = f"""del boot, rec
poll = P
import utime
from array import array
from microbit import pin0
pin0.set_pull(pin0.NO_PULL)
S = array('L', [0] * {FI["S_N"]})
V = array('L', [0] * {FI["V_N"]})
Q = [pin0.read_digital, None, None]
F = bytearray(80)
class W:
    def write(s, b):
        L.append(b)
def go():
    global K, L
    k = 0
    while True:
        t = utime.ticks_ms()
        L = []
        keys(W(), b'0123456789abcdef')
        K = L
        V[{FI["V_DEV"]}] = 1
        seal(0x20, k, 38)
        k += 1
        print('n', S[{FI["S_REG"]}], k, utime.ticks_diff(utime.ticks_ms(), t))
"""
LINE = re.compile(rb"n (\d+) (\d+) (\d+)\r?\n")


def last_line(board: EmulatedBoard, wait: float) -> tuple[int, int, int]:
    got = b""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        got += board.read(4096, timeout=0.2)
    found = LINE.findall(got)
    assert found, got[-300:]
    return tuple(int(x) for x in found[-1])  # type: ignore[return-value]


@pytest.mark.hil
@pytest.mark.hil_guest_paced  # pulses timed in guest time (docs/hil.md)
def test_pulses_during_sealing_are_all_counted(board: EmulatedBoard) -> None:
    files = bundle("nrf51")
    board.flash({NRF51_NAMES[r]: files[NRF51_NAMES[r]] for r in ROLES}
                | {"main.py": MAIN.encode(), "ml_nz": chunked(DRIVER).encode()})
    board.reset()
    _, frames_before, _ = last_line(board, 1.0)
    sent = board.pulse_in_background("pin0", 150, high_ms=40, low_ms=40).wait()  # ~12 s
    count, frames, ms = last_line(board, 1.5)
    print(f"\n{count} of {sent} pulses counted while {frames - frames_before} frames were "
          f"sealed ({ms} ms per frame, keys derived each time)")
    assert frames - frames_before >= 20  # sealing went on all the time
    assert count == sent == 150


@pytest.mark.hil
@pytest.mark.hil_guest_paced  # pulses timed in guest time (docs/hil.md)
def test_pulses_through_the_nrf51_builds_frames_are_all_counted(board: EmulatedBoard) -> None:
    """The firmware as shipped for the nRF51 (bundle("nrf51")), a reading frame every
    second: body, commit, sealing and sending happen while 150 pulses arrive, and the
    last reading's register has every one of them."""
    key, register = bytes(range(16)), 7000
    config = render_config(id=77, key=key, gen=1, register=register, interval=1,
                           pin_pulse="pin0")  # fmt: skip
    board.flash({**bundle("nrf51"), "config.txt": config.encode()})
    board.reset()
    decoder = LinkDecoder()

    def readings(wait: float) -> list[Reading]:
        got: list[Reading] = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for link in decoder.feed(board.read(4096, timeout=0.2)):
                body = decode_frame(link.payload, key).body  # type: ignore[union-attr]
                if isinstance(body, Reading):
                    got.append(body)
        return got

    assert readings(30)  # booted and sending
    sent = board.pulse_in_background("pin0", 150, high_ms=60, low_ms=60).wait()  # ~18 s
    during = readings(3)  # the readings sent while the pulses came, then 3 s more
    print(f"\n{during[-1].register - register} of {sent} pulses in the last reading; "
          f"{len(during)} readings sent while they came and just after")
    assert during[-1].register == register + sent == register + 150
