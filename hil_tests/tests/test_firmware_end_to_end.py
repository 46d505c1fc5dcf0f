"""The nRF51 firmware (bundle("nrf51"), the lean profile) end to end on the emulated
micro:bit: boot from config.txt, a status frame, reading frames whose register is the
initial register plus the pulses given, backflow and leak flags, every frame decoded with
the device key by the gateway's codec."""

from __future__ import annotations

import time

import pytest

from meterlink.bundler import NRF51_NAMES, bundle, bundle_features, nrf51_loader, render_config
from meterlink.hil import EmulatedBoard
from meterlink.protocol import (
    Ack,
    Alarm,
    FrameType,
    LinkDecoder,
    LinkType,
    Reading,
    Status,
    decode_frame,
    encode_frame,
    encode_link,
)
from meterlink.protocol.bodies import body_from_map
from meterlink.protocol.cbor_body import decode_body_map

KEY = bytes(range(16))
DEV = 0x01020304
REGISTER = 5000

pytestmark = pytest.mark.hil


def frames_until(
    board: EmulatedBoard,
    decoder: LinkDecoder,
    want: int,
    timeout: float,
    kind: FrameType | None = None,
) -> list:
    """Decoded frames heard on the board's UART until `want` of them (of type `kind`, if
    given) or the timeout. Alarm frames are acked at once, as a gateway does."""
    got: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (
        len([f for f in got if kind is None or f.frame_type == kind]) < want
    ):
        for link in decoder.feed(board.read(4096, timeout=0.2)):
            frame = decode_frame(link.payload, KEY)  # type: ignore[union-attr]
            if frame.frame_type == FrameType.ALARM:
                ack = encode_frame(FrameType.ACK, DEV, frame.counter, Ack(), KEY)
                board.write(encode_link(LinkType.DATA, ack))
            got.append(frame)
    return got


def boot(board: EmulatedBoard, files: dict[str, bytes] | None = None,
         **config: object) -> LinkDecoder:
    """Flashes the nRF51 build (or `files`) with a 5 s interval (and `config`), boots it
    and waits for its boot status frame; returns the decoder to go on reading frames
    with."""
    values: dict[str, object] = {
        "id": DEV, "key": KEY, "gen": 1, "register": REGISTER, "interval": 5,
        "rx_window_ms": 300, "backflow_pulses": 3, "pin_pulse": "pin0", "pin_dir": "pin1",
    }  # fmt: skip
    text = render_config(**(values | config))
    board.flash({**(files or bundle("nrf51")), "config.txt": text.encode()})
    board.reset()
    decoder = LinkDecoder()
    first = frames_until(board, decoder, 1, 60)
    assert first and first[0].frame_type == FrameType.STATUS
    assert isinstance(first[0].body, Status) and first[0].body.reason == 1
    assert first[0].body.battery_pct == 100  # nRF51: the supervisor's pin16 is low
    return decoder


@pytest.mark.hil_guest_paced  # pulses timed in guest time (docs/hil.md)
def test_boot_status_readings_with_pulses_backflow_and_leak(board: EmulatedBoard) -> None:
    decoder = boot(board, leak_intervals=2)
    board.pulse("pin0", 7, 40, 40)  # forward
    board.set_pin("pin1", 1)
    board.pulse("pin0", 4, 40, 40)  # reverse: backflow, a debt the register never shows
    board.set_pin("pin1", 0)
    # two intervals more (the UART may still hold readings sent while the pulses came);
    # alarm frames (backflow) come too
    frames = frames_until(board, decoder, 99, 13)
    readings = [f for f in frames if f.frame_type == FrameType.READING]
    assert readings, frames
    last = readings[-1].body
    assert isinstance(last, Reading)
    assert last.register == REGISTER + 7
    assert any(isinstance(r.body, Reading) and r.body.alarms & 4 for r in readings)
    # flow in every interval (a pulse every 0.5 s for 15 s): the leak flag
    train = board.pulse_in_background("pin0", 30, 40, 460)
    later = frames_until(board, decoder, 4, 40, FrameType.READING)
    train.wait()
    later += frames_until(board, decoder, 99, 13)  # two intervals more, as above
    readings = [f for f in later if f.frame_type == FrameType.READING]
    assert any(isinstance(r.body, Reading) and r.body.alarms & 1 for r in readings)
    assert any(isinstance(a.body, Alarm) and a.body.raised & 1 for a in later)
    final = readings[-1].body
    # the 4 reverse pulses were a debt: the first 4 forward ones paid it back
    assert isinstance(final, Reading) and final.register == REGISTER + 7 + 30 - 4
    assert all(f.device_id == DEV and len(f.payload) <= 51 for f in frames + later)


def test_alarm_frame_is_resent_as_the_same_bytes_until_acked(board: EmulatedBoard) -> None:
    """A backflow raises an alarm frame (confirmed): unanswered, it is sent again with
    the same counter and bytes; once an ack with its counter arrives in the receive
    window after a send, it is not sent again."""
    decoder = boot(board)
    board.set_pin("pin1", 1)
    board.pulse("pin0", 4, 40, 40)  # reverse
    board.set_pin("pin1", 0)
    alarms: list[bytes] = []
    acked_at = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for link in decoder.feed(board.read(4096, timeout=0.2)):
            frame = decode_frame(link.payload, KEY)  # type: ignore[union-attr]
            if frame.frame_type != FrameType.ALARM:
                continue
            alarms.append(bytes(link.payload))  # type: ignore[union-attr]
            if len(alarms) == 2:  # the first resend: answer it at once
                ack = encode_frame(FrameType.ACK, DEV, frame.counter, Ack(), KEY)
                board.write(encode_link(LinkType.DATA, ack))
                acked_at = time.monotonic()
                deadline = acked_at + 20  # unacked, it would come 2 more times by then
    assert len(alarms) == 2 and acked_at is not None, alarms
    assert alarms[0] == alarms[1]  # the same frame: same counter, same bytes
    first = decode_frame(alarms[0], KEY)
    assert isinstance(first.body, Alarm)
    assert first.body.raised & 4 and first.body.reverse >= 3  # raised at the third
    assert first.body.register == REGISTER


def test_boot_status_frame_is_sent_at_boot_whatever_an_alarm_waits_for(
    board: EmulatedBoard,
) -> None:
    """After a power cut the module raises the unexpected-reset alarm, a confirmed frame
    that, unacked, is resent for minutes. The boot status frame does not wait for it: it
    is the first frame of the boot; the alarm frame follows."""
    boot(board)
    time.sleep(1)
    board.power_cut()
    board.power_on()
    decoder = LinkDecoder()
    frames: list = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        f.frame_type == FrameType.ALARM for f in frames
    ):
        for link in decoder.feed(board.read(4096, timeout=0.2)):  # nothing is acked
            frames.append(decode_frame(link.payload, KEY))  # type: ignore[union-attr]
    kinds = [f.frame_type for f in frames]
    assert kinds and kinds[0] == FrameType.STATUS, kinds
    assert frames[0].body.reason == 1  # the boot status
    alarms = [f for f in frames if f.frame_type == FrameType.ALARM]
    assert alarms and isinstance(alarms[0].body, Alarm) and alarms[0].body.raised & 32


# the nRF51 main.py's loader, for loading a file at the REPL without booting the firmware
LOADER = nrf51_loader()


@pytest.mark.parametrize(
    ("register", "delta", "history", "want_deltas"),
    [(123456, 100, 12, 12), (4_000_000_000, 2**32 - 1, 23, None)],
    ids=["household", "worst"],
)
def test_reading_body_fits_51_bytes(
    board: EmulatedBoard, register: int, delta: int, history: int, want_deltas: int | None
) -> None:
    """The nRF51 firmware's own body() on the board: a household reading carries all 12
    deltas within 48 bytes; the worst case (largest register, weight, interval, alarm
    flags and deltas) drops old deltas to stay within 51 and keeps at least one."""
    counting = NRF51_NAMES["counting"]  # body() is in lean/counting.py
    board.flash({counting: bundle("nrf51")[counting]})
    board.exec(LOADER + f"ld({counting!r})\n", idempotent=True)  # first: the heap is empty
    board.exec(
        "from array import array\n"
        "S=array('L',[0]*15)\nV=array('L',[0]*32)\nF=bytearray(80)\nB=bytearray(62)\n"  # state.py
        f"Q=[None,None,array('L',[{delta}]*{history})]\n"
        f"S[2]={register}\nV[9]={history}\n"
        + ("S[5]=4294967295\nV[10]=63\n" if delta > 127 else "S[5]=1000\n")
        + f"V[24]={65535 if delta > 127 else 1}\nV[25]=1\nV[26]={65535 if delta > 127 else 900}\n",
        idempotent=True,
    )
    out = board.exec(
        "from utime import ticks_ms\nV[18]=ticks_ms()\nn=body(0)\n"
        "print(''.join('%02x' % F[9+i] for i in range(n)))\n",
        timeout=30,
        idempotent=True,
    )
    raw = bytes.fromhex(out.strip())
    body = body_from_map(FrameType.READING, decode_body_map(raw))
    assert isinstance(body, Reading) and body.register == register
    frame = 7 + len(raw) + 4  # header (protocol v2: 7 bytes), body, MIC
    assert frame <= (48 if want_deltas else 51)
    assert len(body.deltas) == (want_deltas or len(body.deltas)) >= 1
    assert all(d == delta for d in body.deltas)



@pytest.mark.hil_guest_paced  # pulses timed in guest time (docs/hil.md)
def test_shipped_burst_alarm_on_the_board(board: EmulatedBoard) -> None:
    """Firmware 1.1's nRF51 feature (bundle_features('nrf51')): burst_pulses in each of
    burst_intervals in a row raise a burst alarm frame, and readings carry the flag;
    decoded by the codec."""
    from meterlink.bundler import bundle_features
    from meterlink.protocol import AlarmFlags

    assert "burst_alarm" in bundle_features("nrf51")
    decoder = boot(board, burst_pulses=4, burst_intervals=2, leak_intervals=50)
    quiet = frames_until(board, decoder, 99, 2)
    assert not [f for f in quiet if f.frame_type == FrameType.ALARM]
    # 6 pulses a second for 12 s: at least 4 in each of two 5 s intervals in a row
    train = board.pulse_in_background("pin0", 72, 40, 126)
    later = frames_until(board, decoder, 99, 20)
    train.wait()
    alarms = [f.body for f in later if f.frame_type == FrameType.ALARM]
    assert any(isinstance(a, Alarm) and a.raised & AlarmFlags.BURST for a in alarms), later
    readings = [f.body for f in later if f.frame_type == FrameType.READING]
    assert any(isinstance(r, Reading) and r.alarms & AlarmFlags.BURST for r in readings)


def test_shipped_daily_status_on_the_board(board: EmulatedBoard) -> None:
    """Firmware 1.3's nRF51 daily_status: a status frame (reason 0) once a day of
    intervals. A day is 86,400 s of guest time whatever the config (interval at most
    65,535 s), which the emulator cannot run in a test (the idle firmware executes about
    7 M instructions per guest second; QEMU here runs about 30 M a second), so the
    shipped bundle's day is cut to 15 s here, by the same number of characters (the
    chunks keep their lengths): 3 intervals of 5 s."""
    assert "daily_status" in bundle_features("nrf51")
    files = bundle("nrf51")
    days = [n for n, data in files.items() if b"86400" in data]
    assert len(days) == 1 and files[days[0]].count(b"86400") == 1, days
    files[days[0]] = files[days[0]].replace(b"86400", b"   15")
    decoder = boot(board, files=files, leak_intervals=50)
    frames = frames_until(board, decoder, 2, 40, FrameType.STATUS)
    kinds = [f.frame_type for f in frames]
    statuses = [f.body for f in frames if f.frame_type == FrameType.STATUS]
    assert len(statuses) == 2 and all(isinstance(s, Status) and s.reason == 0
                                      for s in statuses), frames  # fmt: skip
    # each after the third reading since the one before (boot status, reason 1, first)
    first = kinds.index(FrameType.STATUS)
    assert kinds[:first].count(FrameType.READING) == 3, kinds
    assert kinds[first + 1:].count(FrameType.READING) == 3, kinds
    assert all(isinstance(s, Status) and s.battery_pct == 100 and s.fw_version == 259
               for s in statuses)  # fmt: skip
