"""rp2's build (bundle("rp2"), made from the lean sources)
under CPython, with the Pico's glue (mp/lean/glue_rp2.py) and a fake machine
(tests/rp2/machine.py), in both forms: the sources as written and the bundle made from
them. GPIO-number pins, UART0, the lightsleep between passes ended by pulse edges,
maintenance by Ctrl-C (a KeyboardInterrupt ends the run phase with a clean commit),
safe mode for a micro:bit pin name, the AT modem (P2P set when loaded, AT+PSEND, the
window opened on TX done) and the duty-cycle budget skipping readings and deferring
frames, no frame showing a register not yet committed; every frame decoded by
meterlink.protocol; the tamper alarm through the AT modem."""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import utime

sys.path.insert(0, str(Path(__file__).parent / "rp2"))
from lean_rp2 import FORMS, Rp2Lean

from meterlink.bundler import FIELDS, bundle, render_config
from meterlink.protocol import (
    Ack,
    Alarm,
    AlarmFlags,
    Config,
    FrameType,
    LinkDecoder,
    LinkType,
    Reading,
    Status,
    decode_frame,
    encode_frame,
    encode_link,
)

KEY = bytes(range(16))
DEV = 0x0A0B0C0D
PULSE, DIR = 16, 17
S_REG, S_FLAGS, S_DLC, V_ERR, V_FWD, V_INTERVAL = (
    int(FIELDS[n]) for n in ("S_REG", "S_FLAGS", "S_DLC", "V_ERR", "V_FWD", "V_INTERVAL"))


@pytest.fixture(params=FORMS)
def pico(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[Rp2Lean]:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    board = Rp2Lean(request.param)
    yield board
    board.close()


def write_config(**kw: Any) -> None:
    values = {"id": DEV, "key": KEY, "gen": 1, "interval": 2, "rx_window_ms": 100,
              "pin_pulse": str(PULSE), "pin_dir": str(DIR), **kw}  # fmt: skip
    Path("config.txt").write_text(render_config(board="rp2", **values))


def pulses(start: int, period: int, high: int, count: int) -> Any:
    def level(t: int) -> int:
        k = (t - start) // period
        return 1 if t >= start and k < count and (t - start) % period < high else 0

    return level


def frames(pico: Rp2Lean, key: bytes = KEY) -> list[Any]:
    links = LinkDecoder().feed(b"".join(pico.machine.tx))
    return [decode_frame(link.payload, key) for link in links]  # type: ignore[union-attr]


def test_the_lean_rp2_bundle_is_the_shared_sources_with_the_pico_glue() -> None:
    files = bundle("rp2")
    assert "glue.py" in files and "board.py" not in files
    assert not any(name.startswith("ml_") and name[3:] in ("core", "main", "boot")
                   for name in files)  # fmt: skip
    text = b"".join(files.values())
    assert b"microbit" not in text
    # Ctrl-C on USB is the maintenance stop: turned off only once the stop has begun
    assert b"kbd_intr" not in b"".join(d for n, d in files.items() if n != "glue.py")
    assert files["glue.py"].count(b"kbd_intr") == 1
    assert b"def stopping():micropython.kbd_intr(-1)" in files["glue.py"]
    assert b"lightsleep(100)" in files["glue.py"] and b"UART(0" in files["glue.py"]
    assert b"except FATAL as e" in files["main.py"] and b"FATAL=Exception" in files["glue.py"]
    assert files["ml_nt"] and files["ml_ni"]  # the AT modem and the duty-cycle budget


def test_boots_counts_through_gpio_and_sleeps_between_edges(pico: Rp2Lean) -> None:
    write_config(register=500)
    pico.boot()
    m = pico.machine
    assert m.irqs == {PULSE: 12}  # both edges of the pulse input run the debouncer
    t0 = utime.clock[0]
    m.levels[PULSE] = pulses(t0 + 100, 40, 20, 40)  # 25 Hz
    m.levels[DIR] = lambda t: 1 if t0 + 100 + 40 * 30 <= t < t0 + 100 + 40 * 35 else 0
    pico.run_until(t0 + 4 * 2000 + 300)
    got = frames(pico)
    assert got[0].frame_type == FrameType.STATUS and isinstance(got[0].body, Status)
    # status_detail: the register as committed (the record, glue committed()), then the rest
    assert (got[0].body.register, got[0].body.alarms, got[0].body.interval_s) == (500, 0, 2)
    assert pico.glue.battery() == 99  # VSYS 3.6 V on ADC3 (the low-battery alarm's input)
    pico.machine.vsys[0] = 3.05
    assert pico.glue.battery() == 8
    readings = [f.body for f in got if f.frame_type == FrameType.READING]
    assert len(readings) >= 3 and all(isinstance(r, Reading) for r in readings)
    assert readings[-1].register == 500 + 35 - 5 == pico.ns["S"][S_REG]
    assert [f.counter for f in got] == sorted({f.counter for f in got})
    # idle: lightsleep to the next 100 ms check, woken early by edges
    assert m.sleeps and set(m.sleeps) <= {100, 6}
    assert len(m.sleeps) < (utime.clock[0] - t0) / 20


def committed_register() -> int:
    """The register of the newest record on the fake Pico's filesystem (st0, st1)."""
    records = [Path(n).read_bytes() for n in ("st0", "st1") if Path(n).exists()]
    newest = max((struct.unpack_from("<15I", r) for r in records if len(r) == 62),
                 key=lambda rec: rec[0])  # fmt: skip
    return int(newest[S_REG])


def test_no_frame_shows_a_register_not_yet_committed_while_pulses_interrupt(
    pico: Rp2Lean,
) -> None:
    """The pulse interrupt counts on between commit() and the frame's body: each reading
    and alarm carries the register as committed when it is sent (a power cut just after
    it would otherwise take back a register the gateway has seen)."""
    write_config(register=900, interval=1, backflow_pulses=2)
    ns = pico.boot()
    t0 = utime.clock[0]

    class Record:
        """A record file being written; once closed, a pulse the interrupt counts just
        then (the fake machine runs handlers only between ticks: this is one for sure)."""

        def __init__(self, name: str, mode: str) -> None:
            self.f = open(name, mode)  # noqa: SIM115

        def write(self, data: bytes) -> int:
            return self.f.write(data)

        def close(self) -> None:
            self.f.close()
            ns["S"][S_REG] += 1
            ns["V"][V_FWD] += 1

    ns["open"] = lambda name, mode="r": Record(name, mode) if name[:2] == "st" else open(name, mode)  # noqa: SIM115
    decoder = LinkDecoder()
    seen: list[tuple[str, int, int]] = []  # frame type, its register, the committed one
    counters: set[int] = set()

    def sent(chunk: bytes) -> None:
        for link in decoder.feed(chunk):
            f = decode_frame(link.payload, KEY)  # type: ignore[union-attr]
            if f.counter in counters:
                continue  # an alarm's resend: the same frame, byte for byte
            counters.add(f.counter)
            if isinstance(f.body, Reading | Alarm):
                seen.append((f.frame_type.name, f.body.register, committed_register()))

    pico.machine.on_write[0] = sent
    pico.machine.levels[PULSE] = pulses(t0 + 50, 20, 10, 450)  # 50 Hz, edges all along
    pico.machine.levels[DIR] = lambda t: 1 if t0 + 3000 <= t < t0 + 3300 else 0  # backflow
    pico.run_until(t0 + 10_000)
    assert {"READING", "ALARM"} <= {kind for kind, _, _ in seen}, seen
    ahead = [(kind, register, committed) for kind, register, committed in seen
             if register != committed]  # fmt: skip
    assert not ahead, ahead
    assert pico.ns["S"][S_REG] > seen[0][1]  # counting went on meanwhile


def test_ctrl_c_on_usb_stops_the_run_phase_with_a_clean_commit(pico: Rp2Lean) -> None:
    write_config()
    ns = pico.boot()
    start = utime.clock[0]
    pressed: list[int] = []

    def stop(t: int) -> int:
        if t > start + 1500 and not pressed:
            pressed.append(t)
            raise KeyboardInterrupt  # a Ctrl-C on the USB console, mid-pass
        return 0

    pico.machine.levels[PULSE] = stop
    ns["run"]()  # returns: main.py then leaves the REPL to the technician
    assert ns["S"][S_FLAGS] == 1 and ns["V"][V_ERR] == 0
    assert frames(pico)[0].frame_type == FrameType.STATUS
    assert committed_flags() == 1


def committed_flags() -> int:
    records = [Path(n).read_bytes() for n in ("st0", "st1") if Path(n).exists()]
    newest = max((struct.unpack_from("<15I", r) for r in records if len(r) == 62),
                 key=lambda rec: rec[0])  # fmt: skip
    return int(newest[S_FLAGS])


def test_the_rest_of_a_ctrl_c_burst_does_not_cut_the_clean_stop_short(pico: Rp2Lean) -> None:
    """Tools stop the firmware with ten 0x03 at once, again each second until the prompt
    comes: a Ctrl-C that lands in the clean stop's commit would leave the record without
    the clean flag (an unexpected-reset alarm at the next boot). The stop turns Ctrl-C
    off first (the REPL turns it on again for what it runs)."""
    import micropython

    write_config()
    ns = pico.boot()
    start = utime.clock[0]
    micropython.interrupt_char[0] = 3  # as MicroPython runs main.py

    began: list[int] = []

    def burst(t: int) -> int:
        if t > start + 1500 and micropython.interrupt_char[0] == 3:
            began.append(t)
            raise KeyboardInterrupt  # a Ctrl-C of the burst, while Ctrl-C is on
        return 0

    class Record:
        def __init__(self, name: str, mode: str) -> None:
            self.f = open(name, mode)  # noqa: SIM115

        def write(self, data: bytes) -> int:
            if began and micropython.interrupt_char[0] == 3:
                raise KeyboardInterrupt  # the next Ctrl-C of the burst, mid-commit
            return self.f.write(data)

        def close(self) -> None:
            self.f.close()

    ns["open"] = lambda name, mode="r": Record(name, mode) if name[:2] == "st" else open(name, mode)  # noqa: SIM115
    pico.machine.levels[PULSE] = burst
    try:
        ns["run"]()
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C of the burst cut the clean stop short")
    assert began and micropython.interrupt_char[0] == -1
    assert committed_flags() == 1


def test_a_micro_bit_pin_name_is_safe_mode_code_3(pico: Rp2Lean) -> None:
    Path("config.txt").write_text(render_config(id=DEV, key=KEY, gen=1, pin_pulse="pin0"))
    ns = pico.boot()
    assert ns["V"][V_ERR] == 3
    start = utime.clock[0]
    pressed: list[int] = []

    def stop(t: int) -> int:
        if t > start + 2000 and not pressed:
            pressed.append(t)
            raise KeyboardInterrupt
        return 0

    pico.machine.levels[PULSE] = stop  # read by nothing in safe mode: the clock stops it
    orig = ns["held"]
    ns["held"] = lambda: stop(utime.clock[0]) or orig()
    ns["run"]()
    got = frames(pico)
    assert len(got) == 1 and got[0].frame_type == FrameType.STATUS
    assert got[0].body.error == 3


def test_a_rejected_config_is_answered_by_a_status_with_the_values_applied(
    pico: Rp2Lean,
) -> None:
    """Protocol 4.5 on rp2's build: a config the module rejects (70,000 s, beyond its
    1..65535) changes nothing and is answered by a status frame with the values in force,
    its counter used up."""
    write_config(interval=2)
    ns = pico.boot()
    pico.run_until(utime.clock[0] + 300)  # the boot status
    bad = encode_frame(FrameType.CONFIG, DEV, 1, Config(interval_s=70_000), KEY)
    pico.machine.rx.append(encode_link(LinkType.DATA, bad))
    ns["listen"](30)
    assert ns["S"][S_DLC] == 1 and ns["V"][V_INTERVAL] == 2
    pico.run_until(utime.clock[0] + 500)
    statuses = [f.body for f in frames(pico) if f.frame_type == FrameType.STATUS]
    assert len(statuses) == 2 and statuses[1].reason == 0
    assert statuses[1].interval_s == 2  # the value in force, not the one asked for


class Rak3172:
    """An AT modem as the firmware sees it on UART0: OK to each command, TX DONE after
    AT+PSEND, RECEIVE TIMEOUT after AT+PRECV (no downlink)."""

    def __init__(self, machine: Any) -> None:
        self.machine = machine
        self.heard: list[bytes] = []  # downlinks to deliver in the next windows
        self.lines: list[str] = []
        self.sent: list[bytes] = []
        self.buf = b""
        machine.on_write[0] = self.write

    def write(self, chunk: bytes) -> None:
        self.buf += chunk
        while b"\r\n" in self.buf:
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode()
            self.lines.append(text)
            answer = ["OK"]
            if text.startswith("AT+PSEND="):
                self.sent.append(bytes.fromhex(text[9:]))
                answer.append("+EVT:TXP2P DONE")
            elif text.startswith("AT+PRECV=") and self.heard:
                answer.append("+EVT:RXP2P:-90:5:" + self.heard.pop(0).hex().upper())
            elif text.startswith("AT+PRECV="):
                answer.append("+EVT:RXP2P RECEIVE TIMEOUT")
            self.machine.rx.append("".join(a + "\r\n" for a in answer).encode())


def test_the_at_modem_is_set_up_when_loaded_and_sends_frames_as_hex(pico: Rp2Lean) -> None:
    write_config(modem=1, lora_freq=868300000, lora_sf=7, lora_power=20)
    pico.phase1()
    pico.phase2()
    modem = Rak3172(pico.machine)
    pico.phase3()
    assert modem.lines[:2] == ["AT+NWM=0", "AT+P2P=868300000:7:125:0:8:20"]
    pico.run_until(utime.clock[0] + 2 * 2000 + 300)
    got = [decode_frame(p, KEY) for p in modem.sent]
    assert got[0].frame_type == FrameType.STATUS
    assert [f.frame_type for f in got[1:3]] == [FrameType.READING] * 2
    assert not LinkDecoder().feed(b"".join(b for b in pico.machine.tx if not b.startswith(b"AT")))
    # each send is followed by its receive window, opened with AT+PRECV
    precv = [i for i, line in enumerate(modem.lines) if line.startswith("AT+PRECV=")]
    sends = [i for i, line in enumerate(modem.lines) if line.startswith("AT+PSEND=")]
    assert len(precv) == len(sends) and all(p == s + 1 for p, s in zip(precv, sends, strict=True))


def test_the_tamper_alarm_goes_out_through_the_at_modem(pico: Rp2Lean) -> None:
    """What the full profile's AT test checked beyond test_lora_at_rp2.py (the shipped
    build on the emulated Pico, which covers the AT set-up, the sends, the windows and
    the acks): the tamper loop opening raises a confirmed alarm, sent with AT+PSEND."""
    write_config(modem=1, lora_freq=868300000, lora_sf=8, pin_tamper="18")
    pico.phase1()
    pico.phase2()
    modem = Rak3172(pico.machine)
    pico.phase3()
    t0 = utime.clock[0]
    pico.machine.levels[18] = lambda t: 1 if t >= t0 + 1000 else 0  # the loop opens
    pico.run_until(t0 + 4000)
    alarms = [f.body for f in (decode_frame(p, KEY) for p in modem.sent)
              if isinstance(f.body, Alarm)]  # fmt: skip
    assert alarms and AlarmFlags.TAMPER in alarms[0].raised, alarms


def test_the_duty_cycle_budget_skips_readings_and_their_deltas_ride_along(
    pico: Rp2Lean,
) -> None:
    # 1 % sub-band, SF12: a 51-byte frame is 2.47 s on air; the bucket holds 36 s
    write_config(lora_freq=868100000, lora_sf=12, interval=2, history=23)
    ns = pico.boot()
    t0 = utime.clock[0]
    pico.machine.levels[PULSE] = pulses(t0 + 100, 100, 50, 400)  # 10 Hz for 40 s
    pico.run_until(t0 + 60_000 + 300)
    got = frames(pico)
    readings = [f.body for f in got if f.frame_type == FrameType.READING]
    # 30 intervals, but the bucket (36 s, plus 0.6 s refilled) took 14 frames
    assert len(got) == 14 and len(readings) == 13
    assert ns["S"][int(FIELDS["S_ISEQ"])] == 30
    assert ns["DC"][1] < 2_465_792  # too little for the next frame
    last = readings[-1]
    assert isinstance(last, Reading) and last.interval_seq == 12
    ns["DC"][1] = 100_000_000  # airtime again: the next reading carries what was skipped
    pico.run_until(utime.clock[0] + 2000)
    after = [f.body for f in frames(pico) if f.frame_type == FrameType.READING][-1]
    gap = after.interval_seq - last.interval_seq
    assert gap >= 17 and len(after.deltas) >= gap  # the intervals skipped, and its own
    assert sum(after.deltas[:gap]) == after.register - last.register == 400 - last.register


def test_an_alarm_waits_for_the_budget_instead_of_being_dropped(pico: Rp2Lean) -> None:
    write_config(lora_freq=868100000, lora_sf=12, interval=600, backflow_pulses=3)
    ns = pico.boot()
    t0 = utime.clock[0]
    ns["DC"][1] = 0  # the bucket spent (by earlier frames)
    pico.machine.levels[DIR] = 1
    pico.machine.levels[PULSE] = pulses(t0 + 100, 60, 30, 4)
    pico.run_until(t0 + 5000)
    assert ns["V"][int(FIELDS["V_PEND"])] & 4  # backflow raised, waiting
    assert not [f for f in frames(pico) if f.frame_type == FrameType.ALARM]
    ns["DC"][1] = 10_000_000  # airtime again
    pico.run_until(utime.clock[0] + 500)
    alarms = [f for f in frames(pico) if f.frame_type == FrameType.ALARM]
    assert len(alarms) == 1 and alarms[0].body.raised & 4


def test_an_alarm_over_the_at_modem_is_acked_in_its_window(pico: Rp2Lean) -> None:
    """The AT window hands +EVT:RXP2P payloads to the SLIP window's got(): the ack of
    the alarm frame ends its sends after the first."""
    write_config(modem=1, interval=600, backflow_pulses=3, rx_window_ms=500)
    pico.phase1()
    pico.phase2()
    modem = Rak3172(pico.machine)
    ns = pico.phase3()
    t0 = utime.clock[0]
    pico.machine.levels[DIR] = 1
    pico.machine.levels[PULSE] = pulses(t0 + 100, 60, 30, 4)
    acked = []

    def write(chunk: bytes) -> None:
        if chunk.startswith(b"AT+PSEND="):
            frame = decode_frame(bytes.fromhex(chunk[9:].strip().decode()), KEY)
            if frame.frame_type == FrameType.ALARM and not acked:
                acked.append(frame.counter)
                modem.heard.append(encode_frame(FrameType.ACK, DEV, frame.counter, Ack(), KEY))
        Rak3172.write(modem, chunk)

    pico.machine.on_write[0] = write
    pico.run_until(t0 + 12_000)
    alarms = [f for f in (decode_frame(p, KEY) for p in modem.sent)
              if f.frame_type == FrameType.ALARM]
    assert len(alarms) == 1 and acked == [alarms[0].counter]  # sent once: acked
    assert ns["V"][int(FIELDS["V_ALEN"])] == 0


def test_a_send_the_modem_refuses_opens_no_window_and_the_alarm_is_sent_again(
    pico: Rp2Lean,
) -> None:
    """AT_BUSY_ERROR to AT+PSEND: at_send() reports the frame as not sent, so no
    AT+PRECV follows it, and the alarm frame goes out again, the same bytes, once the
    modem takes it (its backoff), and then gets its window."""
    write_config(modem=1, interval=600, backflow_pulses=3, rx_window_ms=300)
    pico.phase1()
    pico.phase2()
    modem = Rak3172(pico.machine)
    pico.phase3()
    pico.run_until(utime.clock[0] + 300)  # the boot status, sent
    refused: list[bytes] = []

    def write(chunk: bytes) -> None:
        if chunk.startswith(b"AT+PSEND=") and not refused:
            refused.append(bytes.fromhex(chunk[9:].strip().decode()))
            modem.lines.append(chunk.strip().decode())
            pico.machine.rx.append(b"AT_BUSY_ERROR\r\n")
            return
        Rak3172.write(modem, chunk)

    pico.machine.on_write[0] = write
    t0 = utime.clock[0]
    pico.machine.levels[DIR] = 1
    pico.machine.levels[PULSE] = pulses(t0 + 100, 60, 30, 4)
    pico.run_until(t0 + 6000)
    assert refused and decode_frame(refused[0], KEY).frame_type == FrameType.ALARM
    i = modem.lines.index("AT+PSEND=" + refused[0].hex().upper())
    assert not modem.lines[i + 1].startswith("AT+PRECV=")  # no window after it
    assert refused[0] in modem.sent  # sent again, the same bytes
    j = modem.lines.index("AT+PSEND=" + refused[0].hex().upper(), i + 1)
    assert modem.lines[j + 1].startswith("AT+PRECV=")
