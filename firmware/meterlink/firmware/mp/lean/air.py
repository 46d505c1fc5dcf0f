# Builds with HAS_DUTY_CYCLE_BUDGET (rp2): LoRa time on air (Semtech's
# formula at 125 kHz: preamble 8, explicit header, CRC on, coding rate 4/5,
# low data rate optimisation from SF11) and the duty-cycle budget of the
# module's EU868 sub-band, kept as a bucket of airtime (us) that refills at the
# band's rate, holds one hour's worth and is full at boot (docs/firmware.md,
# "The LoRa modem"). Loaded into the run phase's namespace after state.py,
# whose RADIO holds modem, lora_freq, lora_sf and lora_power; uplink.py asks
# budget() before it builds a frame.
from utime import ticks_ms, ticks_diff

# sub-band: lowest Hz, highest Hz, duty cycle in 1/1000 (ERC 70-03)
BANDS = ((863000000, 865000000, 1), (865000000, 868600000, 10),
         (868700000, 869200000, 1), (869400000, 869650000, 100),
         (869700000, 870000000, 10))


def air_us(n, sf):
    # time on air of an n-byte frame at spreading factor sf, microseconds
    t = 8 << sf  # one symbol at 125 kHz
    d = 4 * (sf - 2) if sf > 10 else 4 * sf
    k = 8 * n - 4 * sf + 44
    k = (k + d - 1) // d if k > 0 else 0
    return 49 * t // 4 + (8 + 5 * k) * t


def band_rate(f):
    # duty cycle of the sub-band holding frequency f (Hz), in 1/1000
    for lo, hi, r in BANDS:
        if lo <= f < hi:
            return r
    return 1


# the bucket: rate (1/1000), airtime left (us), when it was last topped up
DC = [band_rate(RADIO[1]), 0, ticks_ms()]
DC[1] = 3600000 * DC[0]


def budget(n):
    # 1, and the airtime charged, if an n-byte frame fits the budget now
    t = ticks_ms()
    DC[1] = min(3600000 * DC[0], DC[1] + ticks_diff(t, DC[2]) * DC[0])
    DC[2] = t
    a = air_us(n, RADIO[2])
    if DC[1] < a:
        return 0
    DC[1] -= a
    return 1
