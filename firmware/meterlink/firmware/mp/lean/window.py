# The receive window of a build with downlinks or the AT modem (a feature
# file: config_downlink, time_downlink or at_modem; protocol 5, 6.3): link
# frames from the modem, each a DATA frame with a radio payload for got():
# the ack of the alarm frame waiting for one (protocol 4.4) and, with those
# features, the config and time downlinks (downlink.py); the AT modem's window
# (at_modem.py) feeds got() too. Anything else heard (other link types, bad
# CRC or escapes, overlong, a bad MIC) is dropped. Nothing heard is a way to
# the REPL: Ctrl-C is off and no byte sequence is special (maintenance needs
# the maintenance input, docs/protocol.md section 5). A build without any of
# them keeps the ack-only window of ack.py, which costs the nRF51 about 190
# bytes less heap (docs/firmware.md, "Downlinks").
import struct
from utime import ticks_ms, ticks_add, ticks_diff
from glue import modem_read
from fields import *  # the state indexes (inlined by the bundler)



def listen(ms):
    # listen for ms milliseconds, counting pulses. A link frame is received into
    # F (free while the window is open: an alarm frame is kept in A): its link
    # type in F's last byte (index -1), the radio payload from F[0], then the
    # CRC. A DATA frame with a payload of 11 bytes (an ack) to 64 (the largest
    # downlink) goes to got(): its CRC is checked from 0xF1D1, the CRC of the
    # DATA type byte (0x01), so a frame of another type fails it
    if HAS_AT_MODEM:
        if RADIO[0]:  # modem=1: the AT modem's window (at_modem.py)
            at_listen(ms)
            return
    e = ticks_add(ticks_ms(), ms)
    j = -1
    x = 0
    while ticks_diff(e, ticks_ms()) > 0:
        poll()
        for c in modem_read() or ():  # link data only: no byte is special here
            if c == 0xC0:
                j -= 2  # the payload's length
                if 10 < j < 65 and not x and crc(F, j, 0xF1D1) == F[j] << 8 | F[j + 1]:
                    got(j)
                j = -1
                x = 0
            elif c == 0xDB:
                x = 1
            else:
                if x:
                    if c != 0xDC and c != 0xDD:
                        j = 99  # an invalid escape spoils the frame (protocol 5)
                    c = 0xC0 if c == 0xDC else 0xDB
                    x = 0
                if j < 67:
                    F[j] = c
                j += 1


def got(n):
    # the radio payload F[0:n] (11..64 bytes), if its MIC is right over its
    # whole counter (protocol 3.3, 3.4; with this module's key: a frame for
    # another module, whose key is its own, fails it, the device id being in
    # the MAC), which it is put in: the body and MIC moved up 2 bytes, the
    # counter at F[5:9], so the body is F[9:n-2]. An ack (no body, the low 16
    # bits of the counter on air) is taken for the alarm frame waiting for
    # one, and ends its sends
    t = F[0]
    c = V[V_AFC] if V[V_ALEN] and n == 11 and F[5] << 8 | F[6] == V[V_AFC] & 65535 else -1
    if HAS_CONFIG_DOWNLINK:
        if t == 0x29:
            c = fresh()
    if HAS_TIME_DOWNLINK:
        if t == 0x2A:
            c = fresh()
    if c < 0:
        return
    for i in range(n - 1, 6, -1):
        F[i + 2] = F[i]
    struct.pack_into('>I', F, 5, c)
    if cmac(F, n - 2)[0:4] == F[n - 2:n + 2]:
        if t == 0x28 and n == 11:  # an ack has no body (protocol 4.4)
            done()
        if HAS_CONFIG_DOWNLINK:
            if t == 0x29:
                downlink(n, c)
        if HAS_TIME_DOWNLINK:
            if t == 0x2A:
                downlink(n, c)
