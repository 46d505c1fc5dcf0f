# The link to the radio modem (protocol section 5): SLIP framing with
# CRC-16/IBM-3740 and link type DATA, and the receive window after an uplink
# (ack, config and time downlinks). Imported per uplink.
import struct
from micropython import const
import board
from ml_core import crc16

_END = const(0xC0)
_ESC = const(0xDB)
_MAXR = const(68)  # link type, a 64-byte downlink, CRC, one spare
_DLC = const(7)
_OV = const(10)


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
    # goes to got(); the maintenance break raises out of here too
    end = board.ticks_add(board.ticks_ms(), ms)
    r = bytearray(_MAXR)
    n = esc = 0
    while board.ticks_diff(end, board.ticks_ms()) > 0:
        c.poll()
        d = board.read()
        if not d:
            continue
        c.brk(d)
        for v in d:
            if v == _END:
                # drop empty, overlong, bad-CRC and other link types
                if 3 <= n <= _MAXR and r[0] == 1 and crc16(r, n - 2) == r[n - 2] << 8 | r[n - 1]:
                    got(c, sec, r, n - 3)
                n = esc = 0
            elif v == _ESC:
                esc = 1
            else:
                if esc:
                    v = _END if v == 0xDC else _ESC if v == 0xDD else v
                    esc = 0
                if n < _MAXR:
                    r[n] = v
                n += 1


def _arg(b, o, end):
    # (major type, argument, next offset) of the CBOR head at b[o], or None
    if o >= end:
        return None
    a = b[o] & 31
    m = b[o] >> 5
    if a < 24:
        return m, a, o + 1
    if a > 26 or o + 1 + (1 << (a - 24)) > end:
        return None
    if a == 24:
        return m, b[o + 1], o + 2
    return m, struct.unpack_from('>H' if a == 25 else '>I', b, o + 1)[0], o + (3 if a == 25 else 5)


def dmap(b, o, end):
    # a CBOR map of uint keys to uint values (byte/text strings skipped):
    # dict, or None if malformed (other types, more than 32 entries, length)
    r = _arg(b, o, end)
    if not r or r[0] != 5 or r[1] > 32:
        return None
    d = {}
    o = r[2]
    for _ in range(r[1]):
        k = _arg(b, o, end)
        v = k and not k[0] and _arg(b, k[2], end)
        if not v:
            return None
        o = v[2]
        if not v[0]:
            d[k[1]] = v[1]
        elif v[0] in (2, 3) and v[1] <= 64:
            o += v[1]
        else:
            return None
    return d if o == end else None


def got(c, sec, r, n):
    # a received DATA payload r[1:1+n]: ack, or a config/time downlink
    if n > 64:
        return
    f = c.f
    f[0:n] = r[1:1 + n]
    x = sec.open(f, n, c.poll)
    if not x:
        return
    t, fc, bl = x
    s = c.s
    if t == 8:
        if c.an and fc == c.afc:
            c.done()
        return
    d = dmap(f, 9, 9 + bl)
    if fc <= s[_DLC] or d is None or c.err and c.err != 4:
        return
    if t == 9:
        # interval, leak, burst pulses, burst intervals, backflow: all valid or none
        new = []
        for i, k, hi in ((0, 4, 65535), (1, 20, 65535), (2, 21, 0xFFFFFFFF),
                         (3, 22, 65535), (4, 23, 0xFFFFFFFF)):
            if k in d:
                if not 1 <= d[k] <= hi:
                    return
                new.append((i, d[k]))
        for i, v in new:
            s[_OV + i] = v
        c.want = 1  # report them in a status frame
    elif t == 10 and 30 in d:
        c.time = (d[30], board.ticks_ms())
    else:
        return
    s[_DLC] = fc
    c.commit()
