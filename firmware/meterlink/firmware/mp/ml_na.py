# nRF51 profile: the receive window after an alarm frame (protocol 5, 4.4):
# an ack from the gateway whose counter is the alarm frame's ends the alarm
# session. Anything else heard (other link types, other devices, config and
# time downlinks, bad CRC or MIC) is ignored. The maintenance input is not
# watched here (16 bytes of code too many for the run phase's loading):
# ml_nl sees it at the first 100 ms check after the window.
import struct
from micropython import const
from utime import ticks_ms, ticks_add, ticks_diff

_AN = const(13)
_AFC = const(14)
_DEV = const(22)


def ack(ms):
    # listen for ms milliseconds, counting pulses; R holds the link frame
    # being received: type, payload (an ack is 13 bytes), CRC
    e = ticks_add(ticks_ms(), ms)
    r = R
    j = x = 0
    while ticks_diff(e, ticks_ms()) > 0:
        poll()
        for c in rx() or ():
            if c == 0xC0:
                if (j == 16 and r[0] == 1 and r[1] == 0x18
                        and crc(r, 14) == r[14] << 8 | r[15]
                        and struct.unpack_from('>II', r, 2) == (V[_DEV], V[_AFC])
                        and cmac(r, 9, 1)[0:4] == r[10:14]):
                    done()
                    return
                j = x = 0
            elif c == 0xDB:
                x = 1
            else:
                if x:
                    c = 0xC0 if c == 0xDC else 0xDB
                    x = 0
                if j < 16:
                    r[j] = c
                j += 1


def done():
    # the alarm frame was acked or sent 8 times
    V[_AN] = 0
    V[10] &= ~32  # the unexpected-reset alarm has been reported
