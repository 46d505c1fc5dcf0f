"""A LoRa medium: frames occupy their channel for their time on air, collide, fade.

Each transmission lasts its airtime (Semtech's formula, `meterlink.protocol.lora`). At each
radio that listens, a frame is received when (1) the radio was listening when its preamble
began and did not transmit during it, (2) its RSSI (transmit power minus the pair's path
loss) is at or above the SF's sensitivity, and (3) it is at least `capture_db` (6 dB)
stronger than the sum of every other frame on the same frequency and SF that overlaps it
in time (the capture effect: the stronger frame survives, both are lost otherwise).
Different SFs are treated as orthogonal. Path loss: log-distance from positions, plus a
shadowing draw per pair from a `random.Random` seeded with the medium seed and the pair's
names, or set per pair; so the same seed, placement and transmit times give the same
outcomes.

The medium is pure: `transmit()` at a time, `resolve(until)` hands out the receptions of
frames that ended by then. `RealtimeMedium` runs it against the monotonic clock in a thread
for the emulated concentrators and modems; the capacity benchmark drives it in simulated
time.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from meterlink.protocol.lora import airtime_s

# SX1276/SX1262 datasheet sensitivities at 125 kHz, dBm, and the SNR a demodulator needs.
SENSITIVITY_DBM = {7: -123.0, 8: -126.0, 9: -129.0, 10: -132.0, 11: -134.5, 12: -137.0}
SNR_LIMIT_DB = {7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}
NOISE_FIGURE_DB = 6.0
CAPTURE_DB = 6.0


def noise_floor_dbm(bw_hz: int) -> float:
    return -174.0 + 10 * math.log10(bw_hz) + NOISE_FIGURE_DB


@dataclass(frozen=True)
class RadioParams:
    freq_mhz: float = 868.1
    sf: int = 12
    bw_hz: int = 125_000
    codr: str = "4/5"
    power_dbm: float = 14.0
    iq_inverted: bool = False

    @property
    def datr(self) -> str:
        return f"SF{self.sf}BW{self.bw_hz // 1000}"

    def channel(self) -> tuple[float, int, int]:
        return (round(self.freq_mhz, 4), self.sf, self.bw_hz)


@dataclass
class Transmission:
    seq: int
    source: str
    payload: bytes
    params: RadioParams
    start: float
    end: float

    @property
    def airtime(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Reception:
    """The outcome of one frame at one listening radio. outcome: received, collision,
    below_sensitivity, not_listening, half_duplex (the radio was transmitting), wrong_iq."""

    tx: Transmission
    receiver: str
    rssi: float
    snr: float
    outcome: str


Listening = Callable[[Transmission], bool]  # was the radio in RX, on this channel, at start?
OnReception = Callable[[Reception], None]


@dataclass
class _Radio:
    name: str
    position: tuple[float, float]
    listening: Listening | None  # None: never receives (a sender only)
    on_reception: OnReception | None
    inverted_iq_rx: bool | None = None  # None: hears both polarities (a concentrator)
    transmitting: list[tuple[float, float]] = field(default_factory=list)


class LoRaMedium:
    def __init__(self, *, seed: int = 0, capture_db: float = CAPTURE_DB,
                 path_loss_exponent: float = 2.7, ref_loss_db: float = 40.0,
                 shadowing_db: float = 6.0) -> None:
        self.seed = seed
        self.capture_db = capture_db
        self.exponent = path_loss_exponent
        self.ref_loss_db = ref_loss_db  # at 1 m, 868 MHz free space is ~31 dB; walls etc.
        self.shadowing_db = shadowing_db
        self.radios: dict[str, _Radio] = {}
        self._listeners: list[_Radio] = []
        self.loss_override: dict[frozenset[str], float] = {}
        self._loss_cache: dict[frozenset[str], float] = {}
        self._active: list[Transmission] = []  # not yet resolved, by start
        self._recent: list[Transmission] = []  # resolved, kept while they may overlap others
        self._seq = itertools.count()
        self.counts: dict[str, int] = {}
        self.transmissions = 0

    # -- placement --------------------------------------------------------------------------

    def add_radio(self, name: str, *, position: tuple[float, float] = (0.0, 0.0),
                  listening: Listening | None = None, on_reception: OnReception | None = None,
                  inverted_iq_rx: bool | None = None) -> None:
        if name in self.radios:
            raise ValueError(f"a radio named {name!r} is already on the medium")
        self.radios[name] = _Radio(name, position, listening, on_reception, inverted_iq_rx)
        if listening is not None:
            self._listeners.append(self.radios[name])

    def set_path_loss(self, a: str, b: str, loss_db: float) -> None:
        self.loss_override[frozenset((a, b))] = loss_db

    def path_loss_db(self, a: str, b: str) -> float:
        key = frozenset((a, b))
        if key in self.loss_override:
            return self.loss_override[key]
        cached = self._loss_cache.get(key)
        if cached is None:
            (x1, y1), (x2, y2) = self.radios[a].position, self.radios[b].position
            d = max(1.0, math.hypot(x2 - x1, y2 - y1))
            lo, hi = sorted((a, b))
            shadow = random.Random(f"{self.seed}/{lo}/{hi}").gauss(0.0, self.shadowing_db)
            cached = self._loss_cache[key] = (self.ref_loss_db + 10 * self.exponent
                                              * math.log10(d) + shadow)
        return cached

    def rssi(self, tx: Transmission, receiver: str) -> float:
        return tx.params.power_dbm - self.path_loss_db(tx.source, receiver)

    # -- air --------------------------------------------------------------------------------

    def transmit(self, source: str, payload: bytes, params: RadioParams,
                 start: float) -> Transmission:
        """Puts a frame on the air at `start` (seconds, medium time). Frames must be given
        in non-decreasing start order."""
        if source not in self.radios:
            raise ValueError(f"unknown radio {source!r}: add_radio() it first")
        end = start + airtime_s(len(payload), params.sf, params.bw_hz, params.codr)
        tx = Transmission(next(self._seq), source, bytes(payload), params, start, end)
        self.radios[source].transmitting.append((start, end))
        self._active.append(tx)
        self.transmissions += 1
        return tx

    def busy_until(self, source: str) -> float:
        spans = self.radios[source].transmitting
        return spans[-1][1] if spans else -math.inf

    def resolve(self, until: float) -> list[Reception]:
        """Receptions of every frame that ended at or before `until`, in end order; each
        listening radio's callback is called with its own."""
        ended = sorted((t for t in self._active if t.end <= until), key=lambda t: t.end)
        if not ended:
            return []
        ended_ids = {t.seq for t in ended}
        out: list[Reception] = []
        for tx in ended:
            overlapping = [o for o in itertools.chain(self._recent, self._active)
                           if o.seq != tx.seq and o.start < tx.end and tx.start < o.end]
            for radio in self._listeners:
                if radio.name == tx.source:
                    continue
                r = self._judge(tx, radio, overlapping)
                if r is None:
                    continue
                out.append(r)
                self.counts[r.outcome] = self.counts.get(r.outcome, 0) + 1
                if radio.on_reception is not None:
                    radio.on_reception(r)
        self._active = [t for t in self._active if t.seq not in ended_ids]
        self._recent.extend(ended)
        horizon = min([t.start for t in self._active], default=until)
        self._recent = [t for t in self._recent if t.end > horizon]
        src = self.radios[ended[-1].source]  # spans older than a minute can overlap nothing
        if len(src.transmitting) > 8:
            src.transmitting = [s for s in src.transmitting if s[1] >= horizon - 60]
        return out

    def _judge(self, tx: Transmission, radio: _Radio,
               overlapping: list[Transmission]) -> Reception | None:
        assert radio.listening is not None
        if not radio.listening(tx):
            return None  # nothing to count: the radio was elsewhere (or asleep)
        rssi = self.rssi(tx, radio.name)
        noise_mw = 10 ** (noise_floor_dbm(tx.params.bw_hz) / 10)
        snr = rssi - noise_floor_dbm(tx.params.bw_hz)

        def result(outcome: str, snr_db: float = snr) -> Reception:
            return Reception(tx, radio.name, round(rssi, 1), round(snr_db, 1), outcome)

        if any(s < tx.end and tx.start < e for s, e in radio.transmitting):
            return result("half_duplex")
        if radio.inverted_iq_rx is not None and radio.inverted_iq_rx != tx.params.iq_inverted:
            return result("wrong_iq")
        if rssi < SENSITIVITY_DBM[tx.params.sf] or snr < SNR_LIMIT_DB[tx.params.sf]:
            return result("below_sensitivity")
        interferers = [o for o in overlapping if o.params.channel() == tx.params.channel()
                       and o.source != radio.name]
        if interferers:
            i_mw = sum(10 ** (self.rssi(o, radio.name) / 10) for o in interferers)
            if rssi - 10 * math.log10(i_mw) < self.capture_db:
                return result("collision")
            snr = rssi - 10 * math.log10(i_mw + noise_mw)
        return result("received", min(snr, 20.0))


class RealtimeMedium:
    """A LoRaMedium on the monotonic clock, for emulated radios in threads. Callbacks run in
    the medium's thread and must only hand the reception over (queue, socket)."""

    def __init__(self, medium: LoRaMedium | None = None, *, tick_s: float = 0.005) -> None:
        self.medium = medium or LoRaMedium()
        self.tick_s = tick_s
        self.lock = threading.RLock()
        self.t0 = time.monotonic()
        self.log: list[Reception] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def add_radio(self, name: str, **kwargs: object) -> None:
        with self.lock:
            self.medium.add_radio(name, **kwargs)  # type: ignore[arg-type]

    def transmit(self, source: str, payload: bytes, params: RadioParams,
                 start: float | None = None) -> Transmission:
        with self.lock:
            return self.medium.transmit(source, payload, params,
                                        self.now() if start is None else start)

    def start(self) -> RealtimeMedium:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lora-medium", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            with self.lock:
                self.log.extend(self.medium.resolve(self.now()))
                if len(self.log) > 100_000:
                    del self.log[:50_000]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None

    def outcomes(self) -> dict[str, int]:
        with self.lock:
            return dict(self.medium.counts)
