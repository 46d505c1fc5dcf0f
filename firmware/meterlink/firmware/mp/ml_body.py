# Frame bodies (protocol section 4): CBOR maps of small unsigned integers,
# written into the core's frame buffer at offset 9. Imported per frame;
# board and ml_core are imported where used, so head() works on its own.
import struct
from fields import S_ISEQ, S_REG, S_RESETS, S_REV  # state record indexes (inlined by the bundler)



def usz(v):
    # size of a CBOR unsigned integer head
    return 1 if v < 24 else 2 if v < 256 else 3 if v < 65536 else 5


def head(b, o, mt, v):
    # write a CBOR head (major type mt, argument v) at b[o]; new offset
    m = mt << 5
    if v < 24:
        b[o] = m | v
        return o + 1
    if v < 256:
        b[o] = m | 24
        b[o + 1] = v
        return o + 2
    if v < 65536:
        b[o] = m | 25
        struct.pack_into('>H', b, o + 1, v)
        return o + 3
    b[o] = m | 26
    struct.pack_into('>I', b, o + 1, v)
    return o + 5


def pairs(b, p):
    # a CBOR map of (key, value) pairs, keys ascending, at b[9]; body length
    o = head(b, 9, 5, len(p))
    for k, v in p:
        o = head(b, head(b, o, 0, k), 0, v)
    return o - 9


def reading(c):
    # reading map with as many deltas (newest first) as fit in 51 bytes
    import board
    s = c.s
    reg = s[S_REG]
    iv = c.th(0)
    # never negative; 65535 means "this old or older" (protocol 4.2)
    age = min(65535, max(0, board.ticks_diff(board.ticks_ms(), c.t0)) // 1000)
    iq = s[S_ISEQ] - 1
    # 51 - 11 (header, MIC) - 1 (map head) - 8 keys = 31 for values and deltas
    room = 31 - usz(reg) - usz(c.w) - usz(c.unit) - usz(iv) - usz(age) - usz(iq) - usz(c.act)
    k = ln = 0
    while k < c.hn:
        v = c.delta(k)
        x = 1  # its LEB128 length
        while v > 127:
            v >>= 7
            x += 1
        if ln + x + usz(ln + x) > room:
            break
        ln += x
        k += 1
    b = c.f
    o = pairs(b, ((1, reg), (2, c.w), (3, c.unit), (4, iv))) + 9
    b[9] = 0xA8  # the map has 8 entries, not 4
    o = head(b, head(b, o, 0, 5), 2, ln)
    for j in range(k):
        v = c.delta(j)
        while v > 127:
            b[o] = v & 127 | 128
            v >>= 7
            o += 1
        b[o] = v
        o += 1
    for kk, v in ((6, age), (7, iq), (8, c.act)):
        o = head(b, head(b, o, 0, kk), 0, v)
    return o - 9


def build(c, kind):
    # body of a reading (0), alarm (1) or status (2) frame into c.f[9:]
    import board
    from fields import FW_VERSION  # inlined by the bundler
    s = c.s
    if kind == 0:
        return reading(c)
    if kind == 1:
        return pairs(c.f, ((1, s[S_REG]), (7, max(s[S_ISEQ], 1) - 1), (8, c.act),
                           (12, c.raised), (13, s[S_REV])))
    p = [(9, board.battery()), (10, FW_VERSION), (11, s[S_RESETS]),
         (14, 2 if c.err and c.err != 4 else c.want - 1)]
    # optional keys in the order of protocol 4.4, each only if it still fits
    q = [(15, c.err)] if c.err else []
    if not c.err or c.err == 4:
        q += [(8, c.act), (4, c.th(0)), (20, c.th(1)), (21, c.th(2)), (22, c.th(3)),
              (23, c.th(4)), (1, s[S_REG]), (13, s[S_REV]), (2, c.w), (3, c.unit)]
    room = 39  # 51 - 11 (header, MIC) - 1 (map head)
    for k, v in p:
        room -= 1 + usz(v)
    for k, v in q:
        if 1 + usz(v) <= room:
            room -= 1 + usz(v)
            p.append((k, v))
    p.sort()
    return pairs(c.f, p)
