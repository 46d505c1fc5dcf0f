"""Entering the raw REPL survives a Ctrl-A lost on the line, over a real pty, against a
board that speaks MicroPython's REPL byte for byte (pyexec's friendly and raw REPLs)."""

from __future__ import annotations

import os
import pty
import threading
import time
import tty

import pytest
from mpremote.transport import TransportError

from meterlink.boardlink.transport import enter_raw_repl, open_transport

BANNER = (b"MicroPython v1.9.2 on 2017-09-02; micro:bit with nRF51822\r\n"
          b'Type "help()" for more information.\r\n>>> ')


class ReplBoard:
    """The board end of a pty: MicroPython's friendly REPL (Ctrl-C and Enter give a new
    prompt, Ctrl-B the banner, Ctrl-A the raw REPL) and raw REPL (code up to Ctrl-D, run,
    answered `OK` out `\\x04` err `\\x04>`; Ctrl-A again restarts it, as 1.9.2 does with
    mpremote's raw-paste request; Ctrl-B back to friendly). The first
    `lose_ctrl_a` Ctrl-A bytes are lost, as on an overrun line."""

    def __init__(self, lose_ctrl_a: int) -> None:
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.lose_ctrl_a = lose_ctrl_a
        self.ctrl_a_seen = 0
        self.raw = False
        self.ran: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        code = b""
        while not self._stop:
            try:
                data = os.read(self.master, 256)
            except OSError:
                return
            for b in data:
                c = bytes([b])
                if self.raw:
                    if c == b"\x02":
                        self.raw = False
                        os.write(self.master, b"\r\n" + BANNER)
                    elif c == b"\x03":
                        code = b""
                    elif c == b"\x01":  # raw REPL again: 1.9.2 has no raw-paste
                        code = b""
                        os.write(self.master, b"raw REPL; CTRL-B to exit\r\n>")
                    elif c == b"\x04":
                        self.ran.append(code)
                        code = b""
                        os.write(self.master, b"OK\x04\x04>")
                    else:
                        code += c
                elif c == b"\x01":
                    self.ctrl_a_seen += 1
                    if self.ctrl_a_seen > self.lose_ctrl_a:
                        self.raw = True
                        os.write(self.master, b"raw REPL; CTRL-B to exit\r\n>")
                elif c in (b"\x03", b"\r"):
                    os.write(self.master, b"\r\n>>> ")
                elif c == b"\x02":
                    os.write(self.master, b"\r\n" + BANNER)

    def close(self) -> None:
        self._stop = True
        os.close(self._slave)
        os.close(self.master)


@pytest.fixture
def board_losing(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    board = ReplBoard(request.param)
    yield board
    board.close()


@pytest.mark.parametrize("board_losing", [1], indirect=True)
def test_a_lost_ctrl_a_is_sent_again(board_losing: ReplBoard) -> None:
    transport = open_transport(board_losing.path)
    try:
        enter_raw_repl(transport, timeout=10.0)
        assert transport.in_raw_repl and board_losing.raw
        assert board_losing.ctrl_a_seen == 2
        transport.exec_raw("print(1)")
        assert board_losing.ran[-1].endswith(b"print(1)")
    finally:
        transport.close()


@pytest.mark.parametrize("board_losing", [10**6], indirect=True)
def test_a_board_that_never_enters_raw_gives_up_within_the_timeout(
        board_losing: ReplBoard) -> None:
    transport = open_transport(board_losing.path)
    try:
        start = time.monotonic()
        with pytest.raises(TransportError, match="could not enter raw repl"):
            enter_raw_repl(transport, timeout=8.0)
        # a try may overrun by one read timeout (2 s, open_transport)
        assert time.monotonic() - start < 8.0 + 2.5
        assert board_losing.ctrl_a_seen >= 2  # tried again before giving up
    finally:
        transport.close()
