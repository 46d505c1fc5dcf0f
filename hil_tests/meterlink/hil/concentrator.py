"""An emulated LoRa concentrator running Semtech's packet forwarder: it hears frames on a
`RealtimeMedium` and speaks the UDP protocol v2 (sx1302_hal packet_forwarder/PROTOCOL.md)
to a network server, the gateway under test, over loopback.

Up: every frame received on its channels goes out as PUSH_DATA with one `rxpk` (its `tmst`
is the concentrator's own free-running 1 MHz counter at the end of the frame); a `stat`
object every `stat_interval_s`. Down: PULL_DATA every `keepalive_s`; a PULL_RESP `txpk` is
checked as the forwarder's just-in-time queue does it and answered with TX_ACK: `TOO_LATE`
when its `tmst` is less than `tx_margin_s` ahead, `TOO_EARLY` when more than
`max_advance_s` ahead, `COLLISION_PACKET` when it overlaps a frame already scheduled,
`TX_FREQ` outside the TX band; otherwise the frame is transmitted on the medium at its
`tmst` (or at once with `imme`).
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import itertools
import json
import os
import queue
import random
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meterlink.hil.lora_medium import RadioParams, RealtimeMedium, Reception, Transmission
from meterlink.protocol.lora import (
    EU868_DEFAULT_CHANNELS_MHZ,
    DataRate,
    LoRaParamError,
    airtime_s,
)

MASK = 0xFFFFFFFF
PUSH_DATA, PUSH_ACK, PULL_DATA, PULL_RESP, PULL_ACK, TX_ACK = 0, 1, 2, 3, 4, 5


@dataclass
class Downlink:
    """A PULL_RESP as the concentrator judged it."""

    token: bytes
    txpk: dict[str, Any]
    error: str  # NONE or the TX_ACK error
    at_tmst: int | None = None  # when it went on the air
    sent: bool = False


@dataclass
class ConcentratorStats:
    rxnb: int = 0  # frames the radio demodulated (good or collided)
    rxok: int = 0
    rxfw: int = 0
    push_sent: int = 0
    push_acked: int = 0
    pull_sent: int = 0
    pull_acked: int = 0
    dwnb: int = 0
    txnb: int = 0
    bad_datagrams: int = 0


@dataclass(order=True)
class _Scheduled:
    due_mono: float
    seq: int
    down: Downlink = field(compare=False)
    params: RadioParams = field(compare=False)
    payload: bytes = field(compare=False)


class EmulatedConcentrator:
    def __init__(self, medium: RealtimeMedium, eui: str, server: tuple[str, int], *,
                 position: tuple[float, float] = (0.0, 0.0),
                 channels_mhz: tuple[float, ...] = EU868_DEFAULT_CHANNELS_MHZ,
                 keepalive_s: float = 10.0, stat_interval_s: float = 30.0,
                 tx_margin_s: float = 0.030, max_advance_s: float = 10.0,
                 tx_band_mhz: tuple[float, float] = (863.0, 870.0),
                 forward_crc_error: bool = False, seed: int = 0) -> None:
        self.medium = medium
        self.eui = eui.lower()
        self.eui_bytes = bytes.fromhex(self.eui)
        self.server = server
        self.channels = tuple(round(c, 4) for c in channels_mhz)
        self.keepalive_s = keepalive_s
        self.stat_interval_s = stat_interval_s
        self.tx_margin_s = tx_margin_s
        self.max_advance_s = max_advance_s
        self.tx_band = tx_band_mhz
        self.forward_crc_error = forward_crc_error
        rng = random.Random(f"{seed}/{self.eui}")
        self.tmst_offset = rng.randrange(2**32)  # the counter starts anywhere
        self._token = itertools.count(rng.randrange(2**16))
        self.stats = ConcentratorStats()
        self.downlinks: list[Downlink] = []
        self.pushed: list[dict[str, Any]] = []  # rxpk objects sent
        self._scheduled: list[_Scheduled] = []
        self._tx_seq = itertools.count()
        self._queue: queue.SimpleQueue[Reception] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.error: BaseException | None = None
        medium.add_radio(self.eui, position=position, listening=self._listening,
                         on_reception=self._on_reception, inverted_iq_rx=False)

    # -- clock ------------------------------------------------------------------------------

    def tmst_at(self, medium_time: float) -> int:
        return (self.tmst_offset + round(medium_time * 1e6)) & MASK

    def tmst(self) -> int:
        return self.tmst_at(self.medium.now())

    # -- medium side (medium thread) --------------------------------------------------------

    def _listening(self, tx: Transmission) -> bool:
        return round(tx.params.freq_mhz, 4) in self.channels

    def _on_reception(self, r: Reception) -> None:
        self._queue.put(r)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> EmulatedConcentrator:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"concentrator-{self.eui}",
                                            daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")
        if self._thread is not None:
            self._thread.join(3)
            self._thread = None
        self.sock.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> EmulatedConcentrator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            next_pull = time.monotonic()
            next_stat = time.monotonic() + self.stat_interval_s
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_pull:
                    self._send(PULL_DATA, self.eui_bytes)
                    self.stats.pull_sent += 1
                    next_pull = now + self.keepalive_s
                if now >= next_stat:
                    self._push({"stat": self._stat()})
                    next_stat = now + self.stat_interval_s
                while self._scheduled and self._scheduled[0].due_mono <= time.monotonic():
                    self._transmit(heapq.heappop(self._scheduled))
                due = min([next_pull, next_stat] + [s.due_mono for s in self._scheduled[:1]])
                timeout = max(0.0, min(0.05, due - time.monotonic()))
                ready, _, _ = select.select([self.sock.fileno(), self._wake_r], [], [], timeout)
                if self._wake_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                while True:
                    try:
                        r = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    self._uplink(r)
                if self.sock.fileno() in ready:
                    self._read()
        except BaseException as exc:
            self.error = exc
            raise

    def _send(self, ident: int, body: bytes) -> bytes:
        token = (next(self._token) & 0xFFFF).to_bytes(2, "big")
        with contextlib.suppress(OSError):
            self.sock.sendto(bytes([2]) + token + bytes([ident]) + body, self.server)
        return token

    def _push(self, obj: dict[str, Any]) -> None:
        self._send(PUSH_DATA, self.eui_bytes + json.dumps(obj, separators=(",", ":")).encode())
        self.stats.push_sent += 1

    def _stat(self) -> dict[str, Any]:
        s = self.stats
        return {"time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S GMT"),
                "rxnb": s.rxnb, "rxok": s.rxok, "rxfw": s.rxfw,
                "ackr": round(100.0 * s.push_acked / s.push_sent, 1) if s.push_sent else 0.0,
                "dwnb": s.dwnb, "txnb": s.txnb}

    def _uplink(self, r: Reception) -> None:
        if r.outcome not in ("received", "collision"):
            return  # never demodulated (too weak, wrong IQ, while transmitting)
        self.stats.rxnb += 1
        ok = r.outcome == "received"
        if ok:
            self.stats.rxok += 1
        elif not self.forward_crc_error:
            return
        tx = r.tx
        payload = tx.payload if ok else bytes(b ^ 0x5A for b in tx.payload)
        rxpk = {"time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "tmst": self.tmst_at(tx.end), "chan": self.channels.index(
                    round(tx.params.freq_mhz, 4)), "rfch": 0, "freq": tx.params.freq_mhz,
                "stat": 1 if ok else -1, "modu": "LORA", "datr": tx.params.datr,
                "codr": tx.params.codr, "rssi": round(r.rssi), "lsnr": r.snr,
                "size": len(payload), "data": base64.b64encode(payload).decode()}
        self.stats.rxfw += 1
        with self._lock:
            self.pushed.append(rxpk)
        self._push({"rxpk": [rxpk]})

    def _read(self) -> None:
        while True:
            try:
                data, _ = self.sock.recvfrom(65535)
            except (BlockingIOError, OSError):
                return
            if len(data) < 4 or data[0] != 2:
                self.stats.bad_datagrams += 1
                continue
            ident = data[3]
            if ident == PUSH_ACK and len(data) == 4:
                self.stats.push_acked += 1
            elif ident == PULL_ACK and len(data) == 4:
                self.stats.pull_acked += 1
            elif ident == PULL_RESP:
                self._pull_resp(data[1:3], data[4:])
            else:
                self.stats.bad_datagrams += 1

    def _pull_resp(self, token: bytes, raw: bytes) -> None:
        self.stats.dwnb += 1
        try:
            txpk = json.loads(raw)["txpk"]
            payload = base64.b64decode(txpk["data"] + "=" * (-len(txpk["data"]) % 4))
            dr = DataRate.parse(txpk["datr"])
            codr = txpk.get("codr", "4/5")
            params = RadioParams(freq_mhz=float(txpk["freq"]), sf=dr.sf, bw_hz=dr.bw_hz,
                                 codr=codr, power_dbm=float(txpk.get("powe", 14)),
                                 iq_inverted=bool(txpk.get("ipol", False)))
            airtime = airtime_s(len(payload), dr.sf, dr.bw_hz, codr)
            if txpk.get("size", len(payload)) != len(payload):
                raise ValueError("size does not match data")
        except (ValueError, KeyError, TypeError, LoRaParamError):
            self.stats.bad_datagrams += 1
            self._tx_ack(Downlink(token, {}, "FORMAT"))  # not in the spec's list: counted
            return
        now_t = self.medium.now()
        imme = bool(txpk.get("imme"))
        if imme:
            start = now_t + 0.002
        else:
            tmst = txpk.get("tmst")
            if not isinstance(tmst, int):
                self._tx_ack(Downlink(token, txpk, "FORMAT"))
                return
            delta = ((tmst - self.tmst_at(now_t) + 2**31) & MASK) - 2**31
            start = now_t + delta / 1e6
        down = Downlink(token, txpk, "NONE")
        if not self.tx_band[0] <= params.freq_mhz <= self.tx_band[1]:
            down.error = "TX_FREQ"
        elif not imme and start - now_t < self.tx_margin_s:
            down.error = "TOO_LATE"
        elif not imme and start - now_t > self.max_advance_s:
            down.error = "TOO_EARLY"
        elif any(s.params is not None and start < s.due_mono - self.medium.t0
                 + airtime_s(len(s.payload), s.params.sf, s.params.bw_hz, s.params.codr)
                 and s.due_mono - self.medium.t0 < start + airtime
                 for s in self._scheduled):
            down.error = "COLLISION_PACKET"
        with self._lock:
            self.downlinks.append(down)
        self._tx_ack(down)
        if down.error == "NONE":
            heapq.heappush(self._scheduled, _Scheduled(self.medium.t0 + start,
                                                       next(self._tx_seq), down, params,
                                                       payload))

    def _tx_ack(self, down: Downlink) -> None:
        body = json.dumps({"txpk_ack": {"error": down.error}}, separators=(",", ":")).encode()
        with contextlib.suppress(OSError):
            self.sock.sendto(bytes([2]) + down.token + bytes([TX_ACK]) + self.eui_bytes + body,
                             self.server)

    def _transmit(self, s: _Scheduled) -> None:
        start = s.due_mono - self.medium.t0
        self.medium.transmit(self.eui, s.payload, s.params, start=start)
        s.down.sent = True
        s.down.at_tmst = self.tmst_at(start)
        self.stats.txnb += 1

    def snapshot(self) -> tuple[list[Downlink], list[dict[str, Any]]]:
        with self._lock:
            return list(self.downlinks), list(self.pushed)
