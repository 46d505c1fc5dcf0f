"""LoRa concentrators through Semtech's packet forwarder: the UDP protocol, version 2
(Lora-net packet_forwarder PROTOCOL.TXT, sx1302_hal packet_forwarder/PROTOCOL.md).

Up: PUSH_DATA is acked (PUSH_ACK, same token) and each `rxpk` with a good CRC becomes a
`ConcentratorHeard`, tagged with the concentrator's EUI, its `tmst` and the signal. Down:
PULL_DATA is acked (PULL_ACK) and its source address remembered; a downlink goes out as
PULL_RESP with a `txpk` timed at the uplink's `tmst` plus the receive-window delay, through
the concentrator that heard the uplink best, and its TX_ACK says whether it was scheduled.

The protocol has no authentication: only concentrators on the `gateway_euis` allow-list are
answered; the others are refused and counted. Bind to loopback or a VPN address.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from meterlink.edge.config import PacketForwarderConfig
from meterlink.edge.ingress import (
    UDP_RCVBUF,
    Flush,
    Gate,
    Heard,
    OnHeard,
    OnLinkError,
    until_cancelled,
)
from meterlink.edge.logs import Logger, RateLimitedLog
from meterlink.edge.metrics import GatewayMetrics, Registry
from meterlink.protocol import Header, ProtocolError
from meterlink.protocol.lora import DataRate, LoRaParamError, airtime_s

PROTOCOL_VERSIONS = (1, 2)
PUSH_DATA, PUSH_ACK, PULL_DATA, PULL_RESP, PULL_ACK, TX_ACK = 0, 1, 2, 3, 4, 5
TX_ERRORS = ("TOO_LATE", "TOO_EARLY", "COLLISION_PACKET", "COLLISION_BEACON", "TX_FREQ",
             "TX_POWER", "GPS_UNLOCKED")
STAT_FIELDS = ("rxnb", "rxok", "rxfw", "ackr", "dwnb", "txnb", "temp")
MAX_DATAGRAM = 65_535
TMST_MASK = 0xFFFFFFFF
LEAD_S = 0.030  # the concentrator needs the PULL_RESP this long before its tmst
GUARD_US = 20_000  # between two downlinks in one window
WINDOWS_PER_CONCENTRATOR = 4096  # recent uplinks kept for their receive window


class PfError(ValueError):
    """A datagram that does not follow the packet-forwarder protocol."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class ConcentratorHeard(Heard):
    """A frame heard by a concentrator: the EUI and the radio metadata of its rxpk."""

    eui: str = ""
    tmst: int = 0
    freq_mhz: float = 0.0
    datr: str = ""
    codr: str = ""
    lsnr: float = 0.0


def header(data: bytes) -> tuple[int, bytes, int]:
    """(version, token, identifier) of a datagram; PfError when it is not one."""
    if len(data) < 4:
        raise PfError("truncated", f"{len(data)} bytes, a datagram has at least 4")
    if data[0] not in PROTOCOL_VERSIONS:
        raise PfError("bad_version", f"protocol version {data[0]}, expected 2")
    return data[0], data[1:3], data[3]


def gateway_eui(data: bytes) -> str:
    if len(data) < 12:
        raise PfError("truncated", f"{len(data)} bytes, no room for the 8-byte gateway EUI")
    return data[4:12].hex()


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PfError("bad_json", "payload is not JSON") from None
    if not isinstance(obj, dict):
        raise PfError("bad_json", "payload is not a JSON object")
    return obj


def parse_rxpk(rx: Any) -> tuple[int, bytes, dict[str, Any]]:
    """(stat, payload, metadata) of one rxpk object."""
    if not isinstance(rx, dict):
        raise PfError("bad_rxpk", "rxpk entry is not an object")
    stat = rx.get("stat")
    if isinstance(stat, bool) or stat not in (1, 0, -1):
        raise PfError("bad_rxpk", f"stat {stat!r} is not 1, 0 or -1")
    if rx.get("modu", "LORA") != "LORA":
        raise PfError("not_lora", f"modulation {rx.get('modu')!r}")
    data = rx.get("data")
    if not isinstance(data, str):
        raise PfError("bad_rxpk", "rxpk has no base64 data")
    try:
        payload = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise PfError("bad_rxpk", "rxpk data is not base64") from None
    size = rx.get("size", len(payload))
    if size != len(payload):
        raise PfError("bad_rxpk", f"size {size!r} but data has {len(payload)} bytes")
    tmst = rx.get("tmst")
    if isinstance(tmst, bool) or not isinstance(tmst, int) or not 0 <= tmst <= TMST_MASK:
        raise PfError("bad_rxpk", f"tmst {tmst!r} is not a 32-bit counter")
    rssi = rx.get("rssis", rx.get("rssi"))
    lsnr = rx.get("lsnr")
    freq = rx.get("freq")
    datr = rx.get("datr")
    for name, v in (("rssi", rssi), ("lsnr", lsnr), ("freq", freq)):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise PfError("bad_rxpk", f"{name} {v!r} is not a number")
    try:
        DataRate.parse(datr)  # type: ignore[arg-type]
    except LoRaParamError as exc:
        raise PfError("bad_rxpk", str(exc)) from None
    meta = {"tmst": tmst, "rssi": round(rssi), "lsnr": float(lsnr),  # type: ignore[arg-type]
            "freq": float(freq), "datr": datr,  # type: ignore[arg-type]
            "codr": rx.get("codr") if isinstance(rx.get("codr"), str) else "4/5"}
    return stat, payload, meta


class PfMetrics:
    """Series of the packet-forwarder ingress (docs/gateway.md lists them)."""

    def __init__(self, r: Registry) -> None:
        self.datagrams = r.counter("meterlink_pf_datagrams_total",
                                   "Packet-forwarder datagrams by concentrator and type")
        self.refused = r.counter("meterlink_pf_refused_total",
                                 "Datagrams refused, by forwarder and reason (unknown_eui, ...)")
        self.rxpk = r.counter("meterlink_pf_rxpk_total",
                              "rxpk objects by concentrator and outcome (forwarded, crc_bad, "
                              "no_crc, not_lora, bad_rxpk)")
        self.tx = r.counter("meterlink_pf_downlinks_total",
                            "Downlinks by concentrator and result (scheduled, a TX_ACK error, "
                            "no_tx_ack, no_route, late)")
        self.tx_errors = r.counter("meterlink_pf_tx_ack_errors_total",
                                   "TX_ACK errors by concentrator and error")
        self.stat = r.gauge("meterlink_concentrator_stat",
                            "Last stat object of each concentrator, by field")


@dataclass
class _Window:
    """A module's receive window after an uplink heard by one concentrator."""

    heard: ConcentratorHeard
    next_tmst: int  # where the next downlink in this window may start
    sent: set[bytes] = field(default_factory=set)


class Concentrator:
    """One concentrator on the allow-list: its downlink route, windows and counters. It is
    the receiver the downlink path sends through (receiver name = EUI)."""

    def __init__(self, eui: str, server: PacketForwarder) -> None:
        self.eui = eui
        self.name = eui
        self.server = server
        self.cfg = server.cfg
        self.addr: tuple[str, int] | None = None
        self.pull_mono: float | None = None
        self.version = 2
        self.frames = 0
        self.crc_errors = 0
        self.last_heard: float | None = None
        self.tx_sent = 0
        self.tx_errors: dict[str, int] = {}
        self.stat: dict[str, Any] = {}
        self.windows: OrderedDict[int, _Window] = OrderedDict()

    @property
    def connected(self) -> bool:
        """True while its PULL_DATA keepalives arrive (a downlink route exists)."""
        return (self.addr is not None and self.pull_mono is not None
                and time.monotonic() - self.pull_mono < self.cfg.pull_timeout_s)

    def heard(self, h: ConcentratorHeard) -> None:
        try:
            device_id = Header.parse(h.payload).device_id
        except ProtocolError:
            return
        self.windows.pop(device_id, None)
        self.windows[device_id] = _Window(
            h, (h.tmst + self.cfg.rx_delay_ms * 1000) & TMST_MASK)
        while len(self.windows) > WINDOWS_PER_CONCENTRATOR:
            self.windows.popitem(last=False)

    async def transmit(self, radio_payload: bytes) -> bool:
        """Sends a downlink in the module's window; True once the concentrator accepted it
        (TX_ACK without error, or none within tx_ack_timeout_s from an older forwarder)."""
        if not self.connected:  # no downlink route: the next best that heard it, if any
            alt = self.server.fallback(radio_payload, self)
            if alt is not None:
                return await alt.transmit(radio_payload)
        txpk = self._txpk(radio_payload)
        if txpk is None:
            return False
        if not txpk:  # already scheduled in this window
            return True
        return await self.server.pull_resp(self, txpk)

    def _txpk(self, payload: bytes) -> dict[str, Any] | None:
        m = self.server.metrics
        try:
            device_id = Header.parse(payload).device_id
        except ProtocolError:
            return None
        w = self.windows.get(device_id)
        if w is None or not self.connected:
            m.tx.inc(concentrator=self.eui, result="no_route")
            self.server.log.warning("downlink_no_route", concentrator=self.eui,
                                    device_id=device_id,
                                    why="no uplink heard" if w is None else
                                    "no PULL_DATA from the concentrator lately")
            return None
        if payload in w.sent:
            return {}
        h = w.heard
        offset_s = ((w.next_tmst - h.tmst) & TMST_MASK) / 1e6
        if time.monotonic() - h.received_mono > offset_s - LEAD_S:
            m.tx.inc(concentrator=self.eui, result="late")
            self.server.log.warning("downlink_late", concentrator=self.eui,
                                    device_id=device_id, offset_s=offset_s)
            return None
        cfg = self.cfg
        datr = cfg.tx_datr or h.datr
        dr = DataRate.parse(datr)
        txpk = {"imme": False, "tmst": w.next_tmst,
                "freq": cfg.tx_freq_mhz if cfg.tx_freq_mhz is not None else h.freq_mhz,
                "rfch": cfg.tx_rfch, "powe": cfg.tx_power_dbm, "modu": "LORA", "datr": datr,
                "codr": cfg.tx_codr, "ipol": cfg.tx_ipol, "size": len(payload),
                "data": base64.b64encode(payload).decode()}
        air_us = round(airtime_s(len(payload), dr.sf, dr.bw_hz, cfg.tx_codr) * 1e6)
        w.next_tmst = (w.next_tmst + air_us + GUARD_US) & TMST_MASK
        w.sent.add(payload)
        return txpk

    def view(self) -> dict[str, Any]:
        return {"eui": self.eui, "forwarder": self.server.name, "connected": self.connected,
                "address": None if self.addr is None else f"{self.addr[0]}:{self.addr[1]}",
                "frames": self.frames, "crc_errors": self.crc_errors,
                "downlinks": self.tx_sent, "tx_ack_errors": dict(self.tx_errors),
                "stat": dict(self.stat), "last_heard": self.last_heard}


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: PacketForwarder) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.owner.received(data, addr)


class PacketForwarder:
    """The server side of the protocol on one UDP port (up and down share it)."""

    def __init__(self, cfg: PacketForwarderConfig, on_heard: OnHeard, on_error: OnLinkError,
                 metrics: PfMetrics, log: Logger, reject_log: RateLimitedLog,
                 gate: Gate | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.on_heard = on_heard
        self.on_error = on_error
        self.metrics = metrics
        self.log = log
        self.reject_log = reject_log
        self.concentrators = {eui: Concentrator(eui, self) for eui in cfg.gateway_euis}
        self.transport: asyncio.DatagramTransport | None = None
        self.port = cfg.port
        self._token = int.from_bytes(os.urandom(2), "big")
        self._pending: dict[tuple[str, bytes], asyncio.Future[str | None]] = {}
        self.refused = 0
        if gate is not None:
            gate.watch(self._on_gate)

    def _on_gate(self, is_open: bool) -> None:
        """Backpressure for a packet-forwarder socket too (its asyncio transport): the
        kernel holds PUSH_DATA while the outbox catches up."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if is_open:
            transport.resume_reading()  # type: ignore[attr-defined]
        else:
            transport.pause_reading()  # type: ignore[attr-defined]

    # -- socket -----------------------------------------------------------------------------

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET6 if ":" in self.cfg.host else socket.AF_INET,
                             socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
        sock.bind((self.cfg.host, self.cfg.port))
        self.transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self),
                                                                sock=sock)
        self.port = self.transport.get_extra_info("sockname")[1]
        return self.port

    async def run(self) -> None:
        """Serves until cancelled, then closes the socket."""
        if self.transport is None:
            await self.start()
        try:
            await until_cancelled()
        finally:
            self.close()

    async def drain(self, flush: Flush, batch: int) -> int:
        return 0  # PUSH_DATA still queued on the socket is not read (it never was)

    def export(self, metrics: GatewayMetrics) -> None:
        pass  # its figures are in PfMetrics already

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_result("closed")

    @property
    def connected(self) -> bool:
        return self.transport is not None

    @property
    def frames(self) -> int:
        return sum(c.frames for c in self.concentrators.values())

    def _sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def _refuse(self, reason: str, detail: str, addr: tuple[str, int],
                eui: str | None = None) -> None:
        self.refused += 1
        self.metrics.refused.inc(forwarder=self.name, reason=reason)
        self.on_error(self.name, reason)
        self.reject_log.log("warning", "pf_datagram_refused", forwarder=self.name,
                            reason=reason, detail=detail, source=f"{addr[0]}:{addr[1]}",
                            eui=eui)

    # -- datagrams --------------------------------------------------------------------------

    def received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Handles one datagram; never raises for bad input."""
        try:
            version, token, ident = header(data)
            if ident not in (PUSH_DATA, PULL_DATA, TX_ACK):
                raise PfError("unexpected_type", f"identifier 0x{ident:02x} is not sent by a "
                              "concentrator")
            eui = gateway_eui(data)
        except PfError as exc:
            self._refuse(exc.reason, str(exc), addr)
            return
        conc = self.concentrators.get(eui)
        if conc is None:
            self._refuse("unknown_eui", "gateway EUI not in gateway_euis", addr, eui)
            return
        conc.version = version
        if ident == PUSH_DATA:
            self.metrics.datagrams.inc(concentrator=eui, type="push_data")
            self._sendto(bytes([version]) + token + bytes([PUSH_ACK]), addr)
            self._push_data(conc, data[12:], addr)
        elif ident == PULL_DATA:
            self.metrics.datagrams.inc(concentrator=eui, type="pull_data")
            if conc.addr != addr:
                self.log.info("concentrator_route", concentrator=eui,
                              address=f"{addr[0]}:{addr[1]}")
            conc.addr, conc.pull_mono = addr, time.monotonic()
            self._sendto(bytes([version]) + token + bytes([PULL_ACK]), addr)
        else:
            self.metrics.datagrams.inc(concentrator=eui, type="tx_ack")
            self._tx_ack(conc, token, data[12:], addr)

    def _push_data(self, conc: Concentrator, raw: bytes, addr: tuple[str, int]) -> None:
        try:
            obj = json_object(raw)
        except PfError as exc:
            self._refuse(exc.reason, str(exc), addr, conc.eui)
            return
        stat = obj.get("stat")
        if isinstance(stat, dict):
            for k in STAT_FIELDS:
                v = stat.get(k)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    conc.stat[k] = v
                    self.metrics.stat.set(float(v), concentrator=conc.eui, field=k)
        rxpks = obj.get("rxpk", [])
        if not isinstance(rxpks, list):
            self._refuse("bad_json", "rxpk is not an array", addr, conc.eui)
            return
        for rx in rxpks:
            self._rxpk(conc, rx)

    def _rxpk(self, conc: Concentrator, rx: Any) -> None:
        m = self.metrics
        try:
            stat, payload, meta = parse_rxpk(rx)
        except PfError as exc:
            m.rxpk.inc(concentrator=conc.eui, outcome=exc.reason)
            self.on_error(conc.name, exc.reason)
            return
        if stat != 1:
            conc.crc_errors += 1
            outcome = "crc_bad" if stat == -1 else "no_crc"
            m.rxpk.inc(concentrator=conc.eui, outcome=outcome)
            self.on_error(conc.name, outcome)
            return
        m.rxpk.inc(concentrator=conc.eui, outcome="forwarded")
        h = ConcentratorHeard(
            receiver=conc.name, payload=payload, rssi=meta["rssi"],
            snr_qdb=round(meta["lsnr"] * 4), received_at=time.time(),
            received_mono=time.monotonic(), eui=conc.eui, tmst=meta["tmst"],
            freq_mhz=meta["freq"], datr=meta["datr"], codr=meta["codr"], lsnr=meta["lsnr"])
        conc.frames += 1
        conc.last_heard = h.received_at
        conc.heard(h)
        self.on_heard(h)

    def _tx_ack(self, conc: Concentrator, token: bytes, raw: bytes,
                addr: tuple[str, int]) -> None:
        error: str | None = None
        raw = raw.rstrip(b"\x00")
        if raw:
            try:
                ack = json_object(raw).get("txpk_ack", {})
            except PfError as exc:
                self._refuse(exc.reason, str(exc), addr, conc.eui)
                ack = {}
            err = ack.get("error") if isinstance(ack, dict) else None
            if isinstance(err, str) and err not in ("", "NONE"):
                error = err if err in TX_ERRORS else "OTHER"  # bounded metric labels
        fut = self._pending.pop((conc.eui, token), None)
        if fut is None:
            self.metrics.tx.inc(concentrator=conc.eui, result="unmatched_tx_ack")
            return
        if not fut.done():
            fut.set_result(error)

    async def pull_resp(self, conc: Concentrator, txpk: dict[str, Any]) -> bool:
        """Sends one PULL_RESP and waits for its TX_ACK; True when it was accepted."""
        assert conc.addr is not None
        self._token = (self._token + 1) & 0xFFFF
        token = self._token.to_bytes(2, "big")
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending[(conc.eui, token)] = fut
        body = json.dumps({"txpk": txpk}, separators=(",", ":")).encode()
        self._sendto(bytes([conc.version]) + token + bytes([PULL_RESP]) + body, conc.addr)
        m = self.metrics
        try:
            error = await asyncio.wait_for(fut, self.cfg.tx_ack_timeout_s)
        except TimeoutError:
            self._pending.pop((conc.eui, token), None)
            m.tx.inc(concentrator=conc.eui, result="no_tx_ack")
            conc.tx_sent += 1
            return True  # a version-1 forwarder never answers; assume it was sent
        if error is None:
            m.tx.inc(concentrator=conc.eui, result="scheduled")
            conc.tx_sent += 1
            return True
        conc.tx_errors[error] = conc.tx_errors.get(error, 0) + 1
        m.tx_errors.inc(concentrator=conc.eui, error=error)
        m.tx.inc(concentrator=conc.eui, result=error)
        self.log.warning("downlink_refused", concentrator=conc.eui, error=error,
                         tmst=txpk.get("tmst"), datr=txpk.get("datr"), freq=txpk.get("freq"))
        return False

    def fallback(self, payload: bytes, failed: Concentrator) -> Concentrator | None:
        """Among the other concentrators with a downlink route that heard the device's last
        uplink, the one that heard it best."""
        try:
            device_id = Header.parse(payload).device_id
        except ProtocolError:
            return None
        best: Concentrator | None = None
        for c in self.concentrators.values():
            w = c.windows.get(device_id)
            if c is failed or w is None or not c.connected:
                continue
            if best is None or (w.heard.rssi or -999) > (best.windows[device_id].heard.rssi
                                                        or -999):
                best = c
        if best is not None:
            self.log.info("downlink_fallback", device_id=device_id, concentrator=best.eui,
                          instead_of=failed.eui, why="no PULL_DATA from it lately")
        return best

    def radio(self, device_id: int) -> list[dict[str, Any]]:
        """The device's last uplink as each concentrator heard it (for the status page)."""
        out = []
        for c in self.concentrators.values():
            w = c.windows.get(device_id)
            if w is not None:
                h = w.heard
                out.append({"eui": c.eui, "datr": h.datr, "freq": h.freq_mhz, "rssi": h.rssi,
                            "snr_db": h.lsnr, "at": h.received_at})
        return out

    def views(self) -> list[dict[str, Any]]:
        return [c.view() for c in self.concentrators.values()]
