# Downlinks (protocol 4.4, 4.5): a bounded CBOR map decoder, and what an ack,
# a config or a time frame does. Imported when a frame arrives.
import struct
from fields import S_DLC, S_OV  # state record indexes (inlined by the bundler)



def _arg(b, o, end):
    # (major type, argument, next offset) of the CBOR head at b[o], or None:
    # only definite heads in their shortest form, arguments below 2^32
    if o >= end:
        return None
    a = b[o] & 31
    m = b[o] >> 5
    if a < 24:
        return m, a, o + 1
    if a > 26 or o + 1 + (1 << (a - 24)) > end:
        return None
    if a == 24:
        v = b[o + 1]
        o += 2
    else:
        v = struct.unpack_from('>H' if a == 25 else '>I', b, o + 1)[0]
        o += 3 if a == 25 else 5
    if v < (24 if a == 24 else 256 if a == 25 else 65536):
        return None  # not the shortest form
    return m, v, o


def dmap(b, o, end):
    # a v2 body (protocol 4.1): a CBOR map of uint keys, strictly ascending,
    # to uint values (byte strings, for keys we do not know, skipped): dict,
    # or None if malformed (other types, more than 32 entries, trailing bytes)
    r = _arg(b, o, end)
    if not r or r[0] != 5 or r[1] > 32:
        return None
    d = {}
    o = r[2]
    p = -1
    for _ in range(r[1]):
        k = _arg(b, o, end)
        v = k and not k[0] and k[1] > p and _arg(b, k[2], end)
        if not v:
            return None
        p = k[1]
        o = v[2]
        if not v[0]:
            d[p] = v[1]
        elif v[0] == 2 and v[1] <= 64 and o + v[1] <= end:
            o += v[1]
        else:
            return None
    return d if o == end else None


def got(c, sec, r, n):
    # a received DATA payload r[1:1+n]: ack, or a config/time downlink
    if n > 64:
        return
    f = c.f
    for i in range(n):  # no slice assignment on 1.9.2
        f[i] = r[1 + i]
    s = c.s
    x = sec.open(f, n, c.afc if c.an else None, s[S_DLC], c.poll)
    if not x:
        return
    t, fc, bl = x
    if t == 8:
        if c.an and fc == c.afc and not bl:  # an ack has no body
            import ml_main
            ml_main.done(c)
        return
    d = dmap(f, 9, 9 + bl)
    if d is None or c.err and c.err != 4:
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
            s[S_OV + i] = v
        c.want = 1  # report them in a status frame
    elif t == 10 and 30 in d:
        import board
        c.time = (d[30], board.ticks_ms())
    else:
        return
    s[S_DLC] = fc
    c.commit()
