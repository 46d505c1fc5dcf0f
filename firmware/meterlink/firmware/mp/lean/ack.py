# The receive window after an alarm frame in a build without downlinks or the
# AT modem (the nRF51 as shipped; with them window.py's listen() is used):
# only the ack of the alarm frame waiting for one ends its sends (protocol
# 4.4). Anything else heard (other link types, other devices, bad CRC, MIC or
# escapes) is ignored, and nothing is a way to the REPL: Ctrl-C is off and no
# byte sequence is special (maintenance needs the maintenance input,
# docs/protocol.md section 5). The maintenance input is not watched here (16
# bytes of code too many for the nRF51 run phase's loading): loop.py sees it
# at the first 100 ms check after the window.
import struct
from utime import ticks_ms, ticks_add, ticks_diff
from glue import modem_read
from fields import *  # the state indexes (inlined by the bundler)



def ack(ms):
    # listen for ms milliseconds, counting pulses; F (free while the window is
    # open: the alarm frame is kept in A) holds the link frame being received:
    # type, payload (an ack is 11 bytes), CRC. The ack's MIC covers the whole
    # 32-bit counter: it is written over F[6:10] once the 16 bits on air match
    # (protocol 3.4)
    e = ticks_add(ticks_ms(), ms)
    r = F
    j = x = 0
    while ticks_diff(e, ticks_ms()) > 0:
        poll()
        for c in modem_read() or ():
            if c == 0xC0:
                if (j == 14 and not x and r[0] == 1 and r[1] == 0x28
                        and crc(r, 12) == r[12] << 8 | r[13]
                        and struct.unpack_from('>IH', r, 2) == (V[V_DEV], V[V_AFC] & 65535)):
                    m = r[8:12]
                    struct.pack_into('>I', r, 6, V[V_AFC])
                    if cmac(r, 9, 1)[0:4] == m:
                        done()
                        return
                j = x = 0
            elif c == 0xDB:
                x = 1
            else:
                if x:
                    if c != 0xDC and c != 0xDD:
                        j = 99  # an invalid escape spoils the frame (protocol 5)
                    c = 0xC0 if c == 0xDC else 0xDB
                    x = 0
                if j < 16:
                    r[j] = c
                j += 1


def done():
    # the alarm frame was acked or sent 8 times
    V[V_ALEN] = 0
    V[V_ACT] &= ~32  # the unexpected-reset alarm has been reported
