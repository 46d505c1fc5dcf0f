"""The radio between meter modules and gateway receivers, as seen from the serial lines.

Uplink: link frames the board writes to its UART (its radio modem) -> RXINFO link frames
on the pty of every receiver that hears the board. Downlink: DATA link frames the gateway
writes to a receiver pty -> a DATA link frame on the UART of the board the payload is
addressed to (device id at payload bytes 1..4). Loss, duplication, corruption, delay and
reordering are drawn per link (direction, board, receiver) from a random.Random seeded
with the channel seed and the link's names, so the same seed and the same frames on a
link give the same decisions regardless of thread timing on other links.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import queue
import random
import select
import threading
import time
import tty
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol

from meterlink.protocol import LinkDecoder, LinkFrame, LinkType, encode_link, encode_rxinfo

UP, DOWN = "up", "down"
_OUTBOX_LIMIT = 256 * 1024  # bytes waiting for a gateway that does not read its receiver


class UartEndpoint(Protocol):
    """What the channel needs of a board: EmulatedBoard and PtyBoard both provide it."""

    name: str

    def add_uart_listener(self, listener: Callable[[bytes], None]) -> None: ...

    def remove_uart_listener(self, listener: Callable[[bytes], None]) -> None: ...

    def try_write(self, data: bytes) -> bool: ...


@dataclass(frozen=True)
class TraceEntry:
    """One decision or delivery. outcome: delivered, duplicated (the extra copy),
    corrupted (delivered with one bit flipped), lost, radio_down, no_route (downlink to a
    device id no board has sent from), unavailable (board off or in a REPL session),
    overflow (receiver pty not read by anyone)."""

    time: float  # seconds since the channel started
    direction: str  # "up" or "down"
    board: str
    receiver: str
    outcome: str
    payload_hex: str  # the radio payload as offered (before corruption)


@dataclass
class DirectionStats:
    offered: int = 0  # frames offered per link (one per receiver that hears an uplink)
    delivered: int = 0  # copies written, duplicates and corrupted ones included
    lost: int = 0  # dropped: random loss, radio down, no route, board unavailable
    duplicated: int = 0
    corrupted: int = 0
    reordered: int = 0


@dataclass
class _Receiver:
    name: str
    master: int
    slave: int
    path: str
    hears: set[str] | None
    decoder: LinkDecoder = field(default_factory=LinkDecoder)
    outbox: bytearray = field(default_factory=bytearray)


@dataclass
class _BoardLink:
    endpoint: UartEndpoint
    rssi: int
    listener: Callable[[bytes], None]
    decoder: LinkDecoder = field(default_factory=LinkDecoder)


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    direction: str = field(compare=False)
    board: str = field(compare=False)
    receiver: str = field(compare=False)
    outcome: str = field(compare=False)
    payload: bytes = field(compare=False)  # as offered
    wire: bytes = field(compare=False)  # the link frame to write


class RadioChannel:
    def __init__(
        self,
        *,
        seed: int = 0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        corrupt: float = 0.0,
        delay_s: tuple[float, float] = (0.0, 0.0),
        reorder: float = 0.0,
        reorder_hold_s: float = 0.5,
        snr_qdb: int = 30,
        trace_path: Path | None = None,
    ) -> None:
        for label, p in (("loss", loss), ("duplicate", duplicate), ("corrupt", corrupt),
                         ("reorder", reorder)):  # fmt: skip
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{label} is a probability: give a value in 0.0 .. 1.0, not {p}")
        if not 0.0 <= delay_s[0] <= delay_s[1]:
            raise ValueError(f"delay_s must be (min, max) with 0 <= min <= max, not {delay_s}")
        self.seed = seed
        self.loss, self.duplicate, self.corrupt, self.reorder = loss, duplicate, corrupt, reorder
        self.delay_s = delay_s
        self.reorder_hold_s = reorder_hold_s
        self.snr_qdb = snr_qdb
        self.trace_path = trace_path
        self.trace: list[TraceEntry] = []
        self.stats: dict[str, DirectionStats] = {UP: DirectionStats(), DOWN: DirectionStats()}
        self.routes: dict[int, str] = {}  # device id -> board name, learned from uplinks
        self._boards: dict[str, _BoardLink] = {}
        self._receivers: dict[str, _Receiver] = {}
        self._rngs: dict[tuple[str, str, str], random.Random] = {}
        self._inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._pending: list[_Delivery] = []
        self._seq = itertools.count()
        self._radio_up = True
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self._trace_file: IO[str] | None = None
        self.error: BaseException | None = None  # what stopped the channel thread, if any

    # ------------------------------------------------------------------ set-up
    def attach_board(self, board: UartEndpoint, *, rssi: int = -90) -> None:
        """Listens to the board's UART for link frames (its radio modem's input)."""
        if not -128 <= rssi <= 127:
            raise ValueError(f"rssi {rssi} dBm does not fit a signed byte")
        name = board.name
        if name in self._boards:
            raise ValueError(f"a board named {name!r} is already attached: names must differ")

        def listener(data: bytes) -> None:
            self._inbox.put((name, data))
            self._wake()

        with self._lock:
            self._boards[name] = _BoardLink(board, rssi, listener)
        board.add_uart_listener(listener)

    def add_receiver(self, name: str, *, hears: Iterable[str] | None = None) -> str:
        """A receiver (a USB radio dongle, as the gateway sees it): returns the pty path
        the gateway opens. hears: the names of the boards in its range (default all)."""
        if name in self._receivers:
            raise ValueError(f"a receiver named {name!r} exists already")
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo or newline translation before the gateway opens it
        os.set_blocking(master, False)
        path = os.ttyname(slave)
        with self._lock:
            self._receivers[name] = _Receiver(
                name, master, slave, path, None if hears is None else set(hears)
            )
        self._wake()
        return path

    def receiver_path(self, name: str) -> str:
        return self._receivers[name].path

    def set_radio(self, up: bool) -> None:
        """Radio loss: while down nothing crosses, in either direction (frames already in
        flight still arrive)."""
        self._radio_up = up

    # --------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        if self.trace_path is not None:
            self.trace_path.parent.mkdir(parents=True, exist_ok=True)
            self._trace_file = self.trace_path.open("a", encoding="utf-8")
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="radio-channel", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stops the thread, detaches the boards, closes the receiver ptys. Idempotent."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(5.0)
        with self._lock:
            for link in self._boards.values():
                link.endpoint.remove_uart_listener(link.listener)
            self._boards.clear()
            for rx in self._receivers.values():
                for fd in (rx.master, rx.slave):
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._receivers.clear()
            if self._trace_file is not None:
                self._trace_file.close()
                self._trace_file = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def __enter__(self) -> RadioChannel:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.write(self._wake_w, b"\0")

    # ------------------------------------------------------------------- loop
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._step()
        except BaseException as exc:  # kept for the test to see, and in the trace file
            self.error = exc
            raise

    def _step(self) -> None:
        with self._lock:
            timeout = 0.05
            if self._pending:
                timeout = max(0.0, min(timeout, self._pending[0].due - time.monotonic()))
            readers = [self._wake_r] + [rx.master for rx in self._receivers.values()]
            writers = [rx.master for rx in self._receivers.values() if rx.outbox]
        ready_r, ready_w, _ = select.select(readers, writers, [], timeout)
        with self._lock:
            if self._wake_r in ready_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            while True:
                try:
                    name, data = self._inbox.get_nowait()
                except queue.Empty:
                    break
                link = self._boards.get(name)
                if link is not None:
                    for item in link.decoder.feed(data):
                        if isinstance(item, LinkFrame) and item.link_type == LinkType.DATA:
                            self._uplink(name, link, item.payload)
            for rx in list(self._receivers.values()):
                if rx.master in ready_r:
                    self._read_receiver(rx)
                if rx.master in ready_w:
                    self._flush_receiver(rx)
            now = time.monotonic()
            while self._pending and self._pending[0].due <= now:
                self._deliver(heapq.heappop(self._pending))

    def _read_receiver(self, rx: _Receiver) -> None:
        try:
            data = os.read(rx.master, 4096)
        except (BlockingIOError, OSError):
            return  # EIO: nobody has the slave open right now
        for item in rx.decoder.feed(data):
            if isinstance(item, LinkFrame) and item.link_type == LinkType.DATA:
                self._downlink(rx, item.payload)

    def _flush_receiver(self, rx: _Receiver) -> None:
        try:
            n = os.write(rx.master, rx.outbox)
        except (BlockingIOError, OSError):
            return
        del rx.outbox[:n]

    # -------------------------------------------------------------- decisions
    def _rng(self, direction: str, board: str, receiver: str) -> random.Random:
        key = (direction, board, receiver)
        rng = self._rngs.get(key)
        if rng is None:
            rng = self._rngs[key] = random.Random(f"{self.seed}/{direction}/{board}/{receiver}")
        return rng

    def _uplink(self, board: str, link: _BoardLink, payload: bytes) -> None:
        if len(payload) >= 5:
            self.routes[int.from_bytes(payload[1:5], "big")] = board
        for rx in self._receivers.values():
            if rx.hears is not None and board not in rx.hears:
                continue
            self._offer(UP, board, rx.name, payload, self._rxinfo_encoder(link.rssi))

    def _rxinfo_encoder(self, rssi: int) -> Callable[[bytes], bytes]:
        snr = self.snr_qdb
        return lambda payload: encode_rxinfo(payload, rssi, snr)

    def _downlink(self, rx: _Receiver, payload: bytes) -> None:
        device = int.from_bytes(payload[1:5], "big") if len(payload) >= 5 else None
        board = self.routes.get(device) if device is not None else None
        if board is None or board not in self._boards:
            self.stats[DOWN].offered += 1
            self.stats[DOWN].lost += 1
            self._record(DOWN, board or f"device:{device}", rx.name, "no_route", payload)
            return
        self._offer(DOWN, board, rx.name, payload, lambda p: encode_link(LinkType.DATA, p))

    def _offer(
        self,
        direction: str,
        board: str,
        receiver: str,
        payload: bytes,
        wire: Callable[[bytes], bytes],
    ) -> None:
        stats = self.stats[direction]
        stats.offered += 1
        if not self._radio_up:
            stats.lost += 1
            self._record(direction, board, receiver, "radio_down", payload)
            return
        rng = self._rng(direction, board, receiver)
        # every draw is made for every frame, so one decision never shifts the others
        r_loss, r_corrupt, r_dup, r_reorder = (rng.random() for _ in range(4))
        delay = rng.uniform(*self.delay_s)
        bit = rng.randrange(max(1, len(payload) * 8))
        if r_loss < self.loss:
            stats.lost += 1
            self._record(direction, board, receiver, "lost", payload)
            return
        sent = payload
        outcome = "delivered"
        if r_corrupt < self.corrupt and payload:
            flipped = bytearray(payload)
            flipped[bit // 8] ^= 0x80 >> (bit % 8)
            sent, outcome = bytes(flipped), "corrupted"
        if r_reorder < self.reorder:
            stats.reordered += 1
            delay += self.reorder_hold_s
        due = time.monotonic() + delay
        frame = wire(sent)
        self._schedule(_Delivery(due, next(self._seq), direction, board, receiver, outcome,
                                 payload, frame))  # fmt: skip
        if r_dup < self.duplicate:
            self._schedule(_Delivery(due + 0.001, next(self._seq), direction, board, receiver,
                                     "duplicated", payload, frame))  # fmt: skip

    def _schedule(self, item: _Delivery) -> None:
        heapq.heappush(self._pending, item)

    def _deliver(self, item: _Delivery) -> None:
        stats = self.stats[item.direction]
        if item.direction == UP:
            rx = self._receivers.get(item.receiver)
            if rx is None:
                return
            if len(rx.outbox) + len(item.wire) > _OUTBOX_LIMIT:
                stats.lost += 1
                self._record(UP, item.board, item.receiver, "overflow", item.payload)
                return
            rx.outbox += item.wire
            self._flush_receiver(rx)
        else:
            link = self._boards.get(item.board)
            if link is None or not link.endpoint.try_write(item.wire):
                stats.lost += 1
                self._record(DOWN, item.board, item.receiver, "unavailable", item.payload)
                return
        stats.delivered += 1
        if item.outcome == "corrupted":
            stats.corrupted += 1
        elif item.outcome == "duplicated":
            stats.duplicated += 1
        self._record(item.direction, item.board, item.receiver, item.outcome, item.payload)

    def _record(
        self, direction: str, board: str, receiver: str, outcome: str, payload: bytes
    ) -> None:
        entry = TraceEntry(
            round(time.monotonic() - self._t0, 6), direction, board, receiver, outcome,
            payload.hex(),
        )  # fmt: skip
        self.trace.append(entry)
        if self._trace_file is not None:
            self._trace_file.write(json.dumps(asdict(entry)) + "\n")
            self._trace_file.flush()

    def transmit_raw(self, board: str, data: bytes) -> bool:
        """Anyone in range transmitting `data` through a transparent modem: the bytes
        reach the board's UART as they are, with no link framing (a hostile sender, or
        noise). Recorded in the trace as direction "down", outcome "raw"; False if the
        board was off or in a REPL session (then they are lost)."""
        with self._lock:
            link = self._boards.get(board)
        if link is None:
            raise ValueError(f"no board named {board!r} is attached to this channel")
        sent = link.endpoint.try_write(data)
        with self._lock:
            self._record(DOWN, board, "", "raw" if sent else "unavailable", data)
        return sent

    # ---------------------------------------------------------------- helpers
    def settle(self, timeout: float = 10.0) -> None:
        """Waits until nothing is queued, scheduled or unwritten in the channel (frames
        still in a board's or the kernel's buffers are not seen)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                idle = (
                    self._inbox.empty()
                    and not self._pending
                    and not any(rx.outbox for rx in self._receivers.values())
                )
            if idle:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"radio channel still busy after {timeout}s")
            time.sleep(0.01)

    def wait_for(
        self, predicate: Callable[[TraceEntry], bool], timeout: float = 10.0
    ) -> TraceEntry:
        """The first trace entry (old or new) matching predicate; TimeoutError if none."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            with self._lock:
                entries = self.trace[seen:]
            for entry in entries:
                if predicate(entry):
                    return entry
            seen += len(entries)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching radio trace entry within {timeout}s")
            time.sleep(0.01)
