# LoRa time on air (Semtech's formula at 125 kHz: preamble 8, explicit
# header, CRC on, coding rate 4/5, low data rate optimisation from SF11) and
# the duty-cycle budget of the module's EU868 sub-band, kept as a bucket of
# airtime (us) that refills at the band's rate and holds one hour's worth.
import board

# sub-band: lowest Hz, highest Hz, duty cycle in 1/1000 (ERC 70-03)
_BANDS = ((863000000, 865000000, 1), (865000000, 868600000, 10),
          (868700000, 869200000, 1), (869400000, 869650000, 100),
          (869700000, 870000000, 10))


def air_us(n, sf):
    # time on air of an n-byte frame at spreading factor sf, microseconds
    t = 8 << sf  # one symbol at 125 kHz
    d = 4 * (sf - 2) if sf > 10 else 4 * sf
    k = 8 * n - 4 * sf + 44
    k = (k + d - 1) // d if k > 0 else 0
    return 49 * t // 4 + (8 + 5 * k) * t


def rate(f):
    # duty cycle of the sub-band holding frequency f (Hz), in 1/1000
    for lo, hi, r in _BANDS:
        if lo <= f < hi:
            return r
    return 1


def init(c):
    # a full bucket at boot
    c.dcr = rate(c.lf)
    c.dcb = 3600000 * c.dcr
    c.dct = board.ticks_ms()


def ok(c, n):
    # True, and the airtime charged, if an n-byte frame fits the budget now
    t = board.ticks_ms()
    c.dcb = min(3600000 * c.dcr, c.dcb + board.ticks_diff(t, c.dct) * c.dcr)
    c.dct = t
    a = air_us(n, c.sf)
    if c.dcb < a:
        return False
    c.dcb -= a
    return True
