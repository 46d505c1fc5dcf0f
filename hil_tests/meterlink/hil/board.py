"""An emulated nRF51 board (QEMU `microbit`) running MicroPython 1.9.2, driven from tests."""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from mpremote.transport_serial import SerialTransport

from meterlink.boardlink import files as board_files
from meterlink.boardlink.errors import BoardError
from meterlink.boardlink.transport import enter_maintenance, open_transport
from meterlink.hil.pulses import MAINTENANCE_PIN, GuestTime, PulseTrain, pin_line
from meterlink.hil.qemu import (
    DEFAULT_ICOUNT_SHIFT,
    DEFAULT_MICROBIT_HEX,
    PACED_ICOUNT_SHIFT,
    QemuMachine,
    QemuOptions,
    programmed_flash,
)
from meterlink.hil.uart import UartListener, UartLog, UartPump

# Writes per file before flash() gives up. More than a real line needs: with several
# boards on a loaded 2-core host, a board's UART input buffer overflows now and then and
# a whole 32-byte piece is lost (seen three times in a row on one file in a full run:
# "ml_nc.py: 788 bytes on the board, expected 820"); each write is verified.
FLASH_TRIES = 5

_live_boards: weakref.WeakSet[EmulatedBoard] = weakref.WeakSet()
_PROMPT = b">>> "


class EmulatedBoard:
    """One QEMU process; its UART (a pty), REPL, filesystem, GPIO inputs and power.

    Files in workdir: `<name>-uart.log` (every byte the board sent), `<name>-qemu.log`,
    flash images from power_cut().

    guest_paced: QEMU runs with -icount in step with the host clock (align=on, sleep=on)
    and pulses are timed in guest time (docs/hil.md, "How pulses are timed"); its icount
    shift defaults to PACED_ICOUNT_SHIFT. deterministic takes precedence.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        name: str = "board",
        deterministic: bool = False,
        seed: int = 0,
        firmware_hex: Path = DEFAULT_MICROBIT_HEX,
        flash_image: Path | None = None,
        icount_shift: int | None = None,
        boot_timeout: float = 30.0,
        guest_paced: bool = False,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        if icount_shift is None:
            icount_shift = PACED_ICOUNT_SHIFT if guest_paced else DEFAULT_ICOUNT_SHIFT
        self.options = QemuOptions(
            firmware_hex=Path(firmware_hex),
            deterministic=deterministic,
            seed=seed,
            icount_shift=icount_shift,
            guest_paced=guest_paced and not deterministic,
        )
        self.flash_image = Path(flash_image) if flash_image is not None else None
        self.boot_timeout = boot_timeout
        self.uart_log = self.workdir / f"{name}-uart.log"
        self.qemu_log = self.workdir / f"{name}-qemu.log"
        self.pty_path = ""
        self.boot_seconds: float | None = None  # launch to REPL prompt, last start()
        self._log: UartLog | None = None
        self._machine: QemuMachine | None = None
        self._uart: UartPump | None = None
        self._listeners: list[UartListener] = []
        self._cuts = 0
        self._lock = threading.RLock()
        _live_boards.add(self)

    # ------------------------------------------------------------------ power
    @property
    def running(self) -> bool:
        return self._machine is not None and self._machine.alive

    @property
    def qemu_marker(self) -> str:
        """The unique -name of the current QEMU process (find it with pgrep -f)."""
        return self._machine.marker if self._machine else ""

    def start(
        self, *, wait_for_repl: bool | None = None, pins: Mapping[str, int] | None = None
    ) -> None:
        """Boots the board. Waits for the REPL prompt unless the flash image may hold a
        main.py that owns the UART (wait_for_repl defaults to `flash_image is None`).
        pins: input levels applied before the CPU starts, e.g. {"pin2": 1}."""
        if wait_for_repl is None:
            wait_for_repl = self.flash_image is None
        self._boot(self.flash_image, wait_for_repl, pins or {})

    def _boot(self, image: Path | None, wait_for_repl: bool, pins: Mapping[str, int]) -> None:
        lines = {pin_line(pin): 1 if level else 0 for pin, level in pins.items()}
        with self._lock:
            if self.running:
                raise BoardError(f"{self.name} is already running; close() or power_cut() first")
            if self._log is None:
                self._log = UartLog(self.uart_log)
            t0 = time.monotonic()
            machine = QemuMachine(self.options, self.qemu_log)
            try:
                # a new board's flash as a programmer leaves it (QEMU's is 0x00 where the
                # hex writes nothing, which breaks MicroPython's filesystem: docs/hil.md)
                machine.restore_flash(Path(image).read_bytes() if image is not None
                                      else programmed_flash(self.options.firmware_hex))
                for line, level in lines.items():
                    machine.qtest.set_irq_in("/machine/nrf51", "unnamed-gpio-in", line, level)
                uart = UartPump(machine.pty_path, self._log, self.name)
            except Exception:
                machine.close()
                raise
            for listener in self._listeners:
                uart.add_listener(listener)
            self._machine, self._uart, self.pty_path = machine, uart, machine.pty_path
            machine.cont()  # the UART reader is already attached: nothing printed is lost
        if wait_for_repl:
            seen = uart.read_until(_PROMPT, self.boot_timeout)
            if not seen:
                tail = uart.peek()[-200:]
                self.close()
                raise BoardError(
                    f"{self.name} did not reach the REPL prompt in {self.boot_timeout}s; "
                    f"last UART bytes {tail!r}; see {self.uart_log} and {self.qemu_log}"
                )
            self.boot_seconds = time.monotonic() - t0

    def close(self) -> None:
        """Kills QEMU and releases everything; safe to call twice."""
        with self._lock:
            self._shutdown(quit_first=False)
            if self._log is not None:
                self._log.close()
                self._log = None

    def _shutdown(self, *, quit_first: bool) -> None:
        machine, uart = self._machine, self._uart
        self._machine, self._uart = None, None
        if machine is not None:
            if quit_first:
                machine.quit()
            else:
                machine.close()
        if uart is not None:
            uart.close()

    def __enter__(self) -> EmulatedBoard:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def reset(self, *, wait_for_repl: bool = False) -> None:
        """A reset (QMP system_reset): RAM lost, flash kept; boots main.py if present."""
        machine, uart = self._require()
        if wait_for_repl:
            uart.clear()
        machine.system_reset()
        if wait_for_repl:
            self._wait_prompt(uart, "after reset")

    def start_guest_clock(self) -> None:
        """Starts the guest clock guest_clock() reads (TIMER2; a reset stops it)."""
        self._require()[0].start_guest_clock()

    def guest_clock(self) -> tuple[int, int]:
        """(guest microseconds since start_guest_clock(), modulo 2^32; guest instructions
        executed since QEMU started). Deterministic boards only (-icount)."""
        return self._require()[0].guest_clock()

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Stops the CPU for the block (QMP stop, then cont), as a loaded host that does
        not schedule QEMU's vCPU thread would; pins, UART and qtest keep working."""
        machine, _ = self._require()
        machine.stop()
        try:
            yield
        finally:
            if machine.alive:
                machine.cont()

    def power_cut(self) -> Path:
        """Cuts power: stops the CPU where it is, saves the flash to an image in workdir,
        and ends QEMU. Returns the image path (power_on() boots from it)."""
        with self._lock:
            machine, _ = self._require()
            machine.stop()
            self._cuts += 1
            image = self.workdir / f"{self.name}-flash-cut{self._cuts}.bin"
            machine.save_flash(image)
            self._shutdown(quit_first=True)
            self.flash_image = image
            return image

    def power_on(
        self, *, wait_for_repl: bool = False, pins: Mapping[str, int] | None = None
    ) -> None:
        """Powers the board back on with the flash of the last power_cut(), restored
        through the NVMC so that it survives later resets. pins: as for start()."""
        self._boot(self.flash_image, wait_for_repl, pins or {})

    def save_flash_image(self, path: Path) -> Path:
        """Copies the current flash (read over qtest, CPU running) to path."""
        machine, _ = self._require()
        path.write_bytes(machine.read_flash())
        return path

    def _require(self) -> tuple[QemuMachine, UartPump]:
        machine, uart = self._machine, self._uart
        if machine is None or uart is None or not machine.alive:
            raise BoardError(
                f"{self.name} is not running (powered off or closed); call start() or power_on()"
            )
        return machine, uart

    def _wait_prompt(self, uart: UartPump, when: str) -> None:
        if not uart.read_until(_PROMPT, self.boot_timeout):
            raise BoardError(
                f"{self.name} did not reach the REPL prompt {when}; see {self.uart_log}"
            )

    # ------------------------------------------------------------------- REPL
    @contextmanager
    def released(self) -> Iterator[str]:
        """Hands the board's UART to another program (a provisioning tool, a terminal),
        as a laptop's own terminal would be closed first: the harness stops reading it
        until the block ends. Yields the pty path."""
        _, uart = self._require()
        with uart.io_lock:
            uart.pause()
            try:
                yield self.pty_path
            finally:
                uart.resume()

    @property
    def cable(self) -> BoardCable:
        """The programming cable's maintenance input (pin8, through qtest) and reset (QMP),
        as provisioning drives them (meterlink.boardlink.transport.MaintenanceCable)."""
        return BoardCable(self)

    @contextmanager
    def repl(self, timeout: float = 10.0) -> Iterator[SerialTransport]:
        """mpremote's SerialTransport in raw REPL, reached as an installer does: the
        maintenance input held (running firmware stops; otherwise a reset with it held),
        then released at the prompt (docs/protocol.md section 5). Leaves the raw REPL and
        releases the port at exit. While inside, the UART belongs to the REPL (the radio
        channel's downlinks to this board are dropped)."""
        _, uart = self._require()
        with uart.io_lock:
            uart.pause()
            transport: SerialTransport | None = None
            try:
                transport = open_transport(self.pty_path, tap=uart.deliver)
                try:
                    enter_maintenance(transport, self.cable, timeout=timeout)
                except Exception as exc:
                    raise BoardError(
                        f"{self.name}: could not enter the raw REPL ({exc}), with the "
                        f"maintenance input held and after a reset; see {self.uart_log}"
                    ) from exc
                yield transport
            finally:
                if transport is not None:
                    try:
                        transport.exit_raw_repl()
                    finally:
                        transport.close()
                uart.resume()

    def exec(self, code: str, timeout: float = 10, *, idempotent: bool = False) -> str:
        """Runs code in the raw REPL and returns what it printed; BoardError carrying the
        board's traceback if it raised. idempotent: the code may safely run twice, so a
        failure (a byte lost on a busy host's line shows as a SyntaxError) is retried."""
        with self.repl() as transport:
            if idempotent:
                return board_files.run_idempotent(transport, code, timeout=timeout)
            return board_files.run(transport, code, timeout=timeout)

    def mem_free(self) -> int:
        return int(self.exec("import gc\ngc.collect()\nprint(gc.mem_free())").strip())

    # ------------------------------------------------------------------ files
    def flash(
        self,
        files: Mapping[str, bytes],
        *,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        """Writes files, verifies each on the board, rewrites what differs (FLASH_TRIES
        writes per file)."""
        with self.repl() as transport:
            board_files.flash_files(transport, files, progress=progress, tries=FLASH_TRIES)

    def verify(self, files: Mapping[str, bytes]) -> dict[str, board_files.FileCheck]:
        """Checks files on the board without writing anything."""
        with self.repl() as transport:
            return {name: board_files.check_file(transport, name, d) for name, d in files.items()}

    def list_files(self) -> dict[str, int]:
        with self.repl() as transport:
            return board_files.list_files(transport)

    def read_file(self, name: str) -> bytes:
        with self.repl() as transport:
            return board_files.read_file(transport, name)

    def remove_file(self, name: str) -> None:
        with self.repl() as transport:
            board_files.remove_file(transport, name)

    # ------------------------------------------------------------------- GPIO
    def set_pin(self, pin: str, level: int) -> None:
        """Drives a micro:bit input pin ("pin0", "pin1", "pin2") low (0) or high (1)."""
        line = pin_line(pin)
        machine, _ = self._require()
        machine.qtest.set_irq_in("/machine/nrf51", "unnamed-gpio-in", line, 1 if level else 0)

    def pulse(self, pin: str, count: int, high_ms: float = 40, low_ms: float = 40) -> None:
        """count pulses (high for high_ms, then low for low_ms); returns when done."""
        self.pulse_in_background(pin, count, high_ms, low_ms).wait()

    def pulse_in_background(
        self, pin: str, count: int, high_ms: float = 40, low_ms: float = 40
    ) -> PulseTrain:
        """Starts a pulse train in a thread; the handle has wait(), done, sent, cancel().
        Widths are guest time on a guest-paced board, host time otherwise."""
        pin_line(pin)
        guest = self._guest_time() if self.options.guest_paced else None
        return PulseTrain(self.set_pin, pin, count, high_ms, low_ms, guest)

    def _guest_time(self) -> GuestTime:
        """The guest clock pulses are held by, started if it is not running (never
        started, or stopped by a reset)."""
        machine = self._require()[0]
        first = machine.guest_us()
        time.sleep(0.005)  # 5 ms of host time: at least a few us of guest time if it runs
        if machine.guest_us() == first:
            machine.start_guest_clock()
        return GuestTime(
            lambda: self._require()[0].guest_us(), lambda: self._require()[0].start_guest_clock()
        )

    # ------------------------------------------------------------------- UART
    def read(self, n: int = 4096, timeout: float = 1.0) -> bytes:
        """Up to n bytes the board sent (b"" if none arrive within timeout)."""
        return self._require()[1].read(n, timeout)

    def read_until(self, token: bytes, timeout: float = 10.0) -> bytes:
        """Everything up to and including token; BoardError if it does not come."""
        uart = self._require()[1]
        data = uart.read_until(token, timeout)
        if not data:
            raise BoardError(
                f"{self.name}: {token!r} did not arrive within {timeout}s; last bytes "
                f"{uart.peek()[-200:]!r}; see {self.uart_log}"
            )
        return data

    def write(self, data: bytes) -> None:
        """Sends bytes to the board's UART (waits while a repl() session owns it)."""
        self._require()[1].write(data)

    def try_write(self, data: bytes) -> bool:
        """Sends bytes unless the board is off or in a repl() session; False if not sent."""
        uart = self._uart
        if uart is None or not self.running:
            return False
        return uart.try_write(data)

    def add_uart_listener(self, listener: UartListener) -> None:
        """listener(bytes) gets a copy of everything the board sends, across power cycles."""
        self._listeners.append(listener)
        if self._uart is not None:
            self._uart.add_listener(listener)

    def remove_uart_listener(self, listener: UartListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
        if self._uart is not None:
            self._uart.remove_listener(listener)

    def __repr__(self) -> str:
        state = "running" if self.running else "off"
        return f"EmulatedBoard({self.name!r}, {state}, uart={self.pty_path!r})"


class BoardCable:
    """An EmulatedBoard's programming cable (meterlink.boardlink.transport.MaintenanceCable)."""

    def __init__(self, board: EmulatedBoard) -> None:
        self._board = board

    def hold(self, held: bool) -> None:
        if self._board.running:
            self._board.set_pin(MAINTENANCE_PIN, 1 if held else 0)

    def reset(self) -> None:
        self._board.reset()


@atexit.register
def _close_all_boards() -> None:
    for board in list(_live_boards):
        with contextlib.suppress(Exception):  # exiting anyway; processes' hook kills QEMU
            board.close()
