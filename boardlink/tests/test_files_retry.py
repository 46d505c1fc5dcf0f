"""Code a board could not compile, or that was never sent for want of a raw REPL prompt, is
sent again; code that ran and failed is not."""

from __future__ import annotations

import zlib

import pytest
from mpremote.transport import TransportError

from meterlink.boardlink.errors import BoardError
from meterlink.boardlink.files import check_file, list_files, run

TRACEBACK = b"Traceback (most recent call last):\r\n"
GARBLED = TRACEBACK + b'  File "<stdin>", line 7\r\nSyntaxError: invalid syntax\r\n'
RAISED = (TRACEBACK + b'  File "<stdin>", line 1, in <module>\r\n'
          b"ZeroDivisionError: division by zero\r\n")


class ScriptedTransport:
    """Answers exec_raw from a script of (stdout, stderr) replies, recording each call."""

    def __init__(self, replies: list[tuple[bytes, bytes] | TransportError]) -> None:
        self.replies = replies
        self.calls: list[str] = []
        self.raw_repl_entries = 0

    def exec_raw(self, code: str, timeout: float = 10.0) -> tuple[bytes, bytes]:
        self.calls.append(code)
        reply = self.replies.pop(0)
        if isinstance(reply, TransportError):
            raise reply
        return reply

    def enter_raw_repl(self, soft_reset: bool = True, timeout_overall: float = 10.0) -> None:
        assert not soft_reset  # a soft reset would run main.py
        self.raw_repl_entries += 1


def test_code_garbled_on_the_line_is_sent_again() -> None:
    t = ScriptedTransport([(b"", GARBLED), (b"", GARBLED), (b"ok\r\n", b"")])
    assert run(t, "print('ok')") == "ok\r\n"  # type: ignore[arg-type]
    assert t.calls == ["print('ok')"] * 3


def test_code_not_sent_for_want_of_a_prompt_is_sent_after_entering_the_raw_repl_again() -> None:
    t = ScriptedTransport([TransportError("could not enter raw repl"), (b"ok\r\n", b"")])
    assert run(t, "print('ok')") == "ok\r\n"  # type: ignore[arg-type]
    assert t.calls == ["print('ok')"] * 2
    assert t.raw_repl_entries == 1


def test_a_failure_after_the_code_was_sent_is_not_sent_again() -> None:
    t = ScriptedTransport([TransportError("could not exec command (response: b'')"),
                           (b"ok\r\n", b"")])
    with pytest.raises(BoardError, match="did not run the code: could not exec command"):
        run(t, "f.write(b'x')")  # type: ignore[arg-type]
    assert len(t.calls) == 1 and t.raw_repl_entries == 0


def test_garbled_every_time_gives_up_with_the_board_traceback() -> None:
    t = ScriptedTransport([(b"", GARBLED)] * 3)
    with pytest.raises(BoardError, match="SyntaxError"):
        run(t, "x(")  # type: ignore[arg-type]
    assert len(t.calls) == 3


def test_code_that_ran_and_raised_is_never_sent_twice() -> None:
    t = ScriptedTransport([(b"", RAISED), (b"", b"")])
    with pytest.raises(BoardError, match="ZeroDivisionError"):
        run(t, "1/0")  # type: ignore[arg-type]
    assert len(t.calls) == 1


def test_a_garbled_listing_is_read_again() -> None:
    garbled, good = b"'ml_cfg.py' 1\x0023\r\n", b"'ml_cfg.py' 123\r\n'cf' 9\r\n"
    t = ScriptedTransport([(garbled, b""), (good, b"")])
    assert list_files(t) == {"ml_cfg.py": 123, "cf": 9}  # type: ignore[arg-type]
    assert len(t.calls) == 2


def test_a_listing_garbled_every_time_says_what_to_do() -> None:
    t = ScriptedTransport([(b"'ml_c\r\n", b"")] * 3)
    with pytest.raises(BoardError, match=r"garbled 3 times.*check the cable"):
        list_files(t)  # type: ignore[arg-type]


def test_a_garbled_checksum_is_read_again() -> None:
    data = b"hello"
    a, b = zlib.adler32(data) & 0xFFFF, zlib.adler32(data) >> 16
    listing = (b"'x.py' 5\r\n", b"")
    t = ScriptedTransport([listing, (b"5 7\r\n", b""), (f"5 {a} {b}\r\n".encode(), b"")])
    assert check_file(t, "x.py", data).ok  # type: ignore[arg-type]
