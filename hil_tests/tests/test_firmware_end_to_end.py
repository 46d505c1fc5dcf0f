"""The nRF51 firmware (bundle("nrf51"), the lean profile) end to end on the emulated
micro:bit: boot from config.txt, a status frame, reading frames whose register is the
initial register plus the pulses given, backflow and leak flags, every frame decoded with
the device key by the gateway's codec."""

from __future__ import annotations

import time

import pytest

from meterlink.firmware import bundle, render_config
from meterlink.hil import EmulatedBoard
from meterlink.protocol import FrameType, LinkDecoder, Reading, decode_frame

KEY = bytes(range(16))
DEV = 0x01020304
REGISTER = 5000

pytestmark = pytest.mark.hil


def frames_until(board: EmulatedBoard, decoder: LinkDecoder, want: int, timeout: float) -> list:
    """Decoded frames heard on the board's UART until `want` of them or the timeout."""
    got: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < want:
        for link in decoder.feed(board.read(4096, timeout=0.5)):
            got.append(decode_frame(link.payload, KEY))  # type: ignore[union-attr]
    return got


def test_boot_status_readings_with_pulses_backflow_and_leak(board: EmulatedBoard) -> None:
    config = render_config(
        id=DEV, key=KEY, gen=1, register=REGISTER, interval=5, rx_window_ms=300,
        leak_intervals=2, backflow_pulses=3, pin_pulse="pin0", pin_dir="pin1",
    )
    board.flash({**bundle("nrf51"), "config.txt": config.encode()})
    board.reset()
    decoder = LinkDecoder()
    first = frames_until(board, decoder, 1, 60)
    assert first and first[0].frame_type == FrameType.STATUS
    board.pulse("pin0", 7, 40, 40)  # forward
    board.set_pin("pin1", 1)
    board.pulse("pin0", 4, 40, 40)  # reverse: backflow, a debt the register never shows
    board.set_pin("pin1", 0)
    frames = frames_until(board, decoder, 4, 40)
    readings = [f for f in frames if f.frame_type == FrameType.READING]
    assert readings, frames
    last = readings[-1].body
    assert isinstance(last, Reading)
    assert last.register == REGISTER + 7
    assert any(isinstance(r.body, Reading) and r.body.alarms & 4 for r in readings)
    # flow in every interval (a pulse every 0.5 s for 15 s): the leak flag
    train = board.pulse_in_background("pin0", 30, 40, 460)
    later = [f for f in frames_until(board, decoder, 4, 40) if f.frame_type == FrameType.READING]
    train.wait()
    assert any(isinstance(r.body, Reading) and r.body.alarms & 1 for r in later)
    later += frames_until(board, decoder, 2, 20)
    final = later[-1].body
    # the 4 reverse pulses were a debt: the first 4 forward ones paid it back
    assert isinstance(final, Reading) and final.register == REGISTER + 7 + 30 - 4
    assert all(f.device_id == DEV and len(f.payload) <= 51 for f in frames + later)
