# The link to the radio modem (protocol section 5): SLIP framing with
# CRC-16/IBM-3740 and link type DATA, and the receive window after an uplink.
# Received frames go to ml_dl, imported when the first one arrives.
from micropython import const
import board
from ml_core import crc16

_END = const(0xC0)
_ESC = const(0xDB)
_MAXR = const(68)  # link type, a 64-byte downlink, CRC, one spare


def send(f, n):
    # radio payload f[0:n] as one DATA link frame
    c = crc16(f, n, crc16(b'\x01', 1))
    o = bytearray(2 * n + 8)
    o[0] = _END
    o[1] = 1
    j = 2
    for i in range(n + 2):
        v = f[i] if i < n else (c >> 8 if i == n else c & 255)
        if v == _END or v == _ESC:
            o[j] = _ESC
            v = 0xDC if v == _END else 0xDD
            j += 1
        o[j] = v
        j += 1
    o[j] = _END
    board.write(memoryview(o)[0:j + 1])


def listen(c, sec, ms):
    # receive for ms milliseconds, polling the pulse input; each valid frame
    # goes to got(); no byte sequence is special (docs/protocol.md section 5)
    end = board.ticks_add(board.ticks_ms(), ms)
    r = bytearray(_MAXR)
    n = esc = 0
    while board.ticks_diff(end, board.ticks_ms()) > 0:
        c.poll()
        d = board.read()
        if not d:
            continue
        for v in d:
            if v == _END:
                # drop empty, overlong, bad-CRC, cut-in-an-escape and other link types
                if (3 <= n <= _MAXR and not esc and r[0] == 1
                        and crc16(r, n - 2) == r[n - 2] << 8 | r[n - 1]):
                    import ml_dl
                    ml_dl.got(c, sec, r, n - 3)
                n = esc = 0
            elif v == _ESC:
                esc = 1
            else:
                if esc:
                    esc = 0
                    if v == 0xDC:
                        v = _END
                    elif v == 0xDD:
                        v = _ESC
                    else:
                        n = _MAXR  # an invalid escape spoils the frame (protocol 5)
                if n < _MAXR:
                    r[n] = v
                n += 1
