"""The LoRa radio the protocol assumes (spec 6): parameters, Semtech's airtime formula,
the receive window and the EU868 duty-cycle budget. Numbers only, no I/O."""

from __future__ import annotations

import math

from .constants import MAX_DOWNLINK, OVERHEAD
from .lora import airtime_s

__all__ = [
    "BANDWIDTH_HZ",
    "CHANNELS_HZ",
    "CODING_RATE",
    "DUTY_CYCLE",
    "GATEWAY_DELAY_MS",
    "PREAMBLE_SYMBOLS",
    "SPREADING_FACTORS",
    "SYNC_WORD",
    "airtime_ms",
    "duty_cycle_budget_s",
    "receive_window_ms",
]

CHANNELS_HZ = (868_100_000, 868_300_000, 868_500_000)  # one sub-band, 868.0-868.6 MHz
BANDWIDTH_HZ = 125_000
SPREADING_FACTORS = range(7, 13)
CODING_RATE = 1  # 4/5: the CR of Semtech's formula
PREAMBLE_SYMBOLS = 8
SYNC_WORD = 0x12  # a private network's
DUTY_CYCLE = 0.01  # per sub-band (ETSI EN 300 220)
GATEWAY_DELAY_MS = 1000  # from the end of an uplink to the start of the answer, at most
WINDOW_GUARD_MS = 100


def airtime_ms(payload_len: int, sf: int, *, crc: bool = True, explicit_header: bool = True,
               bandwidth_hz: int = BANDWIDTH_HZ) -> float:
    """Time on air of one LoRa packet at the protocol's coding rate (Semtech's formula,
    meterlink.protocol.lora.airtime_s), in ms."""
    if sf not in SPREADING_FACTORS:
        raise ValueError(f"SF{sf}: the protocol uses SF7 to SF12")
    return 1000 * airtime_s(payload_len, sf, bandwidth_hz, "4/5", preamble=PREAMBLE_SYMBOLS,
                            crc=crc, explicit_header=explicit_header)


def receive_window_ms(sf: int) -> int:
    """Spec 6.3: the gateway's delay, an ack and the largest downlink, a guard; rounded up
    to 100 ms."""
    w = GATEWAY_DELAY_MS + airtime_ms(OVERHEAD, sf) + airtime_ms(MAX_DOWNLINK, sf)
    return int(math.ceil((w + WINDOW_GUARD_MS) / 100.0) * 100)


def duty_cycle_budget_s(window_s: float = 3600.0) -> float:
    """Airtime a transmitter may use in any `window_s` on one sub-band (36 s an hour)."""
    return DUTY_CYCLE * window_s
