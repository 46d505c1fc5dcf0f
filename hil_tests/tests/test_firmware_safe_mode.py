"""Safe mode of the nRF51 firmware as shipped (bundle("nrf51")) on the emulated micro:bit:
every bad configuration gives a status frame (reason 2, safe mode) with its error code
(docs/protocol.md 4.7) within one boot, and the module then waits, alive, for the
maintenance input: no crash loop, and one record commit and one counter reservation for
the boot, not one per crash."""

from __future__ import annotations

import struct
import time

import pytest

from meterlink.bundler import bundle, render_config
from meterlink.hil import EmulatedBoard
from meterlink.protocol import FrameType, LinkDecoder, LinkFrame, Status, decode_frame
from meterlink.protocol.errors import ProtocolError

pytestmark = pytest.mark.hil

KEY = bytes(range(16))
DEV = 0x05060708
ZERO_KEY = bytes(16)

GOOD = render_config(id=DEV, key=KEY, gen=1, register=100, interval=5, pin_pulse="pin0")


def without(name: str) -> bytes:
    return "".join(ln for ln in GOOD.splitlines(keepends=True) if not ln.startswith(name + "=")
                   ).encode()  # fmt: skip


def replaced(name: str, value: str) -> bytes:
    lines = [f"{name}={value}\n" if ln.startswith(name + "=") else ln
             for ln in GOOD.splitlines(keepends=True)]  # fmt: skip
    return "".join(lines).encode()


# (case, config.txt bytes or None for no file, error code, device id and key the status
# frame is sealed with: the config's if id and key parsed before the error, else 0 and
# an all-zero key)
CASES = [
    ("missing", None, 1, 0, ZERO_KEY),
    ("unreadable (UTF-16)", GOOD.encode("utf-16"), 2, 0, ZERO_KEY),
    ("no gen", without("gen"), 3, DEV, KEY),
    ("no id", without("id"), 3, 0, ZERO_KEY),
    ("interval=0", replaced("interval", "0"), 3, DEV, KEY),
    ("31-digit key", replaced("key", KEY.hex()[:31]), 3, DEV, ZERO_KEY),
    ("pin_pulse=pin25", replaced("pin_pulse", "pin25"), 3, DEV, KEY),
    ("line without '='", GOOD.encode() + b"interval 5\n", 2, 0, ZERO_KEY),
    ("random bytes", bytes(range(256))[::-7] * 3, 2, 0, ZERO_KEY),
]


def status_frames(board: EmulatedBoard, keys: list[tuple[int, bytes]], timeout: float) -> list:
    """Status frames the board sends within timeout (decoded with whichever key fits)."""
    decoder = LinkDecoder()
    got: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not got:
        for link in decoder.feed(board.read(4096, timeout=0.2)):
            if not isinstance(link, LinkFrame):
                continue
            for device, key in keys:
                try:
                    frame = decode_frame(link.payload, key)
                except ProtocolError:
                    continue
                assert frame.device_id == device
                if frame.frame_type == FrameType.STATUS:
                    got.append(frame)
    return got


def records(board: EmulatedBoard) -> list[tuple[int, ...]]:
    """The state records on the board (st0, st1), each as its 15 fields."""
    files = board.list_files()
    out = []
    for name in ("st0", "st1"):
        if name in files:
            data = board.read_file(name)
            if len(data) == 62:
                out.append(struct.unpack_from("<15I", data, 0))
    return out


def test_every_bad_configuration_gives_its_safe_mode_status_once_and_no_crash_loop(
    board: EmulatedBoard,
) -> None:
    board.flash(bundle("nrf51"))
    failures = []
    for case, config, code, device, key in CASES:
        # a fresh store and this config.txt, then a boot from power-on
        names = board.list_files()
        with board.repl() as t:
            for name in ("st0", "st1", "cf", "rt", "config.txt"):
                if name in names:
                    t.exec(f"import os\nos.remove('{name}')")
        if config is not None:
            board.flash({"config.txt": config})
        board.reset()
        frames = status_frames(board, [(device, key)], timeout=40)
        if not frames:
            failures.append(f"{case}: no status frame")
            continue
        body = frames[0].body
        assert isinstance(body, Status)
        if (body.reason, body.error) != (2, code):
            failures.append(f"{case}: reason {body.reason} error {body.error}, want 2 {code}")
        # alive in safe mode: it sees the maintenance input at once (no reset needed),
        # commits, and stops at the REPL
        while board.read(65536, timeout=0.3):
            pass  # what came before
        board.set_pin("pin8", 1)
        try:
            stopped = board.read_until(b">>> ", timeout=5)
        finally:
            board.set_pin("pin8", 0)
        assert b"Traceback" not in stopped, (case, stopped[-300:])
        recs = records(board)
        newest = max(recs, key=lambda r: r[0])
        # one boot: its commit (seq 1, counters 0..31 reserved) and the maintenance stop's
        # (seq 2, clean); a crash loop would have committed and reserved again
        if (newest[0], newest[6], newest[9]) != (2, 32, 1):
            failures.append(f"{case}: newest record seq {newest[0]} reserved {newest[6]} "
                            f"clean {newest[9]}, want 2 32 1")  # fmt: skip
        assert frames[0].counter == 0
    assert not failures, failures
