"""One QEMU `microbit` process: command line, launch (paused), control sockets, and the
nRF51 flash operations the harness needs (save, faithful restore through the NVMC)."""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from meterlink.boardlink.errors import BoardError
from meterlink.hil.processes import kill_child, spawn_child
from meterlink.hil.qmp import QmpClient
from meterlink.hil.qtest import QtestClient

DEFAULT_MICROBIT_HEX = Path("/usr/share/firmware-microbit-micropython/firmware.hex")
FLASH_SIZE = 0x40000  # nRF51822 on the micro:bit: 256 KiB
DEFAULT_ICOUNT_SHIFT = 6  # 2^6 ns = 64 ns per instruction, about the nRF51's 16 MHz
# guest-paced boards: 4 ns per instruction, about the speed this firmware gets from QEMU
# without -icount on this host, so tests written for it keep their timing (docs/hil.md)
PACED_ICOUNT_SHIFT = 2

# nRF51 TIMER2: unused by the micro:bit MicroPython firmware (TIMER0 and TIMER1 are its
# tickers), so the harness runs it as a 1 MHz, 32-bit guest clock it reads over qtest
_TIMER2 = 0x4000A000
_TIMER_START, _TIMER_CLEAR, _TIMER_CAPTURE3 = 0x000, 0x00C, 0x04C
_TIMER_MODE, _TIMER_BITMODE, _TIMER_PRESCALER, _TIMER_CC3 = 0x504, 0x508, 0x510, 0x54C

# nRF51 NVMC registers
_NVMC_CONFIG = 0x4001E504
_NVMC_ERASEALL = 0x4001E50C
_NVMC_READ_ONLY, _NVMC_WRITE, _NVMC_ERASE = 0, 1, 2

MARKER_PREFIX = "meterlink-"  # every QEMU the harness starts has -name meterlink-<uuid>


@dataclass(frozen=True)
class QemuOptions:
    firmware_hex: Path = DEFAULT_MICROBIT_HEX
    deterministic: bool = False
    seed: int = 0
    icount_shift: int = DEFAULT_ICOUNT_SHIFT
    # -icount in step with the host clock (align=on, sleep=on): guest time advances only
    # while the vCPU runs, so a host that does not schedule QEMU stops it (docs/hil.md)
    guest_paced: bool = False

    @property
    def icount(self) -> bool:
        """Guest time counts instructions (deterministic or guest-paced)."""
        return self.deterministic or self.guest_paced


@cache
def hex_records(firmware_hex: Path) -> tuple[tuple[int, bytes], ...]:
    """The data records of an Intel hex file as (address, bytes)."""
    out, base = [], 0
    for line in Path(firmware_hex).read_text().split():
        count, addr, kind = int(line[1:3], 16), int(line[3:7], 16), int(line[7:9], 16)
        if kind == 4:
            base = int(line[9:13], 16) << 16
        elif kind == 0:
            out.append((base + addr, bytes.fromhex(line[9 : 9 + 2 * count])))
    return tuple(out)


@cache
def programmed_flash(firmware_hex: Path) -> bytes:
    """The 256 KiB flash as a programmer leaves it: erased (0xFF) everywhere, then the
    hex's data below FLASH_SIZE. QEMU's `microbit` starts its flash at 0x00 where the hex
    writes nothing; real flash is erased before it is programmed (docs/hil.md)."""
    image = bytearray(b"\xff" * FLASH_SIZE)
    for addr, data in hex_records(firmware_hex):
        if addr + len(data) <= FLASH_SIZE:
            image[addr : addr + len(data)] = data
    return bytes(image)


class QemuMachine:
    """A running (initially paused) QEMU; close() kills it."""

    def __init__(self, options: QemuOptions, log_path: Path) -> None:
        exe = shutil.which("qemu-system-arm")
        if exe is None:
            raise BoardError("qemu-system-arm is not installed: run `make setup`")
        if not options.firmware_hex.exists():
            raise BoardError(
                f"firmware {options.firmware_hex} not found: run `make setup` "
                "(Debian package firmware-microbit-micropython)"
            )
        self.marker = f"{MARKER_PREFIX}{uuid.uuid4().hex[:12]}"
        # unix socket paths must stay under 108 bytes: keep them out of deep tmp_paths
        self.sockdir = Path(tempfile.mkdtemp(prefix="mlq-"))
        self.qmp_path = self.sockdir / "qmp.sock"
        self.qtest_path = self.sockdir / "qtest.sock"
        argv = [
            exe,
            "-M", "microbit",
            "-accel", "tcg",
            "-name", self.marker,
            "-device", f"loader,file={options.firmware_hex}",
            "-display", "none",
            "-monitor", "none",
            "-serial", "pty",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-qtest", f"unix:{self.qtest_path},server=on,wait=off",
            "-qtest-log", "/dev/null",
            "-seed", str(options.seed),
            "-S",
        ]  # fmt: skip
        if options.deterministic:
            argv += ["-icount", f"shift={options.icount_shift},align=off,sleep=off"]
        elif options.guest_paced:
            argv += ["-icount", f"shift={options.icount_shift},align=on,sleep=on"]
        self.argv = argv
        self.options = options
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc: subprocess.Popen[bytes] = spawn_child(
                argv, stdout=log, stderr=log, own_process_group=True
            )
        try:
            self.qmp = QmpClient(self.qmp_path)
            self.qtest = QtestClient(self.qtest_path)
            self.pty_path = self._find_pty()
        except Exception as exc:
            self.close()
            raise BoardError(f"QEMU did not start ({exc}); see {log_path}") from exc

    def _find_pty(self) -> str:
        for dev in self.qmp.command("query-chardev"):
            if dev.get("label") == "serial0" and str(dev.get("filename", "")).startswith("pty:"):
                return str(dev["filename"])[4:]
        raise BoardError("QEMU reported no pty for serial0")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def cont(self) -> None:
        self.qmp.command("cont")

    def stop(self) -> None:
        self.qmp.command("stop")

    def system_reset(self) -> None:
        self.qmp.command("system_reset")

    def start_guest_clock(self) -> None:
        """Starts TIMER2 as a 1 MHz 32-bit counter of guest (virtual) time. A reset stops
        it: call again after one."""
        q = self.qtest
        q.writel(_TIMER2 + _TIMER_MODE, 0)  # timer, not counter
        q.writel(_TIMER2 + _TIMER_BITMODE, 3)  # 32 bits
        q.writel(_TIMER2 + _TIMER_PRESCALER, 4)  # 16 MHz / 2^4
        q.writel(_TIMER2 + _TIMER_CLEAR, 1)
        q.writel(_TIMER2 + _TIMER_START, 1)

    def guest_us(self) -> int:
        """Guest microseconds on TIMER2 modulo 2^32, read without pausing the VM (the
        capture latches one instant; the guest may run on while the value is read)."""
        self.qtest.writel(_TIMER2 + _TIMER_CAPTURE3, 1)
        return self.qtest.readl(_TIMER2 + _TIMER_CC3)

    def guest_clock(self) -> tuple[int, int]:
        """(guest microseconds on TIMER2 modulo 2^32, guest instructions executed so far).
        The instruction count is QEMU's icount: only with -icount (deterministic or
        guest-paced)."""
        if not self.options.icount:
            raise BoardError(
                "guest instruction counts need -icount: a deterministic or guest-paced board"
            )
        self.qmp.command("stop")  # both read at the same guest instant
        try:
            self.qtest.writel(_TIMER2 + _TIMER_CAPTURE3, 1)
            guest_us = self.qtest.readl(_TIMER2 + _TIMER_CC3)
            icount = int(self.qmp.command("query-replay")["icount"])
        finally:
            self.qmp.command("cont")
        return guest_us, icount

    def save_flash(self, path: Path) -> None:
        """Saves the 256 KiB flash (the CPU should be stopped for a consistent image).
        memsave, not pmemsave: pmemsave reads zeros on this machine."""
        self.qmp.command(
            "memsave", val=0, size=FLASH_SIZE, filename=str(path.resolve()), **{"cpu-index": 0}
        )

    def read_flash(self) -> bytes:
        return self.qtest.b64read(0, FLASH_SIZE)

    def restore_flash(self, image: bytes) -> None:
        """Erases all flash and writes image through the NVMC, as a programmer would.
        The erase is needed: flash writes only clear bits. Call while paused (-S)."""
        if len(image) != FLASH_SIZE:
            raise BoardError(
                f"flash image is {len(image)} bytes; an nRF51 image must be {FLASH_SIZE} bytes "
                "(made by power_cut())"
            )
        q = self.qtest
        q.writel(_NVMC_CONFIG, _NVMC_ERASE)
        q.writel(_NVMC_ERASEALL, 1)
        q.writel(_NVMC_CONFIG, _NVMC_WRITE)
        q.command(f"b64write 0x0 {FLASH_SIZE:#x} {base64.b64encode(image).decode()}")
        q.writel(_NVMC_CONFIG, _NVMC_READ_ONLY)

    def quit(self) -> None:
        with contextlib.suppress(Exception):  # QEMU closes the socket as it quits
            self.qmp.command("quit")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.close()

    def close(self) -> None:
        kill_child(self.proc)
        for client in (getattr(self, "qmp", None), getattr(self, "qtest", None)):
            if client is not None:
                client.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)
