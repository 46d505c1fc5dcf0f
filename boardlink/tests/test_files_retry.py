"""Code a board could not compile is sent again; code that ran and failed is not."""

from __future__ import annotations

import pytest

from meterlink.boardlink.errors import BoardError
from meterlink.boardlink.files import run

TRACEBACK = b"Traceback (most recent call last):\r\n"
GARBLED = TRACEBACK + b'  File "<stdin>", line 7\r\nSyntaxError: invalid syntax\r\n'
RAISED = (TRACEBACK + b'  File "<stdin>", line 1, in <module>\r\n'
          b"ZeroDivisionError: division by zero\r\n")


class ScriptedTransport:
    """Answers exec_raw from a script of (stdout, stderr) replies, recording each call."""

    def __init__(self, replies: list[tuple[bytes, bytes]]) -> None:
        self.replies = replies
        self.calls: list[str] = []

    def exec_raw(self, code: str, timeout: float = 10.0) -> tuple[bytes, bytes]:
        self.calls.append(code)
        return self.replies.pop(0)


def test_code_garbled_on_the_line_is_sent_again() -> None:
    t = ScriptedTransport([(b"", GARBLED), (b"", GARBLED), (b"ok\r\n", b"")])
    assert run(t, "print('ok')") == "ok\r\n"  # type: ignore[arg-type]
    assert t.calls == ["print('ok')"] * 3


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
