# The AT-command LoRa modem: a RAK3172-class module running RUI3 in LoRa
# point-to-point mode. init() sets its P2P parameters at boot; send() and
# listen() do what ml_link's do, over text lines: AT+PSEND=<hex> then
# +EVT:TXP2P DONE; the receive window opens on TX done with AT+PRECV=<ms>,
# each +EVT:RXP2P:<rssi>:<snr>:<hex> is a downlink. No byte from the modem
# is special (maintenance is Ctrl-C on the USB console); pulses are polled
# while waiting.
from micropython import const
import board

_HEX = b'0123456789ABCDEF'
_TXMS = const(6000)  # PSEND to TX DONE at most (SF12, 51 bytes: 2.5 s)
_ANS = const(1000)  # a command's answer
_L = bytearray(172)  # one line: +EVT:RXP2P:-130:-20: and 68 bytes in hex
_O = bytearray(144)  # one command: AT+PSEND= and 64 bytes in hex
_R = bytearray(65)  # a downlink as ml_dl.got() takes it (payload from 1)
_q = [b'', 0]  # the chunk being read and the offset in it


def _line(c, ms):
    # length of the next line from the modem within ms (in _L), or -1
    end = board.ticks_add(board.ticks_ms(), ms)
    n = 0
    d, i = _q
    while True:
        if i >= len(d):
            if board.ticks_diff(end, board.ticks_ms()) <= 0:
                _q[0] = b''
                _q[1] = 0
                return -1
            c.poll()
            d = board.read()
            if not d:
                d = b''
                continue
            i = 0
        v = d[i]
        i += 1
        if v == 10 or v == 13:
            if n:
                _q[0] = d
                _q[1] = i
                return n
        elif n < len(_L):
            _L[n] = v
            n += 1


def _is(n, s):
    # the line in _L (n bytes) starts with s
    if n < len(s):
        return False
    for i in range(len(s)):
        if _L[i] != s[i]:
            return False
    return True


def _put(o, s):
    for v in s:
        _O[o] = v
        o += 1
    return o


def _cmd(c, n):
    # send _O[0:n] and CR LF; True when the modem answers OK
    _O[n] = 13
    _O[n + 1] = 10
    board.write(memoryview(_O)[0:n + 2])
    while True:
        k = _line(c, _ANS)
        if k < 0:
            return False
        if _is(k, b'OK'):
            return True
        if _is(k, b'AT_'):  # AT_ERROR, AT_PARAM_ERROR, AT_BUSY_ERROR ...
            return False


def _num(o, v):
    # decimal digits of v >= 0 at _O[o]; the next offset
    s = str(v)
    for ch in s:
        _O[o] = ord(ch)
        o += 1
    return o


def init(c):
    # P2P mode and parameters: frequency, SF, 125 kHz, 4/5, preamble 8, power
    _cmd(c, _put(0, b'AT+NWM=0'))
    o = _num(_put(0, b'AT+P2P='), c.lf)
    o = _num(_put(o, b':'), c.sf)
    o = _num(_put(o, b':125:0:8:'), c.pw)
    return _cmd(c, o)


def send(c, f, n):
    # the radio payload f[0:n]; True once the modem reports TX done
    o = _put(0, b'AT+PSEND=')
    for i in range(n):
        _O[o] = _HEX[f[i] >> 4]
        _O[o + 1] = _HEX[f[i] & 15]
        o += 2
    if not _cmd(c, o):
        return False
    while True:
        k = _line(c, _TXMS)
        if k < 0:
            return False
        if _is(k, b'+EVT:TXP2P'):
            return True


def _nib(v):
    if 48 <= v <= 57:
        return v - 48
    v |= 32
    return v - 87 if 97 <= v <= 102 else -1


def listen(c, sec, ms):
    # the receive window: ms from now (TX done); each downlink goes to
    # ml_dl.got(). The modem leaves RX after a frame, so it is sent back for
    # the rest of the window (an ack may be followed by a command).
    end = board.ticks_add(board.ticks_ms(), ms)
    while True:
        left = board.ticks_diff(end, board.ticks_ms())
        if left <= 0 or not _cmd(c, _num(_put(0, b'AT+PRECV='), left)):
            return
        while True:
            k = _line(c, left + 3000)  # a frame begun in time ends later
            if k < 0:
                return
            if _is(k, b'+EVT:RXP2P'):
                break
        # +EVT:RXP2P:<rssi>:<snr>:<hex>: the payload follows the fourth colon
        i = j = 0
        while i < k and j < 4:
            if _L[i] == 58:
                j += 1
            i += 1
        if j < 4:
            return  # RECEIVE TIMEOUT
        n = 0
        while i + 1 < k and n < 64:
            a = _nib(_L[i])
            b = _nib(_L[i + 1])
            if a < 0 or b < 0:
                break
            _R[1 + n] = a << 4 | b
            n += 1
            i += 2
        import ml_dl
        ml_dl.got(c, sec, _R, n)
