"""Radio receivers: serial lines (SLIP link frames) and UDP (one link frame per datagram).

Every receiver (these two and `meterlink.edge.packet_forwarder.PacketForwarder`) has one
shape, `Ingress`: `start()` binds what must be bound before the gateway says it is ready
(and returns the port, or None), `run()` serves until cancelled and closes on the way
out, `drain()` takes on shutdown what the kernel already holds, `export()` sets the
receiver's own gauges. The gateway runs every `run()` in one nested TaskGroup.

Each receiver hands `Heard` frames to a callback and counts link errors by reason. A
serial receiver that loses its line (USB unplugged, pty closed) reopens it every few
seconds; nothing else stops.

Backpressure: receivers read only while the pipeline's `Gate` is open. Closed, they leave
the input where it is: in the UDP socket's kernel buffer (whose overflow drops the kernel
counts: `kernel_drops`, from SO_RXQ_OVFL and /proc/net/udp) or the serial driver.

Alarms first: the kernel drops at the tail without looking, so under sustained overload it
would drop alarms as often as readings, and a retried alarm could miss its receive window
again and again. A UDP receiver therefore watches its socket's fill (SO_MEMINFO, on each
read and every 10 ms while paused); past a quarter full (about 2,500 small datagrams, a
burst the buffer still holds whole) it takes the oldest datagrams off the queue, hands the
confirmed frames (alarms) on and sheds the readings (counted: `shed`), so that the queue
does not overflow and an alarm waits behind at most a quarter of a buffer. In a burst
read, alarms are handled first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import serial

from meterlink.edge.logs import Logger
from meterlink.edge.metrics import GatewayMetrics
from meterlink.protocol import (
    FrameType,
    LinkDecoder,
    LinkFrame,
    LinkType,
    ProtocolError,
    decode_link_datagram,
    encode_link,
    encode_link_datagram,
)

UDP_RCVBUF = 4 * 1024 * 1024  # the kernel doubles it; ~10,000 small datagrams
UDP_BURST = 64  # datagrams read per readiness event (bounds the overshoot past the gate)
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)  # Linux: drop count as ancillary data
SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)  # Linux >= 4.6: rmem_alloc, rcvbuf, ...
SHED_FILL = 0.25  # the socket queue is kept under this fraction of its buffer
SHED_CHECK_S = 0.01


class Gate:
    """Open while the pipeline takes more input; receivers watch it."""

    def __init__(self) -> None:
        self.is_open = True
        self.closures = 0
        self._listeners: list[Callable[[bool], None]] = []

    def watch(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self.closures += 1
            for f in self._listeners:
                f(False)

    def open(self) -> None:
        if not self.is_open:
            self.is_open = True
            for f in self._listeners:
                f(True)


_CONFIRMED_TYPES = frozenset(t.value for t in FrameType if t.confirmed)


def _confirmed(heard: Heard) -> bool:
    """From the header's type nibble, before any verification: only for ordering."""
    return bool(heard.payload) and heard.payload[0] & 0x0F in _CONFIRMED_TYPES


def proc_udp_drops(sock: socket.socket) -> int | None:
    """The kernel's drop counter for this socket (the `drops` column of /proc/net/udp)."""
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
    except OSError:
        return None
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if len(cols) > 12 and cols[9] == inode:
                        return int(cols[12])
        except OSError:
            continue
    return None


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
Flush = Callable[[], Awaitable[object]]


class Ingress(Protocol):
    """The one shape of a receiver, as the gateway runs it."""

    name: str

    async def start(self) -> int | None:
        """Binds its socket (a bind error raises here, before the gateway is ready);
        returns the port bound, or None for a receiver without one."""

    async def run(self) -> None:
        """Serves until cancelled; closes what it opened on the way out."""

    async def drain(self, flush: Flush, batch: int) -> int:
        """On shutdown, before `run` is cancelled: reads what is already queued (calling
        `flush` every `batch`); how many datagrams were read."""

    def export(self, metrics: GatewayMetrics) -> None:
        """Sets the receiver's own gauges before /metrics is rendered."""


async def until_cancelled() -> None:
    await asyncio.get_running_loop().create_future()


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
                 on_error: OnLinkError, gate: Gate | None = None,
                 log: Logger | None = None) -> None:
        self.name = name
        self.log = log or Logger()
        self.port = port
        self.baudrate = baudrate
        self.on_heard = on_heard
        self.on_error = on_error
        self.gate = gate or Gate()
        self.gate.watch(self._on_gate)
        self._reading = False
        self.ser: serial.Serial | None = None
        self.connected = False
        self.frames = 0
        self.last_heard: float | None = None
        self._lost: asyncio.Event | None = None

    def _open(self) -> serial.Serial:
        ser = serial.Serial(self.port, self.baudrate, timeout=0, write_timeout=1)
        return ser

    def _on_gate(self, is_open: bool) -> None:
        if self.ser is None:
            return
        loop = asyncio.get_running_loop()
        if is_open and not self._reading:
            loop.add_reader(self.ser.fileno(), self._on_readable)
            self._reading = True
        elif not is_open and self._reading:
            loop.remove_reader(self.ser.fileno())
            self._reading = False

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

    async def start(self) -> None:
        """The line is opened (and reopened) by `run`: a missing tty is not fatal."""
        return None

    async def drain(self, flush: Flush, batch: int) -> int:
        return 0  # the driver's buffer is left for the next start

    def export(self, metrics: GatewayMetrics) -> None:
        pass

    async def run(self) -> None:
        log = self.log.log
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
            if self.gate.is_open:
                loop.add_reader(fd, self._on_readable)
                self._reading = True
            try:
                await self._lost.wait()
                log("warning", "receiver_lost", receiver=self.name, port=self.port,
                    retry_s=self.reopen_delay_s)
            finally:
                if self._reading:
                    loop.remove_reader(fd)
                    self._reading = False
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


class UdpReceiver:
    """Receivers that forward over the network; downlinks go back to the last sender.

    Reads its socket itself (not through an asyncio transport) so that it can stop
    reading under backpressure, read the kernel's drop count, and drain the socket on
    shutdown."""

    def __init__(self, name: str, host: str, port: int, on_heard: OnHeard,
                 on_error: OnLinkError, gate: Gate | None = None) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.on_heard = on_heard
        self.on_error = on_error
        self.gate = gate or Gate()
        self.gate.watch(self._on_gate)
        self.sock: socket.socket | None = None
        self._reading = False
        self.peer: tuple[str, int] | None = None
        self.connected = False
        self.frames = 0
        self.last_heard: float | None = None
        self._ovfl = 0  # from SO_RXQ_OVFL ancillary data
        self.shed = 0  # readings taken off a nearly full queue while paused
        self._watch: asyncio.TimerHandle | None = None

    @property
    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped because the socket buffer was full."""
        if self.sock is None:
            return self._ovfl
        drops = proc_udp_drops(self.sock)
        return max(self._ovfl, drops or 0)

    def received(self, data: bytes, addr: tuple[str, int]) -> None:
        heard = self._decode(data)
        if heard is not None:
            self._deliver(heard, addr)

    def _decode(self, data: bytes) -> Heard | None:
        try:
            frame = decode_link_datagram(data)
        except ProtocolError as exc:
            self.on_error(self.name, exc.code)
            return None
        heard = _heard(self.name, frame)
        if heard is None:
            self.on_error(self.name, "ignored_link_type")
        return heard

    def _deliver(self, heard: Heard, addr: tuple[str, int]) -> None:
        self.peer = addr
        self.frames += 1
        self.last_heard = heard.received_at
        self.on_heard(heard)

    def queue_fill(self) -> float:
        """How full the socket's receive buffer is (0..1; 0 when unknown)."""
        if self.sock is None:
            return 0.0
        try:
            info = self.sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 64)
        except OSError:
            return 0.0
        rmem, rcvbuf = int.from_bytes(info[0:4], "little"), int.from_bytes(info[4:8], "little")
        return rmem / rcvbuf if rcvbuf else 0.0

    def _watch_queue(self) -> None:
        """While paused: keeps the queue under SHED_FILL, alarms on, readings shed."""
        self._watch = None
        if self.sock is None or self.gate.is_open:
            return
        if self.queue_fill() > SHED_FILL:
            self._read_burst(UDP_BURST * 8, shed=True)
        self._watch = asyncio.get_running_loop().call_later(SHED_CHECK_S, self._watch_queue)

    def _read_burst(self, limit: int, shed: bool = False) -> int:
        """Reads up to `limit` queued datagrams and handles them, confirmed frames first
        (with `shed`, only those: the rest are counted and dropped). Returns how many were
        read (fewer: the socket is empty)."""
        sock = self.sock
        if sock is None:
            return 0
        got: list[tuple[Heard, tuple[str, int]]] = []
        n = 0
        while n < limit:
            try:
                data, anc, _flags, addr = sock.recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP errors reported on the socket
                self.on_error(self.name, f"socket_{exc.errno}")
                break
            n += 1
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(cdata) >= 4:
                    self._ovfl = int.from_bytes(cdata[:4], "little")
            heard = self._decode(data)
            if heard is None:
                continue
            if shed and not _confirmed(heard):
                self.shed += 1
                continue
            got.append((heard, addr))
        for heard, addr in sorted(got, key=lambda h: not _confirmed(h[0])):  # stable
            self._deliver(heard, addr)
        return n

    def _readable(self) -> None:
        if self.queue_fill() > SHED_FILL:  # falling behind the input: alarms only
            self._read_burst(UDP_BURST * 8, shed=True)
        self._read_burst(UDP_BURST)

    def _on_gate(self, is_open: bool) -> None:
        if self.sock is None:
            return
        loop = asyncio.get_running_loop()
        if is_open and not self._reading:
            loop.add_reader(self.sock.fileno(), self._readable)
            self._reading = True
        elif not is_open and self._reading:
            loop.remove_reader(self.sock.fileno())
            self._reading = False
            if self._watch is None:
                self._watch = loop.call_later(SHED_CHECK_S, self._watch_queue)

    async def start(self) -> int:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                             socket.SOCK_DGRAM)
        # Bursts from many receivers must not overflow the default ~200 KB buffer.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        sock.setblocking(False)
        sock.bind((self.host, self.port))
        self.sock = sock
        self.connected = True
        self.port = sock.getsockname()[1]
        self._on_gate(self.gate.is_open)
        return self.port

    async def run(self) -> None:
        """Serves (the event loop reads the socket while the gate is open) until
        cancelled, then closes the socket."""
        if self.sock is None:
            await self.start()
        try:
            await until_cancelled()
        finally:
            self.close()

    def export(self, metrics: GatewayMetrics) -> None:
        metrics.kernel_drops.set(self.kernel_drops, receiver=self.name)
        metrics.shed.set(self.shed, receiver=self.name)

    async def drain(self, pipeline_flush: Callable[[], object], batch: int,
                    max_datagrams: int = 200_000) -> int:
        """On shutdown: reads what is already queued on the socket (regardless of the
        gate), committing every `batch` datagrams; returns how many were read."""
        total = 0
        while total < max_datagrams and self.sock is not None:
            n = self._read_burst(min(batch, max_datagrams - total))
            total += n
            result = pipeline_flush()
            if asyncio.iscoroutine(result):
                await result
            if n < batch:
                break
        return total

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.sock is not None:
            if self._reading:
                with contextlib.suppress(Exception):
                    asyncio.get_running_loop().remove_reader(self.sock.fileno())
                self._reading = False
            self.sock.close()
            self.sock = None
        self.connected = False

    def send(self, radio_payload: bytes) -> bool:
        if self.sock is None or self.peer is None:
            return False
        try:
            self.sock.sendto(encode_link_datagram(LinkType.DATA, radio_payload), self.peer)
        except (BlockingIOError, OSError):
            return False
        return True


Receiver = SerialReceiver | UdpReceiver
