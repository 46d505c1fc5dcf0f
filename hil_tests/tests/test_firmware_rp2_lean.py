"""rp2's form made from the lean sources (bundle("rp2"): the shared mp/lean/ files
with the Pico's glue, mp/lean/glue_rp2.py; bundle("rp2") still ships the full profile)
on the emulated RP2040 with MicroPython v1.27.0: the three boot phases with a
machine.reset() between them, the boot status first, pulses on GPIO 16 counted (the
CPU in lightsleep between them, woken by their edges) with the direction input on
GPIO 17 making a debt, readings on UART0, and maintenance by Ctrl-C on the USB console,
which ends the run phase with a clean commit."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from meterlink.firmware import FIELDS, NRF51_NAMES, bundle, render_config
from meterlink.hil.pico import EmulatedPico
from meterlink.protocol import FrameType, LinkDecoder, LinkFrame, Reading, Status, decode_frame

pytestmark = [pytest.mark.hil, pytest.mark.xdist_group("cpu-heavy")]

KEY = bytes(range(16))
DEV = 0x0A0B0C0E
REGISTER = 3000
PULSE, DIR = 16, 17
NAMES = dict(NRF51_NAMES)  # role -> on-board file (the same names on both boards)


def test_lean_rp2_boots_counts_and_stops_on_ctrl_c(pico: EmulatedPico) -> None:
    config = render_config(board="rp2", id=DEV, key=KEY, gen=1, register=REGISTER,
                           interval=2, rx_window_ms=200, pin_pulse=str(PULSE),
                           pin_dir=str(DIR))  # fmt: skip
    pico.flash({**bundle("rp2"), "config.txt": config.encode()})
    pico.take_modem_bytes()
    pico.reset()
    decoder = LinkDecoder()
    frames: list = []

    def collect(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for link in decoder.feed(pico.take_modem_bytes()):
                if isinstance(link, LinkFrame):
                    frames.append(decode_frame(link.payload, KEY))
            time.sleep(0.1)

    deadline = time.monotonic() + 90
    while not [f for f in frames if f.frame_type == FrameType.READING]:
        assert time.monotonic() < deadline, f"no reading from the lean rp2 build: {frames}"
        collect(1)
    assert frames[0].frame_type == FrameType.STATUS and isinstance(frames[0].body, Status)
    assert frames[0].body.error in (None, 0)
    pico.pulses(PULSE, 40, 20, 20)  # 25 Hz, timed by the chip
    pico.set_pin(DIR, 1)
    pico.pulses(PULSE, 5, 20, 20)  # backflow: a debt of 5
    pico.set_pin(DIR, 0)
    pico.pulses(PULSE, 10, 20, 20)  # pays it back, then 5 more
    collect(6)
    readings = [f.body for f in frames if f.frame_type == FrameType.READING]
    assert all(isinstance(r, Reading) for r in readings)
    registers = [r.register for r in readings]
    assert registers == sorted(registers) and registers[-1] == REGISTER + 40 + 5, registers
    counters = [f.counter for f in frames]
    assert counters == sorted(set(counters))
    # maintenance: Ctrl-C on USB (the REPL's own way in) stops it at the REPL, and the
    # run phase committed a clean record on the way
    assert pico.exec("print(7 * 6)").strip() == "42"
    names = pico.list_files()
    assert "rt" not in names and "cf" not in names
    records = [pico.read_file(n) for n in ("st0", "st1") if n in names]
    newest = max((struct.unpack_from("<15I", r) for r in records if len(r) == 62),
                 key=lambda s: s[0])  # fmt: skip
    assert newest[int(FIELDS["S_FLAGS"])] & 1 and newest[int(FIELDS["S_REG"])] == REGISTER + 45


def test_lean_rp2_protocol_vectors_on_the_chip(pico: EmulatedPico) -> None:
    """firmware/tests/lean_vectors.py (CRC, AES, CMAC, keys, SLIP writer and receiver,
    varints, every valid and invalid frame, the downlink counter rule, LoRa airtimes) on
    the chunks of bundle("rp2"), loaded by its main.py's ld() on MicroPython v1.27.0
    on the RP2040, as CPython and the WebAssembly port run it on the sources."""
    root = Path(__file__).resolve().parents[2]
    files = {n: d for n, d in bundle("rp2").items() if n != "main.py"}
    main = bundle("rp2")["main.py"].decode()
    files["ml_ld.py"] = ("import gc\n" + main[main.index("def ld(") : main.index("\ntry:")]
                         + "\n").encode()  # fmt: skip
    files["fields.py"] = (root / "firmware/meterlink/firmware/mp/fields.py").read_bytes()
    files["lean_vectors.py"] = (root / "firmware/tests/lean_vectors.py").read_bytes()
    files["v2.json"] = (root / "protocol/vectors/v2.json").read_bytes()
    pico.flash(files)
    out = pico.exec(
        "import json, lean_vectors\n"
        "def load(ns, roles):\n"
        "    exec(open('ml_ld.py').read(), ns)\n"
        "    for r in roles:\n"
        f"        if {NAMES!r}.get(r) in {sorted(files)!r}:\n"
        f"            ns['ld']({NAMES!r}[r])\n"
        "print(lean_vectors.run_all(json.load(open('v2.json')), lean_vectors.space(load)))\n",
        timeout=300,
    )
    # without the downlink handler (lean/downlink.py) the uplink side only
    cases = 137 if "downlink" in NAMES and NAMES["downlink"] in files else 28
    assert out.strip() == f"({cases}, 42)", out
