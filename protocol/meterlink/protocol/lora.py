"""LoRa radio arithmetic the protocol's sizes and windows rest on: data-rate names, time on
air (Semtech's formula from the SX127x/SX126x datasheets and AN1200.13) and the EU868
sub-bands with their duty-cycle limits. No I/O; used by the gateway, the HIL medium and the
capacity benchmark.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

BANDWIDTHS_HZ = (125_000, 250_000, 500_000)
SPREADING_FACTORS = (7, 8, 9, 10, 11, 12)
CODING_RATES = ("4/5", "4/6", "4/7", "4/8")
PREAMBLE_SYMBOLS = 8

_DATR = re.compile(r"^SF(\d{1,2})BW(\d{3})$")


class LoRaParamError(ValueError):
    """A data rate or coding rate that is not a LoRa one."""


@dataclass(frozen=True)
class DataRate:
    sf: int
    bw_hz: int = 125_000

    @property
    def name(self) -> str:
        """The packet forwarder's `datr` string, e.g. "SF12BW125"."""
        return f"SF{self.sf}BW{self.bw_hz // 1000}"

    @classmethod
    def parse(cls, datr: str) -> DataRate:
        m = _DATR.match(datr) if isinstance(datr, str) else None
        if m is None:
            raise LoRaParamError(f"data rate {datr!r} is not of the form SF7BW125 .. SF12BW500")
        sf, bw = int(m.group(1)), int(m.group(2)) * 1000
        if sf not in SPREADING_FACTORS or bw not in BANDWIDTHS_HZ:
            raise LoRaParamError(f"data rate {datr!r}: SF must be 7..12 and BW 125, 250 or 500")
        return cls(sf, bw)


def coding_rate_index(codr: str) -> int:
    """"4/5" -> 1 .. "4/8" -> 4 (the CR in Semtech's formula)."""
    if codr not in CODING_RATES:
        raise LoRaParamError(f"coding rate {codr!r} is not one of {', '.join(CODING_RATES)}")
    return int(codr[2]) - 4


def symbol_time_s(sf: int, bw_hz: int = 125_000) -> float:
    return float(2 ** sf) / bw_hz


def airtime_s(payload_len: int, sf: int, bw_hz: int = 125_000, codr: str = "4/5", *,
              preamble: int = PREAMBLE_SYMBOLS, explicit_header: bool = True,
              crc: bool = True, low_dr_optimize: bool | None = None) -> float:
    """Time on air of one LoRa packet, in seconds.

    T = (n_preamble + 4.25) * Ts + (8 + max(ceil((8PL - 4SF + 28 + 16CRC - 20IH)
        / (4 (SF - 2DE))) (CR + 4), 0)) * Ts, with DE on when a symbol lasts over 16 ms.
    """
    if not 0 <= payload_len <= 255:
        raise LoRaParamError(f"payload length {payload_len} is outside 0..255")
    ts = symbol_time_s(sf, bw_hz)
    de = (ts > 0.016) if low_dr_optimize is None else low_dr_optimize
    cr = coding_rate_index(codr)
    num = 8 * payload_len - 4 * sf + 28 + (16 if crc else 0) - (0 if explicit_header else 20)
    den = 4 * (sf - (2 if de else 0))
    n_payload = 8 + max(math.ceil(num / den) * (cr + 4), 0)
    return (preamble + 4.25) * ts + n_payload * ts


@dataclass(frozen=True)
class SubBand:
    """An EU868 sub-band (ETSI EN 300 220 / ERC 70-03) and its duty-cycle limit."""

    name: str
    lo_mhz: float
    hi_mhz: float
    duty_cycle: float

    def contains(self, freq_mhz: float) -> bool:
        return self.lo_mhz <= freq_mhz < self.hi_mhz


EU868_SUB_BANDS = (
    SubBand("g", 863.0, 865.0, 0.001),
    SubBand("g1", 865.0, 868.0, 0.01),
    SubBand("g2", 868.0, 868.6, 0.01),
    SubBand("g3", 868.7, 869.2, 0.001),
    SubBand("g4", 869.4, 869.65, 0.10),
    SubBand("g5", 869.7, 870.0, 0.01),
)

# The three channels every EU868 LoRa device supports (LoRaWAN Regional Parameters).
EU868_DEFAULT_CHANNELS_MHZ = (868.1, 868.3, 868.5)


def sub_band(freq_mhz: float) -> SubBand:
    for band in EU868_SUB_BANDS:
        if band.contains(freq_mhz):
            return band
    raise LoRaParamError(f"{freq_mhz} MHz is not in an EU868 sub-band")
