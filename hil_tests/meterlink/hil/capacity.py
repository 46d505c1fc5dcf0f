"""How many modules one concentrator serves: the firmware's send schedule on the LoRa
medium in simulated time, without QEMU.

Each module sends one reading at the end of each interval on its own grid (the firmware
starts the grid at boot and never jitters it), its crystal off by up to `drift_ppm`, on
the single P2P channel it is configured for (or a random one of `channels`). Its SF is the
smallest whose sensitivity its path loss to the concentrator meets with `sf_margin_db`
to spare, as an installer would set it from a field test. A reading carries the deltas
of the last `history` intervals, so an interval reaches the broker when any of the
`history` readings that carry it gets through: that is the back-fill.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field

from meterlink.hil.lora_medium import SENSITIVITY_DBM, LoRaMedium, RadioParams, Reception
from meterlink.protocol.lora import airtime_s

TX_POWER_DBM = 14.0
READING_BYTES = 50  # a household reading with 12 deltas (protocol section 7)


@dataclass
class CapacityResult:
    modules: int
    scenario: str
    frames: int = 0
    received: int = 0
    collided: int = 0
    below_sensitivity: int = 0
    intervals: int = 0
    intervals_direct: int = 0  # their own reading got through
    intervals_backfill: int = 0  # their own or one of the next history-1 readings did
    sf_count: dict[int, int] = field(default_factory=dict)
    sf_lost: dict[int, int] = field(default_factory=dict)
    max_duty_cycle: float = 0.0

    @property
    def collision_loss(self) -> float:
        return self.collided / self.frames if self.frames else 0.0

    @property
    def frame_delivery(self) -> float:
        return self.received / self.frames if self.frames else 0.0

    @property
    def direct_share(self) -> float:
        return self.intervals_direct / self.intervals if self.intervals else 0.0

    @property
    def backfill_share(self) -> float:
        return self.intervals_backfill / self.intervals if self.intervals else 0.0


def choose_sf(rssi_dbm: float, margin_db: float) -> int:
    for sf in range(7, 13):
        if rssi_dbm >= SENSITIVITY_DBM[sf] + margin_db:
            return sf
    return 12


def simulate(n_modules: int, *, seed: int = 15, scenario: str = "", interval_s: float = 900.0,
             intervals: int = 60, history: int = 12, radius_m: float = 3000.0,
             channels: tuple[float, ...] = (868.1,), hop: bool = False,
             jitter_s: float = 0.0, drift_ppm: float = 20.0, sf_margin_db: float = 10.0,
             fixed_sf: int | None = None, payload_len: int = READING_BYTES) -> CapacityResult:
    """Runs `intervals` intervals; the first `history` are warm-up (the medium fills up) and
    the last `history - 1` only back-fill earlier ones, so the counted intervals all have
    their full back-fill chance."""
    rng = random.Random(f"capacity/{seed}/{n_modules}/{scenario}")
    medium = LoRaMedium(seed=seed)
    got: dict[int, Reception] = {}
    medium.add_radio("gw", position=(0.0, 0.0), listening=lambda tx: True,
                     on_reception=lambda r: got.__setitem__(r.tx.seq, r))
    res = CapacityResult(n_modules, scenario)
    params: list[RadioParams] = []
    starts: list[float] = []
    ppms: list[float] = []
    for i in range(n_modules):
        r, a = radius_m * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        name = f"m{i}"
        medium.add_radio(name, position=(r * math.cos(a), r * math.sin(a)))
        rssi = TX_POWER_DBM - medium.path_loss_db(name, "gw")
        sf = fixed_sf or choose_sf(rssi, sf_margin_db)
        params.append(RadioParams(freq_mhz=channels[i % len(channels)], sf=sf,
                                  power_dbm=TX_POWER_DBM))
        res.sf_count[sf] = res.sf_count.get(sf, 0) + 1
        starts.append(rng.uniform(0, interval_s))  # boot time sets the grid
        ppms.append(rng.uniform(-drift_ppm, drift_ppm))
    heap = [(starts[i], i, 0) for i in range(n_modules)]
    heapq.heapify(heap)
    sent: dict[int, tuple[int, int]] = {}  # tx seq -> (module, interval)
    payload = bytes(payload_len)
    n = 0
    while heap:
        t, i, k = heapq.heappop(heap)
        p = params[i]
        if hop:
            p = RadioParams(freq_mhz=rng.choice(channels), sf=p.sf, power_dbm=p.power_dbm)
        tx = medium.transmit(f"m{i}", payload, p, start=t)
        sent[tx.seq] = (i, k)
        if k + 1 < intervals:
            nxt = starts[i] + (k + 1) * interval_s * (1 + ppms[i] * 1e-6)
            if jitter_s:
                nxt += rng.uniform(0, jitter_s)
            heapq.heappush(heap, (max(nxt, tx.end), i, k + 1))
        n += 1
        if n % 64 == 0:
            medium.resolve(t)
    medium.resolve(math.inf)
    received = [[False] * intervals for _ in range(n_modules)]
    for seq, (i, k) in sent.items():
        rec = got.get(seq)
        counted = history <= k < intervals
        outcome = rec.outcome if rec is not None else "not_heard"
        if counted:
            res.frames += 1
            sf = params[i].sf
            if outcome == "received":
                res.received += 1
            else:
                res.sf_lost[sf] = res.sf_lost.get(sf, 0) + 1
                if outcome == "collision":
                    res.collided += 1
                elif outcome == "below_sensitivity":
                    res.below_sensitivity += 1
        received[i][k] = outcome == "received"
    for i in range(n_modules):
        row = received[i]
        for k in range(history, intervals - history + 1):
            res.intervals += 1
            res.intervals_direct += row[k]
            res.intervals_backfill += any(row[k:k + history])
    worst = max((airtime_s(payload_len, p.sf) for p in params), default=0.0)
    res.max_duty_cycle = worst / interval_s
    return res
