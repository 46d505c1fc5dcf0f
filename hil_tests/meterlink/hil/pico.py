"""An emulated Raspberry Pi Pico (RP2040 on rp2040js, in Node) running MicroPython v1.27.0,
driven from tests like EmulatedBoard: the USB console is a pty that mpremote and
`meterlink provision` open as they would a real Pico's /dev/ttyACM0, UART0 is the
radio-modem line (RadioChannel plugs in), GPIO inputs are driven by number, pulses are
timed in guest time, and a power cut keeps the littlefs image.

The emulator and its fixes live in hil_tests/rp2040js/pico.mjs; docs/hil.md ("The Pico")
says what it models and what it does not.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import socket
import subprocess
import threading
import time
import tty
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from mpremote.transport_serial import SerialTransport

from meterlink.boardlink import files as board_files
from meterlink.boardlink.errors import BoardError
from meterlink.boardlink.transport import enter_raw_repl, open_transport
from meterlink.hil.processes import kill_child, spawn_child
from meterlink.hil.rp2_firmware import find_bootrom, find_uf2
from meterlink.hil.uart import ReceivedBytes, UartListener, UartLog, UartPump

RUNNER_DIR = Path(__file__).resolve().parents[2] / "rp2040js"
RUNNER = RUNNER_DIR / "pico.mjs"
FS_IMAGE_BYTES = 1408 * 1024  # RPI_PICO's littlefs region (flash 0xA0000..0x200000)
_PROMPT = b">>> "
_live: weakref.WeakSet[EmulatedPico] = weakref.WeakSet()


def runner_missing() -> str | None:
    """Why the emulator cannot start here (None if it can): the npm package or firmware."""
    if not (RUNNER_DIR / "node_modules" / "rp2040js").is_dir():
        return f"rp2040js is not installed: run `make setup` (npm install in {RUNNER_DIR})"
    try:
        find_uf2()
        find_bootrom()
    except RuntimeError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class GuestTime:
    """Where the chip's time went since power-on (all guest nanoseconds)."""

    guest_ns: int  # the chip's clock
    active_ns: int  # executing instructions
    idle_ns: int  # WFI/WFE with clocks running (time.sleep_ms, an idle REPL)
    deep_sleep_ns: int  # WFI with SLEEPDEEP set (machine.lightsleep)
    wakeups: int  # times the core left WFI/WFE
    boots: int
    wall_s: float  # the emulator's wall clock


class _ByteSocket:
    """A loopback TCP byte stream to the emulator that reconnects after a hang-up (the
    emulator hangs up the USB console on a chip reset, as a real port vanishes)."""

    def __init__(self, port: int, name: str, deliver: Callable[[bytes], None]) -> None:
        self.port = port
        self._deliver = deliver
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            except OSError:
                self._stop.wait(0.05)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(0.1)
            with self._lock:
                self._sock = sock
            try:
                while not self._stop.is_set():
                    try:
                        data = sock.recv(4096)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    self._deliver(data)
            except OSError:
                pass
            finally:
                with self._lock:
                    self._sock = None
                sock.close()

    def send(self, data: bytes) -> bool:
        with self._lock:
            sock = self._sock
        if sock is None:
            return False
        try:
            sock.sendall(data)
            return True
        except OSError:
            return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


class _ConsoleBridge:
    """The USB console as a pty: bytes between the emulator's console socket and the pty
    master, so programs open the slave path as a serial port."""

    def __init__(self, port: int, name: str) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._sock = _ByteSocket(port, f"usb-{name}", self._to_pty)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._from_pty, name=f"usb-in-{name}", daemon=True)
        self._thread.start()

    def _to_pty(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._stop.is_set():
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            except OSError:
                return
            view = view[n:]

    def _from_pty(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self._master, 4096)
            except OSError:
                if self._stop.wait(0.05):
                    return
                continue
            # bytes typed while the port is gone (chip reset) are lost, as on USB
            self._sock.send(data)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(2.0)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class _ModemLine(ReceivedBytes):
    """UART0 seen from the radio modem's side: everything the chip sends goes to the log
    and the listeners; writes go to the chip's RX pin (the emulator paces them)."""

    def __init__(self, port: int, name: str, log: UartLog) -> None:
        super().__init__()
        self._log = log
        self._listeners: list[UartListener] = []
        self._sock = _ByteSocket(port, f"uart0-{name}", self._deliver)
        deadline = time.monotonic() + 5
        while not self._sock.send(b"") and time.monotonic() < deadline:
            time.sleep(0.01)

    def _deliver(self, data: bytes) -> None:
        self._log.append(data)
        self._received(data)
        for listener in list(self._listeners):
            listener(data)

    def close(self) -> None:
        self._sock.close()


class EmulatedPico:
    """One emulated Pico. Files in workdir: `<name>-usb.log` (the console), `<name>-uart0.log`
    (the modem line), `<name>-emulator.log`, `<name>-fs-cutN.img` (littlefs images)."""

    def __init__(
        self,
        workdir: Path,
        *,
        name: str = "pico",
        uf2: Path | None = None,
        fs_image: Path | None = None,
        speed: float = 1.0,
        boot_timeout: float = 20.0,
        without: tuple[str, ...] = (),
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.uf2 = Path(uf2) if uf2 is not None else find_uf2()
        self.bootrom = find_bootrom()
        self.fs_image = Path(fs_image) if fs_image is not None else None
        self.speed = speed  # guest time at most this many times wall time (0: no cap)
        self.boot_timeout = boot_timeout
        self.without = without  # emulator fixes left out ("uart-fix", "flash-model")
        self.usb_log = self.workdir / f"{name}-usb.log"
        self.uart_log = self.workdir / f"{name}-uart0.log"
        self.emulator_log = self.workdir / f"{name}-emulator.log"
        self.boot_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._ports: dict[str, int] = {}
        self._ctrl: socket.socket | None = None
        self._ctrl_file: object = None
        self._ctrl_lock = threading.Lock()
        self._bridge: _ConsoleBridge | None = None
        self._usb: UartPump | None = None
        self._modem: _ModemLine | None = None
        self._usb_log: UartLog | None = None
        self._uart_log: UartLog | None = None
        self._listeners: list[UartListener] = []
        self._cuts = 0
        self.rises_at_cut = 0  # rising edges the pulse trains made before the last cut
        self._lock = threading.RLock()
        _live.add(self)

    # ------------------------------------------------------------------ power
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pty_path(self) -> str:
        """The USB console's serial port (as /dev/ttyACM0 on a laptop)."""
        return self._bridge.path if self._bridge else ""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(
        self, *, wait_for_repl: bool | None = None, pins: Mapping[int, int] | None = None
    ) -> None:
        """Powers the chip on (from fs_image if set). Waits for the REPL unless the
        filesystem may hold a main.py (wait_for_repl defaults to `fs_image is None`).
        pins: GPIO input levels set before the first instruction runs."""
        if wait_for_repl is None:
            wait_for_repl = self.fs_image is None
        with self._lock:
            if self.running:
                raise BoardError(f"{self.name} is already running; close() or power_cut() first")
            if self._usb_log is None:
                self._usb_log = UartLog(self.usb_log)
                self._uart_log = UartLog(self.uart_log)
            t0 = time.monotonic()
            argv = ["node", str(RUNNER), "--uf2", str(self.uf2), "--bootrom", str(self.bootrom),
                    "--speed", str(self.speed)]  # fmt: skip
            if self.fs_image is not None:
                argv += ["--fs", str(self.fs_image)]
            if self.without:
                argv += ["--without", ",".join(self.without)]
            with self.emulator_log.open("ab") as err:
                proc = spawn_child(argv, stdout=subprocess.PIPE, stderr=err, cwd=str(RUNNER_DIR),
                                   own_process_group=True)  # fmt: skip
            self._proc = proc
            try:
                self._ports = self._read_ports(proc)
                self._ctrl = socket.create_connection(
                    ("127.0.0.1", self._ports["ctrl"]), timeout=30
                )
                self._ctrl_file = self._ctrl.makefile("r")
                for gpio, level in (pins or {}).items():
                    self.set_pin(gpio, level)
                self._bridge = _ConsoleBridge(self._ports["console"], self.name)
                assert self._uart_log is not None
                self._modem = _ModemLine(self._ports["uart0"], self.name, self._uart_log)
                for listener in self._listeners:
                    self._modem._listeners.append(listener)
                self._usb = UartPump(self._bridge.path, self._usb_log, self.name)
            except Exception:
                self._teardown()
                raise
        if wait_for_repl:
            self._wait_prompt("after power-on")
            self.boot_seconds = time.monotonic() - t0

    def _read_ports(self, proc: subprocess.Popen[bytes]) -> dict[str, int]:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else b""
        if not line:
            raise BoardError(f"{self.name}: the emulator did not start; see {self.emulator_log}")
        ports: dict[str, int] = json.loads(line)
        return ports

    def _wait_prompt(self, when: str) -> None:
        usb = self._require_usb()
        deadline = time.monotonic() + self.boot_timeout
        while time.monotonic() < deadline:
            usb.write(b"\r")  # the REPL answers a new line with a prompt
            if usb.read_until(_PROMPT, 0.5):
                return
        raise BoardError(f"{self.name} did not reach the REPL prompt {when}; see {self.usb_log}")

    def _teardown(self) -> None:
        for part in (self._usb, self._modem, self._bridge):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
        self._usb = self._modem = self._bridge = None
        if self._ctrl is not None:
            with contextlib.suppress(OSError):
                self._ctrl.close()
            self._ctrl = None
        if self._proc is not None:
            kill_child(self._proc)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None

    def close(self) -> None:
        """Ends the emulator and releases everything; safe to call twice."""
        with self._lock:
            self._teardown()
            for log in (self._usb_log, self._uart_log):
                if log is not None:
                    log.close()
            self._usb_log = self._uart_log = None

    def __enter__(self) -> EmulatedPico:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def command(self, line: str, timeout: float = 30.0) -> str:
        """One command to the emulator's control port (pico.mjs lists them)."""
        with self._ctrl_lock:
            sock, reader = self._ctrl, self._ctrl_file
            if sock is None or reader is None:
                raise BoardError(f"{self.name} is not running; call start() or power_on()")
            sock.settimeout(timeout)
            sock.sendall(line.encode() + b"\n")
            reply: str = reader.readline().strip()  # type: ignore[attr-defined]
        if not reply or reply.startswith("err"):
            raise BoardError(f"{self.name}: emulator refused {line!r}: {reply or 'no reply'}")
        return reply

    def reset(self, *, wait_for_repl: bool = False) -> None:
        """A chip reset (the RUN pin): RAM lost, flash kept, main.py boots if present."""
        usb = self._require_usb()
        usb.clear()
        self.command("reset")
        if wait_for_repl:
            self._wait_prompt("after reset")

    def power_cut(self) -> Path:
        """Stops the CPU where it is, saves the littlefs region, ends the emulator. The
        image is used by the next power_on()."""
        with self._lock:
            if not self.running:
                raise BoardError(f"{self.name} is not running")
            self._cuts += 1
            image = self.workdir / f"{self.name}-fs-cut{self._cuts}.img"
            self.rises_at_cut = int(json.loads(self.command(f"cut {image}"))["rises"])
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(5)
            self._teardown()
            self.fs_image = image
            return image

    def power_on(
        self, *, wait_for_repl: bool = False, pins: Mapping[int, int] | None = None
    ) -> None:
        self.start(wait_for_repl=wait_for_repl, pins=pins)

    def save_fs_image(self, path: Path) -> Path:
        """The littlefs region as it is now (the chip keeps running)."""
        self.command(f"save {path}")
        return path

    def guest_time(self) -> GuestTime:
        return GuestTime(**json.loads(self.command("time")))

    def set_speed(self, speed: float) -> None:
        """Caps guest time at speed x wall time from now on (0: as fast as the host runs)."""
        self.command(f"speed {speed}")
        self.speed = speed

    def set_vsys(self, millivolts: int) -> None:
        """The supply voltage the board measures on ADC3 (a draining battery)."""
        self.command(f"vsys {int(millivolts)}")

    # ------------------------------------------------------------------- GPIO
    def set_pin(self, gpio: int, level: int) -> None:
        """Drives GPIO `gpio`'s input level (0 or 1)."""
        self.command(f"pin {int(gpio)} {1 if level else 0}")

    def pin_state(self, gpio: int) -> dict[str, int]:
        """{"oe", "out", "in"}: output enable, output value and input level of a GPIO."""
        state: dict[str, int] = json.loads(self.command(f"get {int(gpio)}"))
        return state

    def pulses(
        self, gpio: int, count: int, high_ms: float = 20, low_ms: float = 20, *, wait: bool = True
    ) -> None:
        """count pulses on a GPIO timed by the chip's clock (exact in guest time whatever
        the host's load); waits until they are all sent unless wait=False."""
        self.command(f"pulses {int(gpio)} {int(count)} {int(high_ms * 1000)} {int(low_ms * 1000)}")
        if wait:
            guest_s = count * (high_ms + low_ms) / 1000
            deadline = time.monotonic() + 60 + guest_s * 30
            while self.pulses_left() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.pulses_left():
                raise BoardError(f"{self.name}: pulses not sent in time")

    def pulses_left(self) -> int:
        return int(self.command("pulses?"))

    def rises(self) -> int:
        """Rising edges the pulse trains have made since this power-on."""
        return int(self.command("rises"))

    # --------------------------------------------------------------- console
    def _require_usb(self) -> UartPump:
        if self._usb is None or not self.running:
            raise BoardError(f"{self.name} is not running (powered off or closed)")
        return self._usb

    def read_until(self, token: bytes, timeout: float = 10.0) -> bytes:
        """The USB console up to and including token; BoardError if it does not come."""
        usb = self._require_usb()
        data = usb.read_until(token, timeout)
        if not data:
            raise BoardError(
                f"{self.name}: {token!r} did not arrive on USB within {timeout}s; last bytes "
                f"{usb.peek()[-200:]!r}; see {self.usb_log}"
            )
        return data

    @contextmanager
    def released(self) -> Iterator[str]:
        """Hands the USB console to another program (mpremote, `meterlink provision`):
        yields its pty path."""
        usb = self._require_usb()
        with usb.io_lock:
            usb.pause()
            try:
                yield self.pty_path
            finally:
                usb.resume()

    @contextmanager
    def repl(self, timeout: float = 10.0) -> Iterator[SerialTransport]:
        """mpremote's SerialTransport in raw REPL on the USB console (the firmware is
        interrupted by the maintenance break first)."""
        usb = self._require_usb()
        with usb.io_lock:
            usb.pause()
            transport: SerialTransport | None = None
            try:
                transport = open_transport(self.pty_path, tap=usb.deliver)
                try:
                    enter_raw_repl(transport, timeout=timeout)
                except Exception as exc:
                    raise BoardError(f"{self.name}: no raw REPL on USB ({exc})") from exc
                yield transport
            finally:
                if transport is not None:
                    try:
                        with contextlib.suppress(Exception):
                            transport.exit_raw_repl()
                    finally:
                        transport.close()
                usb.resume()

    def exec(self, code: str, timeout: float = 30, *, idempotent: bool = False) -> str:
        with self.repl() as transport:
            if idempotent:
                return board_files.run_idempotent(transport, code, timeout=timeout)
            return board_files.run(transport, code, timeout=timeout)

    def flash(
        self, files: Mapping[str, bytes], *, progress: Callable[[str, int, int], None] | None = None
    ) -> None:
        """Writes files to littlefs, verifies each on the chip, rewrites what differs."""
        with self.repl() as transport:
            board_files.flash_files(transport, files, progress=progress)

    def list_files(self) -> dict[str, int]:
        with self.repl() as transport:
            return board_files.list_files(transport)

    def read_file(self, name: str) -> bytes:
        with self.repl() as transport:
            return board_files.read_file(transport, name)

    # -------------------------------------------------------- modem (UART0)
    def add_uart_listener(self, listener: UartListener) -> None:
        """listener(bytes) gets everything the chip sends on UART0, across power cycles."""
        self._listeners.append(listener)
        if self._modem is not None:
            self._modem._listeners.append(listener)

    def remove_uart_listener(self, listener: UartListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
        if self._modem is not None and listener in self._modem._listeners:
            self._modem._listeners.remove(listener)

    def try_write(self, data: bytes) -> bool:
        """Bytes into UART0 RX (from the modem); False if the chip is off."""
        modem = self._modem
        return modem is not None and self.running and modem._sock.send(data)

    def modem_read_until(self, token: bytes, timeout: float = 10.0) -> bytes:
        modem = self._modem
        if modem is None:
            raise BoardError(f"{self.name} is not running")
        data = modem.read_until(token, timeout)
        if not data:
            raise BoardError(f"{self.name}: {token!r} not seen on UART0 within {timeout}s")
        return data

    def take_modem_bytes(self) -> bytes:
        """What the chip sent on UART0 since the last call (then forgotten)."""
        modem = self._modem
        if modem is None:
            return b""
        with modem._cond:
            data = bytes(modem._buf)
            modem._buf.clear()
        return data

    def modem_bytes(self) -> bytes:
        """What the chip sent on UART0 and nobody has read with modem_read_until yet."""
        return self._modem.peek() if self._modem else b""

    def __repr__(self) -> str:
        state = "running" if self.running else "off"
        return f"EmulatedPico({self.name!r}, {state}, usb={self.pty_path!r})"


@atexit.register
def _close_all() -> None:
    for pico in list(_live):
        with contextlib.suppress(Exception):
            pico.close()
