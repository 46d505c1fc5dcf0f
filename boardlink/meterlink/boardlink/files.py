"""Files on a MicroPython 1.9.2 board (micro:bit filesystem) through mpremote's transport
in raw REPL. Shared by the HIL harness and provisioning of real boards.

This firmware has no os.stat / ilistdir / binascii / hashlib, and bytes written through
the raw REPL have been seen to go missing, so every file is checked after writing: its
size (os.size; os.stat on current ports) and an Adler-32 computed on the board over
64-byte chunks, compared with the host's zlib.adler32. What differs is written again.

All functions expect the transport to be in raw REPL already.
"""

from __future__ import annotations

import ast
import contextlib
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

from meterlink.boardlink.errors import BoardError
from meterlink.boardlink.transport import RAW_REPL_TRY_S

_T = TypeVar("_T")

WRITE_CHUNK = 64  # bytes per f.write() call
EXEC_SOURCE_BUDGET = 1024  # source bytes per exec: the board compiles it in ~9 KB of heap
READ_CHUNKS_PER_EXEC = 8
MAX_TRIES = 3
# What mpremote's exec_raw raises when the raw REPL's `>` prompt does not come (a byte
# lost on the line, or a board that had not answered yet): before it sends any code.
_NO_PROMPT = "could not enter raw repl"

ProgressCallback = Callable[[str, int, int], None]

_CHECKSUM_CODE = """import os
_a=1
_b=0
_f=open({name!r},'rb')
while 1:
 _c=_f.read(64)
 if not _c:
  break
 for _x in _c:
  _a=(_a+_x)%65521
  _b=(_b+_a)%65521
_f.close()
print((getattr(os,'size',None) or (lambda n:os.stat(n)[6]))({name!r}),_a,_b)
del _a,_b,_c,_f
"""


@dataclass(frozen=True)
class FileCheck:
    """What the board reports about one file, against what was expected."""

    name: str
    expected_size: int
    expected_adler32: int
    size: int | None  # None: the file is missing
    adler32: int | None

    @property
    def ok(self) -> bool:
        return self.size == self.expected_size and self.adler32 == self.expected_adler32

    def describe(self) -> str:
        if self.size is None:
            return f"{self.name}: missing on the board"
        if self.size != self.expected_size:
            return f"{self.name}: {self.size} bytes on the board, expected {self.expected_size}"
        if self.adler32 != self.expected_adler32:
            return (
                f"{self.name}: content differs (Adler-32 {self.adler32:#010x} on the board, "
                f"expected {self.expected_adler32:#010x})"
            )
        return f"{self.name}: ok"


def _garbled(err: bytes) -> bool:
    """The board could not compile what it was sent: a SyntaxError in <stdin> itself."""
    text = err.decode(errors="replace")
    return '"<stdin>"' in text and text.rstrip().splitlines()[-1].startswith("SyntaxError")


def run(transport: SerialTransport, code: str, timeout: float = 10.0,
        tries: int = MAX_TRIES) -> str:
    """Runs code in the raw REPL; returns its stdout; BoardError with the board's
    traceback if it raised.

    Code the board could not compile is sent again (up to `tries` times): a byte lost
    on a busy or noisy line shows up as a SyntaxError, and code that did not compile
    never ran, so sending it again is safe whatever it does. So is code not sent at all
    because the raw REPL's prompt did not come: the raw REPL is entered again first."""
    for attempt in range(tries):
        try:
            out, err = transport.exec_raw(code, timeout=timeout)
        except TransportError as exc:
            if str(exc) == _NO_PROMPT and attempt < tries - 1:
                with contextlib.suppress(TransportError):
                    transport.enter_raw_repl(soft_reset=False, timeout_overall=RAW_REPL_TRY_S)
                continue
            raise BoardError(f"the board did not run the code: {exc}") from exc
        if err and _garbled(err) and attempt < tries - 1:
            continue
        if err:
            raise BoardError(f"the board raised:\n{err.decode(errors='replace').strip()}")
        text: str = out.decode(errors="replace")
        return text
    raise AssertionError("unreachable")


def run_idempotent(
    transport: SerialTransport, code: str, timeout: float = 10.0, tries: int = MAX_TRIES
) -> str:
    """run() for code that may safely run twice, retried if it fails: a byte lost on the
    line turns `f.read` into `f.rea`, which the next try does not repeat."""
    for attempt in range(tries):
        try:
            return run(transport, code, timeout, tries=1)
        except BoardError:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def _check_name(name: str) -> None:
    if not name or "/" in name or len(name.encode()) > 120 or not name.isprintable():
        raise ValueError(
            f"file name {name!r} cannot be used on this board: use a flat name without '/' "
            "(the micro:bit filesystem has no directories)"
        )


def write_file(
    transport: SerialTransport,
    name: str,
    data: bytes,
    *,
    progress: ProgressCallback | None = None,
) -> None:
    """Writes data to name (replacing it) in WRITE_CHUNK pieces; does not verify."""
    _check_name(name)
    statements = [f"w({data[i : i + WRITE_CHUNK]!r})" for i in range(0, len(data), WRITE_CHUNK)]
    head = f"_f=open({name!r},'wb')\nw=_f.write\n"
    batch: list[str] = []
    size = 0
    done = 0
    try:
        for i, stmt in enumerate(statements):
            batch.append(stmt)
            size += len(stmt) + 1
            last = i == len(statements) - 1
            if size >= EXEC_SOURCE_BUDGET or last:
                run(transport, head + "\n".join(batch))
                head = ""
                done = min(len(data), (i + 1) * WRITE_CHUNK)
                if progress is not None:
                    progress(name, done, len(data))
                batch, size = [], 0
        run(transport, (head if head else "") + "_f.close()\ndel _f,w\n")
    except BoardError as exc:
        _close_quietly(transport)
        if "ENOSPC" in str(exc) or "OSError: 28" in str(exc):
            raise BoardError(
                f"writing {name}: the board's filesystem is full; remove files first "
                f"(list them with list_files)\n{exc}"
            ) from exc
        raise BoardError(f"writing {name} failed after {done} of {len(data)} bytes: {exc}") from exc
    if progress is not None and not data:
        progress(name, 0, 0)


def _close_quietly(transport: SerialTransport) -> None:
    with contextlib.suppress(Exception):  # best effort: a failure is already being reported
        transport.exec_raw("try:\n _f.close()\nexcept Exception:\n pass\n", timeout=5)


def check_file(transport: SerialTransport, name: str, data: bytes) -> FileCheck:
    """Compares name on the board with data (size and board-side Adler-32)."""
    _check_name(name)
    expected = zlib.adler32(data)
    if name not in list_files(transport):
        return FileCheck(name, len(data), expected, None, None)
    size, a, b = _run_parsed(
        transport, _CHECKSUM_CODE.format(name=name), _three_ints, f"checking {name}", timeout=60
    )
    return FileCheck(name, len(data), expected, size, (b << 16) | a)


def _three_ints(out: str) -> tuple[int, int, int]:
    size, a, b = (int(x) for x in out.split()[-3:])
    return size, a, b


def verify_file(transport: SerialTransport, name: str, data: bytes) -> bool:
    """True if name on the board holds exactly data."""
    return check_file(transport, name, data).ok


def list_files(transport: SerialTransport) -> dict[str, int]:
    """Every file on the board with its size in bytes."""
    return _run_parsed(
        transport,
        "import os\n_z=getattr(os,'size',None) or (lambda n:os.stat(n)[6])\n"
        "for _n in os.listdir():\n print(repr(_n),_z(_n))\n",
        _parse_listing,
        "listing the files",
    )


_GARBLED_TRIES = 3


def _parse_listing(out: str) -> dict[str, int]:
    files: dict[str, int] = {}
    for line in out.splitlines():
        line = line.strip()
        if not line:
            continue
        quoted, _, size = line.rpartition(" ")
        name = ast.literal_eval(quoted)
        if not isinstance(name, str):
            raise ValueError(f"not a file name: {quoted!r}")
        files[name] = int(size)
    return files


def _run_parsed(
    transport: SerialTransport, code: str, parse: Callable[[str], _T], what: str,
    timeout: float = 10.0,
) -> _T:
    """run_idempotent(code), its answer parsed; an answer garbled on the line (parse raises
    ValueError or SyntaxError) is read again, up to _GARBLED_TRIES times, then a BoardError
    that says what to do."""
    for _ in range(_GARBLED_TRIES):
        out = run_idempotent(transport, code, timeout=timeout)
        try:
            return parse(out)
        except (ValueError, SyntaxError):
            continue
    raise BoardError(
        f"{what}: the board's answer arrived garbled {_GARBLED_TRIES} times "
        f"(last: {out[-120:]!r}); the serial line loses bytes: check the cable, close other "
        "programs using the port, and run the command again"
    )


def remove_file(transport: SerialTransport, name: str) -> None:
    """Removes name; no error if it does not exist."""
    _check_name(name)
    run_idempotent(transport, f"import os\ntry:\n os.remove({name!r})\nexcept OSError:\n pass\n")


def read_file(transport: SerialTransport, name: str, tries: int = MAX_TRIES) -> bytes:
    """Reads name in 64-byte chunks (a whole file at once can exhaust the heap) and checks
    the result against the board's own size and Adler-32; read again from the start, up
    to `tries` times, when that fails. A byte lost on the line can turn the chunk loop
    into code that still compiles and runs (`break` and the next line's `print` joined
    into `breaknt`, seen under load): that loop had read chunks it never printed, so only
    a read from the start gives the file."""
    _check_name(name)
    if name not in list_files(transport):
        raise BoardError(f"{name}: no such file on the board")
    for attempt in range(tries):
        try:
            return _read_once(transport, name)
        except BoardError:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def _read_once(transport: SerialTransport, name: str) -> bytes:
    chunks: list[bytes] = []
    run(transport, f"_f=open({name!r},'rb')\n")
    try:
        while True:
            out = run(
                transport,
                f"for _i in range({READ_CHUNKS_PER_EXEC}):\n"
                " _c=_f.read(64)\n if not _c:\n  print('EOF')\n  break\n print(repr(_c))\n",
            )
            lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
            for line in lines:
                if line == "EOF":
                    break
                chunks.append(ast.literal_eval(line))
            if lines and lines[-1] == "EOF":
                break
            if not lines:
                raise BoardError(f"reading {name}: the board printed nothing")
    finally:
        run_idempotent(transport, "try:\n _f.close()\n del _f\nexcept NameError:\n pass\n")
    data = b"".join(chunks)
    check = check_file(transport, name, data)
    if not check.ok:
        raise BoardError(f"reading {name} differs from the board's copy: {check.describe()}")
    return data


def flash_files(
    transport: SerialTransport,
    files: Mapping[str, bytes],
    *,
    progress: ProgressCallback | None = None,
    tries: int = MAX_TRIES,
) -> None:
    """Writes every file, verifies each on the board, rewrites what differs, up to `tries`
    writes per file; BoardError naming the files that still differ."""
    for name in files:
        _check_name(name)
    pending = dict(files)
    last: dict[str, FileCheck] = {}
    errors: dict[str, str] = {}
    for _ in range(tries):
        for name, data in pending.items():
            try:
                write_file(transport, name, data, progress=progress)
                errors.pop(name, None)
            except BoardError as exc:  # a garbled line fails the exec: verify and retry
                if "filesystem is full" in str(exc):
                    raise
                errors[name] = str(exc)
        last = {name: check_file(transport, name, data) for name, data in pending.items()}
        pending = {name: files[name] for name, check in last.items() if not check.ok}
        if not pending:
            return
    problems = "; ".join(
        last[name].describe() + (f" (last error: {errors[name]})" if name in errors else "")
        for name in pending
    )
    raise BoardError(
        f"{len(pending)} file(s) still differ after {tries} writes: {problems}. "
        "Check the serial connection and the board's free space, then flash again."
    )
