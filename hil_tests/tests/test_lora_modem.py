"""The emulated radio modems on the LoRa medium, as a board's firmware sees them on its
UART: the RAK3172 / RUI3 P2P command set and the transparent SLIP modem."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from meterlink.hil.lora_medium import LoRaMedium, RadioParams, RealtimeMedium
from meterlink.hil.lora_modem import AtModem, TransparentModem
from meterlink.hil.pty_board import PtyBoard
from meterlink.protocol import LinkDecoder, LinkFrame, LinkType, encode_link


class Uart:
    def __init__(self, board: PtyBoard) -> None:
        self.board = board
        self.buf = b""

    def line(self, timeout: float = 2.0) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            if time.monotonic() > deadline:
                return None
            self.buf += self.board.receive(0.05)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode()

    def at(self, cmd: str) -> list[str]:
        self.board.send(cmd.encode() + b"\r\n")
        out = []
        while (line := self.line(1.0)) is not None:
            out.append(line)
            if line == "OK" or line.startswith("AT_"):
                break
        return out


@pytest.fixture
def medium() -> Iterator[RealtimeMedium]:
    m = RealtimeMedium(LoRaMedium(seed=2)).start()
    yield m
    m.close()


@pytest.fixture
def two_at(medium: RealtimeMedium) -> Iterator[tuple[Uart, Uart]]:
    boards = [PtyBoard("a"), PtyBoard("b")]
    modems = [AtModem(b, medium, position=(i * 200.0, 0)) for i, b in enumerate(boards)]
    uarts = (Uart(boards[0]), Uart(boards[1]))
    for u in uarts:
        assert u.at("AT+NWM=0") == ["OK"]
        assert u.at("AT+P2P=868300000:8:125:1:8:14") == ["OK"]
    yield uarts
    for m in modems:
        m.close()
    for b in boards:
        b.close()


def test_rui3_p2p_commands_answers_and_errors(two_at):
    a, _ = two_at
    assert a.at("AT") == ["OK"]
    assert a.at("AT+P2P=?") == ["AT+P2P=868300000:8:125:1:8:14", "OK"]
    assert a.at("AT+PSF=10") == ["OK"] and a.at("AT+PSF=?") == ["AT+PSF=10", "OK"]
    assert a.at("AT+PBW=200") == ["AT_PARAM_ERROR"]
    assert a.at("AT+PSF=13") == ["AT_PARAM_ERROR"]
    assert a.at("AT+PSEND=ABC") == ["AT_PARAM_ERROR"]  # odd number of hex digits
    assert a.at("AT+PSEND=zz") == ["AT_PARAM_ERROR"]
    assert a.at("AT+P2P=1:2") == ["AT_PARAM_ERROR"]
    assert a.at("AT+JOIN=1") == ["AT_ERROR"]
    assert a.at("AT+NWM=1") == ["OK"] and a.at("AT+PRECV=100") == ["AT_MODE_NO_SUPPORT"]


def test_psend_reaches_a_listening_modem_after_its_airtime(two_at):
    a, b = two_at
    assert b.at("AT+PRECV=65534") == ["OK"]  # one frame, no timeout
    t0 = time.monotonic()
    assert a.at("AT+PSEND=" + "11" * 20) == ["OK"]
    assert a.at("AT+PSEND=00") == ["AT_BUSY_ERROR"]  # still on the air
    assert a.line() == "+EVT:TXP2P DONE"
    done = time.monotonic() - t0
    assert 0.07 < done < 0.4  # 20 bytes at SF8, 4/6: 0.12 s
    ev = b.line()
    assert ev is not None and ev.startswith("+EVT:RXP2P:")
    _, _, rssi, snr, data = ev.split(":")
    assert data == "11" * 20 and -130 < int(rssi) < -30 and int(snr) <= 20
    assert b.at("AT+PRECV=?") == ["AT+PRECV=0", "OK"]  # RX ended after the frame


def test_receive_window_times_out_and_a_frame_begun_after_it_is_missed(two_at):
    a, b = two_at
    assert b.at("AT+PRECV=300") == ["OK"]
    time.sleep(0.4)
    assert b.line() == "+EVT:RXP2P RECEIVE TIMEOUT"
    assert a.at("AT+PSEND=2222") == ["OK"]
    assert a.line() == "+EVT:TXP2P DONE"
    assert b.line(0.5) is None  # b was not listening


def test_transparent_modems_carry_slip_data_frames(medium):
    boards = [PtyBoard("t0"), PtyBoard("t1")]
    params = RadioParams(freq_mhz=868.5, sf=7)
    modems = [TransparentModem(b, medium, position=(i * 100.0, 0), params=params)
              for i, b in enumerate(boards)]
    try:
        boards[0].send(encode_link(LinkType.DATA, b"\x10hello, lora"))
        got = b""
        deadline = time.monotonic() + 3
        frames: list[LinkFrame] = []
        dec = LinkDecoder()
        while not frames and time.monotonic() < deadline:
            got = boards[1].receive(0.05)
            frames += [f for f in dec.feed(got) if isinstance(f, LinkFrame)]
        assert [bytes(f.payload) for f in frames] == [b"\x10hello, lora"]
        assert modems[0].sent[0].airtime == pytest.approx(0.041216)  # 12 bytes at SF7
    finally:
        for m in modems:
            m.close()
        for b in boards:
            b.close()


def test_a_modem_sending_while_the_medium_hands_it_a_frame_does_not_deadlock(medium):
    """The medium calls a modem's _on_reception holding its own lock; the board's UART
    thread of that modem takes the medium's lock to transmit. If the modem held its own
    lock while waiting for the medium's, the two would wait for each other and every
    radio on the medium would fall silent. Made deterministic: the test holds the medium
    lock as the medium's thread does while the board's frame arrives."""
    from meterlink.hil.lora_medium import Reception, Transmission

    params = RadioParams(freq_mhz=868.5, sf=7)
    with PtyBoard("dl0") as board:
        modem = TransparentModem(board, medium, params=params)
        try:
            heard = Reception(Transmission(0, "other", b"\x01", params, 0.0, 0.01),
                              modem.name, -80.0, 9.0, "received")
            with medium.lock:  # as in RealtimeMedium._run -> resolve -> _on_reception
                board.send(encode_link(LinkType.DATA, b"\x10up"))
                time.sleep(0.3)  # the UART thread is now in _send, waiting for the lock
                handed = threading.Thread(target=modem._on_reception, args=(heard,))
                handed.start()
                handed.join(2.0)
                stuck = handed.is_alive()
            handed.join(2.0)
            assert not stuck, "the modem held its lock while waiting for the medium's"
            deadline = time.monotonic() + 2
            while not modem.sent and time.monotonic() < deadline:
                time.sleep(0.02)
            assert [tx.payload for tx in modem.sent] == [b"\x10up"]
            assert modem.heard == [heard]
        finally:
            modem.close()


def test_transparent_modem_resyncs_after_garbage_a_lost_byte_and_an_overlong_run(medium):
    """What a board's UART can carry before and between its frames (the REPL's answers to
    frames it was sent, a byte lost, no END for too long): the modem drops those and puts
    every whole DATA frame that follows on the air, in order."""
    params = RadioParams(freq_mhz=868.5, sf=7)
    payloads = [bytes([0x10, n]) + b"\xc0\xdb" * n for n in range(3)]
    frames = [encode_link(LinkType.DATA, p) for p in payloads]
    with PtyBoard("rs0") as board:
        modem = TransparentModem(board, medium, params=params)
        try:
            board.send(b"raw REPL; CTRL-B to exit\r\n>\xc0\x01\xdb")  # REPL text, END, ESC
            board.send(b"x" * 400)  # no END for longer than any link frame
            board.send(frames[2][:5] + frames[2][6:])  # a byte lost: the CRC fails
            for f in frames:
                board.send(f)
            deadline = time.monotonic() + 3
            while len(modem.sent) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)
            assert [tx.payload for tx in modem.sent] == payloads
        finally:
            modem.close()
