"""Radio modems between a board's UART and the LoRa medium.

`AtModem` is a RAK3172-class module running RUI3 in LoRa point-to-point mode, as its AT
command manual describes the P2P part: `AT+NWM=0`, `AT+P2P=freq:sf:bw:cr:preamble:power`
(and `AT+PFREQ`, `AT+PSF`, `AT+PBW`, `AT+PCR`, `AT+PPL`, `AT+PTP`), `AT+PSEND=<hex>`
answered `OK` then `+EVT:TXP2P DONE` when the frame has left the antenna, `AT+PRECV=<ms>`
(0 stops, 65534 one packet without timeout, 65535 continuous) with
`+EVT:RXP2P:<rssi>:<snr>:<hex>` per frame and `+EVT:RXP2P RECEIVE TIMEOUT`. Replies end in
CR LF; errors are `AT_ERROR`, `AT_PARAM_ERROR`, `AT_BUSY_ERROR`, `AT_MODE_NO_SUPPORT`.

`TransparentModem` is today's modem: SLIP DATA link frames in, frames on the air, and
every frame it hears back on the UART as a DATA link frame.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from meterlink.hil.lora_medium import RadioParams, RealtimeMedium, Reception, Transmission
from meterlink.hil.radio import UartEndpoint
from meterlink.protocol import LinkDecoder, LinkFrame, LinkType, encode_link
from meterlink.protocol.lora import BANDWIDTHS_HZ, airtime_s

RX_STOP, RX_ONE, RX_CONTINUOUS = 0, 65534, 65535
MAX_PSEND_BYTES = 255


class _ModemBase:
    """Lock order: the medium's lock, then the modem's. The medium calls `_listening` and
    `_on_reception` holding its lock; a modem about to transmit takes the medium's lock
    before its own, or the two threads could each wait for the other's (every radio on
    the medium would then fall silent)."""

    def __init__(self, board: UartEndpoint, medium: RealtimeMedium, *, name: str | None,
                 position: tuple[float, float], params: RadioParams) -> None:
        self.board = board
        self.medium = medium
        self.name = name or board.name
        self.params = params
        self.lock = threading.RLock()
        self.sent: list[Transmission] = []
        self.heard: list[Reception] = []
        self.tx_until = -1.0
        self._timers: list[threading.Timer] = []
        self._closed = False
        medium.add_radio(self.name, position=position, listening=self._listening,
                         on_reception=self._on_reception, inverted_iq_rx=False)
        board.add_uart_listener(self._on_uart)

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        t = threading.Timer(max(0.0, delay), fn)
        t.daemon = True
        with self.lock:
            self._timers = [x for x in self._timers if x.is_alive()]
            self._timers.append(t)
        t.start()

    def _write(self, data: bytes) -> None:
        if not self._closed:
            self.board.try_write(data)

    def _transmit(self, payload: bytes) -> Transmission:
        tx = self.medium.transmit(self.name, payload, self.params)
        with self.lock:
            self.sent.append(tx)
            self.tx_until = tx.end
        return tx

    def close(self) -> None:
        self._closed = True
        self.board.remove_uart_listener(self._on_uart)
        with self.lock:
            for t in self._timers:
                t.cancel()

    # subclasses
    def _on_uart(self, data: bytes) -> None:
        raise NotImplementedError

    def _listening(self, tx: Transmission) -> bool:
        raise NotImplementedError

    def _on_reception(self, r: Reception) -> None:
        raise NotImplementedError


class AtModem(_ModemBase):
    def __init__(self, board: UartEndpoint, medium: RealtimeMedium, *, name: str | None = None,
                 position: tuple[float, float] = (0.0, 0.0),
                 params: RadioParams | None = None) -> None:
        super().__init__(board, medium, name=name, position=position,
                         params=params or RadioParams(freq_mhz=868.0, sf=7))
        self.nwm = 1  # RUI3 boots in LoRaWAN mode unless told AT+NWM=0
        self.preamble = 8
        self._line = bytearray()
        self.rx_mode = RX_STOP
        self.rx_until = -1.0  # medium time the receive window closes
        self._rx_gen = 0
        self.commands: list[str] = []

    # -- UART -------------------------------------------------------------------------------

    def _on_uart(self, data: bytes) -> None:
        for b in data:
            if b in (0x0D, 0x0A):
                if self._line:
                    line = self._line.decode("ascii", "replace").strip()
                    self._line.clear()
                    self._reply(self.handle(line))
            elif len(self._line) < 600:
                self._line.append(b)

    def _reply(self, lines: list[str]) -> None:
        for line in lines:
            self._write(line.encode() + b"\r\n")

    # -- commands ---------------------------------------------------------------------------

    def handle(self, line: str) -> list[str]:
        with self.medium.lock, self.lock:  # lock order: see _ModemBase
            self.commands.append(line)
            up = line.upper()
            if up == "AT":
                return ["OK"]
            if not up.startswith("AT+"):
                return ["AT_ERROR"]
            name, _, arg = line[3:].partition("=")
            name = name.upper()
            if name == "NWM":
                if arg == "?":
                    return [f"AT+NWM={self.nwm}", "OK"]
                if arg not in ("0", "1"):
                    return ["AT_PARAM_ERROR"]
                self.nwm = int(arg)
                return ["OK"]
            handler = {"P2P": self._p2p, "PFREQ": self._pfreq, "PSF": self._psf,
                       "PBW": self._pbw, "PCR": self._pcr, "PPL": self._ppl,
                       "PTP": self._ptp, "PSEND": self._psend, "PRECV": self._precv}.get(name)
            if handler is None:
                return ["AT_ERROR"]
            if self.nwm != 0:
                return ["AT_MODE_NO_SUPPORT"]
            try:
                return handler(arg)
            except ValueError:
                return ["AT_PARAM_ERROR"]

    def _p2p_text(self) -> str:
        p = self.params
        return (f"{round(p.freq_mhz * 1e6)}:{p.sf}:{p.bw_hz // 1000}:"
                f"{int(p.codr[2]) - 5}:{self.preamble}:{round(p.power_dbm)}")

    def _set(self, **changes: object) -> None:
        self.params = RadioParams(**{**self.params.__dict__, **changes})

    def _p2p(self, arg: str) -> list[str]:
        if arg == "?":
            return [f"AT+P2P={self._p2p_text()}", "OK"]
        parts = arg.split(":")
        if len(parts) != 6:
            raise ValueError(arg)
        for h, v in zip((self._pfreq, self._psf, self._pbw, self._pcr, self._ppl, self._ptp),
                        parts, strict=True):
            if h(v) != ["OK"]:
                raise ValueError(v)
        return ["OK"]

    def _int(self, arg: str, lo: int, hi: int) -> int:
        if not arg.isdigit():
            raise ValueError(arg)
        v = int(arg)
        if not lo <= v <= hi:
            raise ValueError(arg)
        return v

    def _pfreq(self, arg: str) -> list[str]:
        if arg == "?":
            return [f"AT+PFREQ={round(self.params.freq_mhz * 1e6)}", "OK"]
        self._set(freq_mhz=self._int(arg, 150_000_000, 960_000_000) / 1e6)
        return ["OK"]

    def _psf(self, arg: str) -> list[str]:
        if arg == "?":
            return [f"AT+PSF={self.params.sf}", "OK"]
        self._set(sf=self._int(arg, 7, 12))  # RUI3 takes 5..12; the medium models 7..12
        return ["OK"]

    def _pbw(self, arg: str) -> list[str]:
        if arg == "?":
            return [f"AT+PBW={self.params.bw_hz // 1000}", "OK"]
        bw = self._int(arg, 125, 500) * 1000
        if bw not in BANDWIDTHS_HZ:
            raise ValueError(arg)
        self._set(bw_hz=bw)
        return ["OK"]

    def _pcr(self, arg: str) -> list[str]:
        if arg == "?":
            return [f"AT+PCR={int(self.params.codr[2]) - 5}", "OK"]
        self._set(codr=f"4/{self._int(arg, 0, 3) + 5}")
        return ["OK"]

    def _ppl(self, arg: str) -> list[str]:
        if arg == "?":
            return [f"AT+PPL={self.preamble}", "OK"]
        self.preamble = self._int(arg, 5, 65535)
        return ["OK"]

    def _ptp(self, arg: str) -> list[str]:
        if arg == "?":
            return [f"AT+PTP={round(self.params.power_dbm)}", "OK"]
        self._set(power_dbm=float(self._int(arg, 5, 22)))
        return ["OK"]

    def _psend(self, arg: str) -> list[str]:
        if not arg or len(arg) % 2 or len(arg) > 2 * MAX_PSEND_BYTES:
            raise ValueError(arg)
        payload = bytes.fromhex(arg)
        now = self.medium.now()
        if self.tx_until > now or self._receiving(now):
            return ["AT_BUSY_ERROR"]
        tx = self._transmit(payload)
        self._later(tx.end - now, lambda: self._reply(["+EVT:TXP2P DONE"]))
        return ["OK"]

    def _receiving(self, now: float) -> bool:
        return self.rx_mode == RX_CONTINUOUS or (self.rx_mode != RX_STOP
                                                 and now < self.rx_until)

    def _precv(self, arg: str) -> list[str]:
        if arg == "?":
            return [f"AT+PRECV={self.rx_mode}", "OK"]
        ms = self._int(arg, 0, 65535)
        now = self.medium.now()
        if ms != RX_STOP and self.tx_until > now:
            return ["AT_BUSY_ERROR"]
        self._rx_gen += 1
        self.rx_mode = ms
        if ms in (RX_STOP, RX_ONE, RX_CONTINUOUS):
            self.rx_until = float("inf") if ms != RX_STOP else -1.0
        else:
            self.rx_until = now + ms / 1000
            gen = self._rx_gen
            self._later(ms / 1000, lambda: self._rx_timeout(gen))
        return ["OK"]

    def _rx_timeout(self, gen: int) -> None:
        with self.lock:
            if gen != self._rx_gen or self.rx_mode == RX_STOP:
                return
            self.rx_mode = RX_STOP
        self._reply(["+EVT:RXP2P RECEIVE TIMEOUT"])

    # -- medium -----------------------------------------------------------------------------

    def _listening(self, tx: Transmission) -> bool:
        with self.lock:
            p = self.params
            on_channel = (round(tx.params.freq_mhz, 4) == round(p.freq_mhz, 4)
                          and tx.params.sf == p.sf and tx.params.bw_hz == p.bw_hz)
            if not on_channel or self.rx_mode == RX_STOP:
                return False
            # the preamble must begin while the window is open (the modem then stays in RX
            # to the end of the frame)
            return self.rx_mode in (RX_ONE, RX_CONTINUOUS) or tx.start < self.rx_until

    def _on_reception(self, r: Reception) -> None:
        with self.lock:
            self.heard.append(r)
            if r.outcome != "received":
                return
            if self.rx_mode != RX_CONTINUOUS:
                self._rx_gen += 1
                self.rx_mode = RX_STOP
        snr = round(r.snr)
        self._reply([f"+EVT:RXP2P:{round(r.rssi)}:{snr}:{r.tx.payload.hex().upper()}"])


class TransparentModem(_ModemBase):
    """SLIP DATA frames from the board go on the air; frames heard come back as DATA frames.
    It listens whenever it is not transmitting (an ideal, always-on receiver)."""

    def __init__(self, board: UartEndpoint, medium: RealtimeMedium, *, name: str | None = None,
                 position: tuple[float, float] = (0.0, 0.0),
                 params: RadioParams | None = None) -> None:
        super().__init__(board, medium, name=name, position=position,
                         params=params or RadioParams(freq_mhz=868.1, sf=7))
        self._decoder = LinkDecoder()
        self._queue: list[bytes] = []

    def describe(self) -> str:
        """One line for a summary: what the board sent and what went on the air."""
        with self.lock:
            st = self._decoder.stats
            errors = {k: v for k, v in st.items()
                      if v and k not in ("bytes", "ok", "empty", "skipped_bytes")}
            busy = self.tx_until - self.medium.now()
            return (f"modem {self.name}: {st['bytes']} bytes, {st['ok']} link frames from "
                    f"the UART, {len(self.sent)} on the air, {len(self._queue)} queued, "
                    f"busy {busy:+.3f} s, heard {len(self.heard)}, decoder {errors}, "
                    f"skipped {st['skipped_bytes']}")

    def _on_uart(self, data: bytes) -> None:
        for item in self._decoder.feed(data):
            if isinstance(item, LinkFrame) and item.link_type == LinkType.DATA:
                self._send(bytes(item.payload))

    def _send(self, payload: bytes) -> None:
        with self.medium.lock, self.lock:  # lock order: see _ModemBase
            now = self.medium.now()
            if self.tx_until > now:  # one frame at a time: the next waits its turn
                self._queue.append(payload)
                return
            tx = self._transmit(payload)
        self._later(tx.end - now, self._next)

    def _next(self) -> None:
        with self.lock:
            if not self._queue:
                return
            payload = self._queue.pop(0)
        self._send(payload)

    def _listening(self, tx: Transmission) -> bool:
        p = self.params
        return (round(tx.params.freq_mhz, 4) == round(p.freq_mhz, 4)
                and tx.params.sf == p.sf and tx.params.bw_hz == p.bw_hz)

    def _on_reception(self, r: Reception) -> None:
        with self.lock:
            self.heard.append(r)
        if r.outcome == "received":
            with contextlib.suppress(Exception):
                self._write(encode_link(LinkType.DATA, r.tx.payload))


def airtime(payload_len: int, params: RadioParams) -> float:
    return airtime_s(payload_len, params.sf, params.bw_hz, params.codr)
