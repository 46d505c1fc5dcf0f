"""Radio receivers: serial lines (SLIP link frames) and UDP (one link frame per datagram).

Each receiver hands `Heard` frames to a callback and counts link errors by reason. A
serial receiver that loses its line (USB unplugged, pty closed) reopens it every few
seconds; nothing else stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

from meterlink.protocol import (
    LinkDecoder,
    LinkFrame,
    LinkType,
    ProtocolError,
    decode_link_datagram,
    encode_link,
    encode_link_datagram,
)

UDP_RCVBUF = 4 * 1024 * 1024


@dataclass(frozen=True)
class Heard:
    """One radio payload as a receiver heard it."""

    receiver: str
    payload: bytes
    rssi: int | None
    snr_qdb: int | None
    received_at: float  # wall clock, seconds since the epoch
    received_mono: float


OnHeard = Callable[[Heard], None]
OnLinkError = Callable[[str, str], None]  # receiver name, reason


def _heard(name: str, frame: LinkFrame) -> Heard | None:
    if frame.link_type == LinkType.RXINFO:
        return Heard(name, bytes(frame.payload), frame.rssi, frame.snr_qdb, time.time(),
                     time.monotonic())
    if frame.link_type == LinkType.DATA:
        return Heard(name, bytes(frame.payload), None, None, time.time(), time.monotonic())
    return None


class SerialReceiver:
    """A receiver on a tty or pty, read without a thread (the event loop watches its fd)."""

    reopen_delay_s = 2.0

    def __init__(self, name: str, port: str, baudrate: int, on_heard: OnHeard,
                 on_error: OnLinkError) -> None:
        self.name = name
        self.port = port
        self.baudrate = baudrate
        self.on_heard = on_heard
        self.on_error = on_error
        self.ser: serial.Serial | None = None
        self.connected = False
        self.frames = 0
        self.last_heard: float | None = None
        self._lost: asyncio.Event | None = None

    def _open(self) -> serial.Serial:
        ser = serial.Serial(self.port, self.baudrate, timeout=0, write_timeout=1)
        return ser

    def _on_readable(self) -> None:
        assert self.ser is not None and self._lost is not None
        try:
            data = self.ser.read(4096)
        except (serial.SerialException, OSError):
            data = b""
        if not data:  # readable with nothing to read: the line is gone
            self._lost.set()
            return
        for item in self._decoder.feed(data):
            if isinstance(item, ProtocolError):
                self.on_error(self.name, item.code)
                continue
            heard = _heard(self.name, item)
            if heard is None:
                self.on_error(self.name, "ignored_link_type")
                continue
            self.frames += 1
            self.last_heard = heard.received_at
            self.on_heard(heard)

    async def run(self, log: Callable[..., None]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                self.ser = self._open()
            except (serial.SerialException, OSError) as exc:
                log("warning", "receiver_unavailable", receiver=self.name, port=self.port,
                    error=str(exc), retry_s=self.reopen_delay_s)
                await asyncio.sleep(self.reopen_delay_s)
                continue
            self._decoder = LinkDecoder()
            self._lost = asyncio.Event()
            self.connected = True
            log("info", "receiver_open", receiver=self.name, port=self.port)
            fd = self.ser.fileno()
            loop.add_reader(fd, self._on_readable)
            try:
                await self._lost.wait()
                log("warning", "receiver_lost", receiver=self.name, port=self.port,
                    retry_s=self.reopen_delay_s)
            finally:
                loop.remove_reader(fd)
                self.connected = False
                with contextlib.suppress(Exception):
                    self.ser.close()
                self.ser = None
            await asyncio.sleep(self.reopen_delay_s)

    def send(self, radio_payload: bytes) -> bool:
        """Transmits a downlink (a DATA link frame); False when the line is down."""
        if self.ser is None:
            return False
        try:
            self.ser.write(encode_link(LinkType.DATA, radio_payload))
            return True
        except (serial.SerialException, OSError):
            return False


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpReceiver) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.owner.received(data, addr)


class UdpReceiver:
    """Receivers that forward over the network; downlinks go back to the last sender."""

    def __init__(self, name: str, host: str, port: int, on_heard: OnHeard,
                 on_error: OnLinkError) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.on_heard = on_heard
        self.on_error = on_error
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: tuple[str, int] | None = None
        self.connected = False
        self.frames = 0
        self.last_heard: float | None = None

    def received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            frame = decode_link_datagram(data)
        except ProtocolError as exc:
            self.on_error(self.name, exc.code)
            return
        heard = _heard(self.name, frame)
        if heard is None:
            self.on_error(self.name, "ignored_link_type")
            return
        self.peer = addr
        self.frames += 1
        self.last_heard = heard.received_at
        self.on_heard(heard)

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                             socket.SOCK_DGRAM)
        # Bursts from many receivers must not overflow the default ~200 KB buffer.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
        sock.bind((self.host, self.port))
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self),
                                                           sock=sock)
        self.transport = transport
        self.connected = True
        self.port = transport.get_extra_info("sockname")[1]
        return self.port

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.connected = False

    def send(self, radio_payload: bytes) -> bool:
        if self.transport is None or self.peer is None:
            return False
        self.transport.sendto(encode_link_datagram(LinkType.DATA, radio_payload), self.peer)
        return True


Receiver = SerialReceiver | UdpReceiver
