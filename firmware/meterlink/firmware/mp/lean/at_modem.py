# Builds with HAS_AT_MODEM (rp2), config.txt modem=1: the AT-command LoRa
# modem, a RAK3172-class module running RUI3 in LoRa point-to-point mode, on
# the modem UART. Loaded last of the run phase's code: it sets the modem's
# P2P parameters when loaded (AT+NWM=0, AT+P2P=freq:sf:125:0:8:power, from
# state.py's RADIO). With modem=1, uplink.py's link() sends each payload with
# at_send() (AT+PSEND=<hex>, then +EVT:TXP2P DONE) and window.py's listen() opens
# the receive window with at_listen() once the frame has left the antenna
# (not at all if it did not): AT+PRECV=<ms left>, each
# +EVT:RXP2P:<rssi>:<snr>:<hex> decoded into F and handed to got(), the same
# handler the SLIP window (ack.py) uses; the modem leaves RX after a frame,
# so AT+PRECV is sent again for the rest of the window. No byte from the
# modem is special; pulses are polled while waiting.
from utime import ticks_ms, ticks_add, ticks_diff
from glue import uart, modem_read

HEX = b'0123456789ABCDEF'
L = bytearray(172)  # one line: +EVT:RXP2P:-130:-20: and 68 bytes in hex
O = bytearray(144)  # one command: AT+PSEND= and 64 bytes in hex
AQ = [b'', 0, 0]  # the chunk read from the UART, the offset in it, the last frame sent


def at_line(ms):
    # length of the next line from the modem within ms (in L), or -1
    e = ticks_add(ticks_ms(), ms)
    n = 0
    d = AQ[0]
    i = AQ[1]
    while 1:
        if i >= len(d):
            if ticks_diff(e, ticks_ms()) <= 0:
                AQ[0] = b''
                AQ[1] = 0
                return -1
            poll()
            d = modem_read() or b''
            i = 0
            continue
        c = d[i]
        i += 1
        if c == 10 or c == 13:
            if n:
                AQ[0] = d
                AQ[1] = i
                return n
        elif n < len(L):
            L[n] = c
            n += 1


def at_is(n, s):
    # 1 if the line in L (n bytes) starts with s
    if n < len(s):
        return 0
    for i in range(len(s)):
        if L[i] != s[i]:
            return 0
    return 1


def at_put(o, s):
    # s (bytes, or an int as decimal digits) into the command at O[o]; the next offset
    if isinstance(s, int):
        s = str(s).encode()
    for c in s:
        O[o] = c
        o += 1
    return o


def at_wait(ms, s):
    # length of the next line from the modem that starts with s (in L), each
    # line within ms; -1 on a timeout or an error line (AT_ERROR,
    # AT_PARAM_ERROR, AT_BUSY_ERROR ...)
    while 1:
        k = at_line(ms)
        if k < 0 or at_is(k, b'AT_'):
            return -1
        if at_is(k, s):
            return k


def at_cmd(n):
    # send O[0:n] and CR LF; true when the modem answers OK
    O[n] = 13
    O[n + 1] = 10
    uart.write(O[0:n + 2])
    return at_wait(1000, b'OK') >= 0


def at_init():
    # P2P mode and parameters: frequency, SF, 125 kHz, 4/5, preamble 8, power
    at_cmd(at_put(0, b'AT+NWM=0'))
    o = at_put(at_put(0, b'AT+P2P='), RADIO[1])
    o = at_put(at_put(o, b':'), RADIO[2])
    return at_cmd(at_put(at_put(o, b':125:0:8:'), RADIO[3]))


def at_send(n):
    # the radio payload F[0:n] (uplink.py's link()); true once the modem
    # reports TX done (at most 6 s: SF12, 51 bytes take 2.5 s), false if it
    # refused it or never said so (an alarm is then resent by its backoff);
    # kept in AQ[2] for at_listen()
    o = at_put(0, b'AT+PSEND=')
    for i in range(n):
        O[o] = HEX[F[i] >> 4]
        O[o + 1] = HEX[F[i] & 15]
        o += 2
    AQ[2] = at_cmd(o) and at_wait(6000, b'+EVT:TXP2P') >= 0
    return AQ[2]


def at_nib(c):
    # the value of hex digit c, or -1
    if 48 <= c <= 57:
        return c - 48
    c |= 32
    return c - 87 if 97 <= c <= 102 else -1


def at_listen(ms):
    # the receive window (ack.py's listen()): ms from TX done, if the frame
    # went out; each downlink goes to got()
    if not AQ[2]:
        return
    e = ticks_add(ticks_ms(), ms)
    while 1:
        w = ticks_diff(e, ticks_ms())
        if w <= 0 or not at_cmd(at_put(at_put(0, b'AT+PRECV='), w)):
            return
        k = at_wait(w + 3000, b'+EVT:RXP2P')  # a frame begun in time ends later
        if k < 0:
            return
        # +EVT:RXP2P:<rssi>:<snr>:<hex>: the payload follows the fourth colon
        i = j = 0
        while i < k and j < 4:
            if L[i] == 58:
                j += 1
            i += 1
        if j < 4:
            return  # RECEIVE TIMEOUT
        n = 0
        while i + 1 < k and n < 64:
            a = at_nib(L[i])
            b = at_nib(L[i + 1])
            if a < 0 or b < 0:
                break
            F[n] = a << 4 | b
            n += 1
            i += 2
        if 10 < n:
            got(n)  # the SLIP window's handler (window.py): ack, config, time


if RADIO[0]:  # modem=1
    at_init()
