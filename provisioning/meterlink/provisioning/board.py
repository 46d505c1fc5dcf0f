"""A session with a module over its serial port: maintenance (the programming cable's
maintenance input), raw REPL, identity, free flash. Uses mpremote's SerialTransport, the
same transport the HIL harness uses."""

from __future__ import annotations

import ast
import contextlib
import io
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from mpremote.transport import TransportError

from meterlink.boardlink.transport import (
    MaintenanceCable,
    SerialLinesCable,
    enter_maintenance,
    enter_raw_repl,
    open_transport,
)
from meterlink.provisioning.errors import (
    BoardNotResponding,
    NotEnoughFlash,
    PortBusy,
    UnsupportedBoard,
)
from meterlink.provisioning.ports import check_port

# Board families the firmware is built for: a substring of os.uname().machine, and the
# oldest MicroPython that runs the firmware.
BOARD_FAMILIES = {
    "nrf51": ("nRF51822", (1, 9, 2)),
    "rp2": ("RP2040", (1, 20, 0)),
}

_IDENTIFY = (
    "import os,sys\n"
    "u=os.uname()\n"
    "print(repr((u.machine,u.release,u.version,tuple(sys.implementation.version))))\n"
)

# micro:bit's filesystem has no statvfs: measure free space by writing a probe file on
# the board until it is full, then removing it (one page-erase cycle; nRF51 flash is
# rated for 20,000). Chunks are 128 bytes of which 126 hold data.
_PROBE_NAME = ".mlfree"
_FREE_PROBE = (
    "import os\n"
    "n=0\n"
    "f=open('" + _PROBE_NAME + "','wb')\n"
    "b=bytes(126)\n"
    "try:\n"
    " while True:\n"
    "  f.write(b)\n"
    "  n+=126\n"
    "except OSError:\n"
    " pass\n"
    "try:\n"
    " f.close()\n"
    "except OSError:\n"
    " pass\n"
    "try:\n"
    " os.remove('" + _PROBE_NAME + "')\n"
    "except OSError:\n"
    " pass\n"
    "print(n)\n"
)
_STATVFS = "import os\ns=os.statvfs('/')\nprint(s[0]*s[4])\n"
NRF51_CHUNK_DATA = 126


@dataclass(frozen=True)
class BoardInfo:
    family: str  # a key of BOARD_FAMILIES
    machine: str
    micropython: tuple[int, ...]
    release: str

    @property
    def micropython_str(self) -> str:
        return ".".join(str(v) for v in self.micropython)

    @property
    def imports_mpy(self) -> bool:
        """MicroPython 1.9.2 on the nRF51 rejects .mpy files; current ports load them."""
        return self.family != "nrf51"


def classify_board(
    machine: str, micropython: tuple[int, ...], release: str = "", expected: str | None = None
) -> BoardInfo:
    """The board family for what `os.uname()` reported, or an installer-facing error."""
    supported = ", ".join(f"{fam} ({sub})" for fam, (sub, _) in BOARD_FAMILIES.items())
    found = [
        (fam, min_v)
        for fam, (needle, min_v) in BOARD_FAMILIES.items()
        if needle.lower() in machine.lower()
    ]
    if not found:
        raise UnsupportedBoard(
            f"the module reports board {machine!r}, which the firmware does not support "
            f"(supported: {supported})",
            "fit a supported module; this one cannot be provisioned",
        )
    family, min_version = found[0]
    version = tuple(micropython)
    if version < min_version:
        need = ".".join(str(v) for v in min_version)
        have = ".".join(str(v) for v in version)
        raise UnsupportedBoard(
            f"the module runs MicroPython {have}; the firmware for {family} needs {need} or later",
            f"update MicroPython on the module to {need} or later, then run again",
        )
    if expected is not None and expected != family:
        raise UnsupportedBoard(
            f"wrong board: expected a {expected} module, found {family} ({machine})",
            f"fit a {expected} module, or run with --board {family} if this one is right",
        )
    return BoardInfo(family, machine, version, release)


class BoardSession:
    """The module at `port`, in its raw REPL; close() leaves it at the friendly REPL.
    `cable` drives the module's maintenance input and reset (default: the port's DTR and
    RTS lines, docs/installer.md)."""

    def __init__(
        self,
        port: str,
        *,
        break_timeout: float = 10.0,
        cable: MaintenanceCable | None = None,
    ) -> None:
        self.port = port
        self._cable = cable
        check_port(port)
        try:
            self.transport = open_transport(port, read_timeout=5.0)
        except (TransportError, OSError) as exc:
            raise PortBusy(
                f"serial port {port} could not be opened ({exc})",
                "close any other program using the port and run again",
            ) from exc
        if self._cable is None:
            self._cable = SerialLinesCable(self.transport)
        try:
            self._enter_repl(break_timeout, maintenance=True)
        except BaseException:
            self.transport.close()
            raise

    def _enter_repl(self, timeout: float, *, maintenance: bool = False) -> None:
        # The firmware owns the UART while it runs and nothing sent on it stops it (the
        # radio shares the line): maintenance needs the maintenance input, held by the
        # cable (protocol section 5). Once in, the REPL is entered again without it.
        # Retried: a board that is still booting may miss the first try.
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # mpremote prints on failure
                    if maintenance and self._cable is not None:
                        enter_maintenance(self.transport, self._cable, timeout=5.0)
                    else:
                        enter_raw_repl(self.transport, timeout=3.0)
                return
            except (TransportError, OSError) as exc:
                last = exc
        raise BoardNotResponding(
            f"no MicroPython prompt on {self.port} with the maintenance input held ({last})",
            "check this is the module's port and that it has power; if the cable does not "
            "drive the maintenance input, hold it (pin8 to 3V on the micro:bit) and press "
            "reset, then run again",
        )

    def exec(self, code: str, timeout: float = 10.0) -> bytes:
        """Runs code in the raw REPL; raises BoardNotResponding on a board-side error."""
        try:
            self.transport.exec_raw_no_follow(code)
            out, err = self.transport.follow(timeout)
        except TransportError as exc:
            raise BoardNotResponding(
                f"the module stopped answering on {self.port} ({exc})",
                "check the cable and the module's power, then run again: the steps done "
                "so far are kept",
            ) from exc
        if err:
            raise BoardNotResponding(
                f"the module reported an error: {err.decode(errors='replace').strip()}",
                "run again; if it repeats, switch the module off and on",
            )
        return bytes(out)

    def eval(self, code: str, timeout: float = 10.0) -> Any:
        """Runs a read-only snippet and parses what it printed. Retried: bytes sent to
        the raw REPL have been seen to go missing (a SyntaxError on the board, or no
        answer at all from a board starved of CPU); after no answer the raw REPL is
        entered again first."""
        for attempt in range(3):
            try:
                return ast.literal_eval(self.exec(code, timeout).decode().strip())
            except (BoardNotResponding, ValueError, SyntaxError) as exc:
                silent = isinstance(exc.__cause__, TransportError)
                if attempt == 2 or not (
                    silent or "SyntaxError" in str(exc) or isinstance(exc, ValueError | SyntaxError)
                ):
                    raise
                if silent:
                    self._enter_repl(10.0)
        raise AssertionError("unreachable")

    def identify(self, expected: str | None = None) -> BoardInfo:
        machine, release, _version, mp = self.eval(_IDENTIFY)
        return classify_board(machine, tuple(mp), release, expected)

    def free_bytes(self, board: BoardInfo) -> int:
        if board.family == "nrf51":
            return int(self.eval(_FREE_PROBE, timeout=30))
        return int(self.eval(_STATVFS))

    def file_sizes(self) -> dict[str, int]:
        """Every file on the module and its size (micro:bit has os.size, others os.stat)."""
        code = (
            "import os\n"
            "z=getattr(os,'size',None) or (lambda n:os.stat(n)[6])\n"
            "print(repr(dict((n,z(n)) for n in os.listdir())))\n"
        )
        sizes: dict[str, int] = self.eval(code, timeout=30)
        return sizes

    def reset(self) -> None:
        """Hard-resets the module so it boots the firmware; the session ends."""
        with contextlib.suppress(TransportError, OSError):
            self.transport.exec_raw_no_follow("import machine\nmachine.reset()\n")
        self.close()

    def close(self) -> None:
        try:
            if self.transport.in_raw_repl:
                self.transport.exit_raw_repl()
        except (OSError, TransportError):
            pass
        self.transport.close()

    def __enter__(self) -> BoardSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def nrf51_chunks(name: str, size: int) -> int:
    """128-byte chunks a file takes in the micro:bit filesystem (header: 2 + name)."""
    return -(-(size + 2 + len(name)) // NRF51_CHUNK_DATA)


def check_space(board: BoardInfo, free: int, current: dict[str, int], new: dict[str, int]) -> None:
    """Raises NotEnoughFlash unless the files in `new` fit after replacing those of the
    same name in `current` (free space measured with the probe / statvfs)."""
    if board.family == "nrf51":
        free_chunks = free // NRF51_CHUNK_DATA
        freed = sum(nrf51_chunks(n, s) for n, s in current.items() if n in new)
        needed = sum(nrf51_chunks(n, s) for n, s in new.items())
        available, need = (free_chunks + freed) * NRF51_CHUNK_DATA, needed * NRF51_CHUNK_DATA
    else:
        available = free + sum(s for n, s in current.items() if n in new)
        need = sum(new.values()) + 4096 * len(new)  # a block per file, rounded up
    if need > available:
        others = sorted(((s, n) for n, s in current.items() if n not in new), reverse=True)[:5]
        listing = ", ".join(f"{n} ({s} B)" for s, n in others) or "none"
        raise NotEnoughFlash(
            f"not enough flash on the module: the firmware needs {need} bytes, "
            f"{available} are available (other files on the module: {listing})",
            "run again with --erase-other-files to remove the files that are not part of "
            "the firmware",
        )
