"""Torn files from a power cut during a boot-phase write never stop the nRF51 firmware as
shipped (bundle("nrf51")): 'cf' (phase 1), the state record and 'rt' (phase 2) cut short
at lengths across each file and at the boundaries of every part the firmware reads, and
power cuts swept across the boot window. After each, the module boots on and sends its
boot status frame."""

from __future__ import annotations

import itertools
import time

import pytest

from meterlink.boardlink import files as board_files
from meterlink.bundler import FIELDS, NRF51_BOOT, NRF51_NAMES, bundle, nrf51_loader, render_config
from meterlink.hil import EmulatedBoard
from meterlink.hil.board import FLASH_TRIES
from meterlink.hil.microbit_fs import read_fs
from meterlink.protocol import FrameType, LinkDecoder, LinkFrame, Status, decode_frame

pytestmark = pytest.mark.hil

KEY = bytes(range(16))
DEV = 0x0A0B0C0D
CONFIG = render_config(
    id=DEV, key=KEY, gen=1, register=42, interval=5, rx_window_ms=300, pin_pulse="pin0"
)
BOOT_FILES = ("cf", "rt", "st0", "st1")


def boot_status(board: EmulatedBoard, timeout: float = 40) -> tuple[Status | None, bytes]:
    """The first status frame's body within timeout (None if none) and what was heard."""
    decoder = LinkDecoder()
    heard = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = board.read(4096, timeout=0.2)
        heard += data
        for link in decoder.feed(data):
            if isinstance(link, LinkFrame):
                frame = decode_frame(link.payload, KEY)
                if frame.frame_type == FrameType.STATUS:
                    assert isinstance(frame.body, Status)
                    return frame.body, heard
    return None, heard


def boot_phase_files(board: EmulatedBoard) -> dict[str, bytes]:
    """'cf' as phase 1 writes it, and the record and 'rt' as phase 2 writes them, made by
    the firmware's own code at the REPL (main.py absent, so nothing boots)."""
    files = bundle("nrf51")
    files["config.txt"] = CONFIG.encode()
    board.flash({n: d for n, d in files.items() if n != "main.py"})
    # an empty heap for phase 1, as at a boot: after the flash the REPL's heap is in
    # pieces (the 1.3 bundle's import of ml_cfg found no block of 1,792 B)
    board.reset(wait_for_repl=True)
    config = NRF51_NAMES["config"].removesuffix(".py")  # boot phase 1's file
    board.exec(f"import ml_cfg, {config}\n{config}.read()")
    cf = board.read_file("cf")
    board.reset(wait_for_repl=True)  # an empty heap for phase 2
    load = "".join(f"ld({NRF51_NAMES[role]!r})\n" for role in NRF51_BOOT)
    board.exec(nrf51_loader() + load + "boot()\n", timeout=60)
    made = {"cf": cf, "st1": board.read_file("st1"), "rt": board.read_file("rt")}
    assert (len(made["cf"]), len(made["st1"]), len(made["rt"])) == (CF, 62, RT), made
    board.flash({"main.py": files["main.py"]})
    return made


# the sizes boot phases 1 and 2 write: 'cf' (lean/config.py: error code, ten values, the
# key, three pins, the burst thresholds) and 'rt' (S and V as fields.py sizes them, the
# working keys, the pins and history length)
CF = 71
SV = 4 * (int(FIELDS["S_N"]) + int(FIELDS["V_N"]))
RT = SV + 176 * 2 + 16 * 2 + 4


def put_state(board: EmulatedBoard, files: dict[str, bytes]) -> None:
    """Exactly these boot-phase files on the board (the others removed)."""
    with board.repl() as t:
        present = board_files.list_files(t)
        for name in BOOT_FILES:
            if name in present and name not in files:
                board_files.remove_file(t, name)
        board_files.flash_files(t, files)


def test_torn_boot_phase_files_never_stop_the_module(board: EmulatedBoard) -> None:
    made = boot_phase_files(board)
    cf, st, rt = made["cf"], made["st1"], made["rt"]
    # each case starts from the same flash (firmware and config.txt only), so that one
    # case's rewrites never reach another's (the files lost after dozens of rewrites
    # were QEMU's unerased flash breaking MicroPython's sweep: test_emulated_flash.py)
    put_state(board, {})
    base = board.power_cut()
    # rt is read in parts: S and V (SV bytes), two key schedules (176 each), two CMAC
    # subkeys (16 each), pins, history length and tamper pin (4); cut inside and at each
    # boundary
    bounds = [SV, SV + 176, SV + 352, SV + 368, SV + 384]
    rt_cuts = sorted({0, 1, 4, 60, 122, SV + 112, RT - 1, RT - 2}
                     | {b + d for b in bounds for d in (-1, 0, 1)})  # fmt: skip
    cases = (
        [(f"cf[:{n}]", {"cf": cf[:n]}) for n in (0, 1, 4, 31, 60, 61, 62, 63, CF - 1)]
        + [(f"st1[:{n}] beside cf", {"cf": cf, "st1": st[:n]}) for n in (0, 1, 30, 61)]
        + [(f"rt[:{n}] beside cf, st1", {"cf": cf, "st1": st, "rt": rt[:n]}) for n in rt_cuts]
    )
    stopped, crashed = [], []
    for name, files in cases:
        board.flash_image = base
        board.power_on(wait_for_repl=True, pins={"pin8": 1})  # held: stops at the REPL
        board.set_pin("pin8", 0)
        put_state(board, files)
        while board.read(65536, timeout=0.1):
            pass  # the REPL session's output (a retried write may show a traceback)
        board.reset()
        # 100 s: a boot that fails waits 60 s and resets (main.py), and must come back
        body, heard = boot_status(board, timeout=100)
        if body is None or body.reason != 1:
            stopped.append((name, body, heard[-200:]))
        elif b"Traceback" in heard:
            crashed.append((name, heard[heard.index(b"Traceback") :][:160]))
        board.power_cut()
    # Seen in some runs before the harness erased the flash (test_emulated_flash.py; not
    # seen since): one boot after a case fails reading its own code (a NameError or
    # SyntaxError on bytes 0xFF in a chunk); that boot waits and the next one runs.
    print(f"\ntorn-file cases: {len(cases)}, a boot failed once and recovered: {crashed}")
    assert not stopped, stopped


def test_power_cuts_swept_across_the_boot_window(board: EmulatedBoard) -> None:
    """A cut every 80 ms of the first 2.4 s after power-on (all three boot phases, each
    write among them), one after the other; then the module boots and sends its status."""
    board.flash({**bundle("nrf51"), "config.txt": CONFIG.encode()})
    spares = [read_fs(board.power_cut().read_bytes()).spare]
    for step in range(30):
        board.power_on()
        time.sleep(0.08 * step)
        spares.append(read_fs(board.power_cut().read_bytes()).spare)
    board.power_on()
    # the filesystem's spare page moves at each sweep (MicroPython reclaiming freed chunks)
    sweeps = sum(a != b for a, b in itertools.pairwise(spares))
    print(f"\nfilesystem sweeps during the cuts: {sweeps}; spare page after each: {spares}")
    # 100 s: a boot that fails waits 60 s and resets, and must come back. (A SyntaxError
    # reading a chunk after the cuts was QEMU's unerased flash breaking MicroPython's
    # filesystem sweep, test_emulated_flash.py; the harness now erases it.)
    body, heard = boot_status(board, timeout=100)
    crashed = heard[heard.index(b"Traceback") :][:160] if b"Traceback" in heard else b""
    print(f"\nafter 30 cuts across the boot window, a boot failed once and recovered: {crashed!r}")
    assert body is not None and body.reason == 1, heard[-300:]


def test_files_written_again_while_flashing_leave_a_module_that_boots(
    board: EmulatedBoard,
) -> None:
    """The demo's silent module (issue 15): on a loaded host a lost UART byte makes
    flash() write a file again, and provisioning verifies each file as it goes. The
    rewrites use up the nearly full filesystem (one chunk unused after the nRF51 bundle),
    so a later write sweeps; on QEMU's unerased flash that sweep broke files verified
    before it, and the module never booted. Five rewrites, then every file and a boot."""
    files = {**bundle("nrf51"), "config.txt": CONFIG.encode()}
    board.flash(files)
    with board.repl() as t:
        for name in ("ml_nb", "ml_np", "ml_nb", "ml_cfg.py", "ml_nd"):  # the big ones
            # written and verified as flash() does: a byte lost on the loaded host's UART
            # spoils only the file being written, which is then written again (one more
            # rewrite); what must hold is that no file verified earlier changes after it
            for _ in range(FLASH_TRIES):
                board_files.write_file(t, name, files[name])
                if board_files.verify_file(t, name, files[name]):
                    break
            else:
                pytest.fail(f"{name} differed after {FLASH_TRIES} writes")
    wrong = sorted(n for n, check in board.verify(files).items() if not check.ok)
    board.reset()  # MicroPython reads its filesystem afresh, as the boot does
    fs = read_fs(board.save_flash_image(board.workdir / "rewritten.bin").read_bytes())
    assert not wrong, f"files wrong on the board after the rewrites: {wrong}"
    assert all(fs.files.get(n) == d for n, d in files.items()), fs.spare
    body, heard = boot_status(board, timeout=60)
    assert body is not None and body.reason == 1, heard[-300:]
