# Pulse
# counting, commits and frame bodies, on the state in state.py. Like every
# file of lean/ but config.py it is not imported but loaded by main.py into
# one shared namespace, a top-level statement at a time (docs/firmware.md,
# "How it runs"): names from the other files (S, V, F, B, Q from state.py,
# crc from crc.py) are globals here. State lives in arrays rather than a
# class (attribute names and an instance dict cost heap); what differs
# between boards comes from the glue, for the same reason inlined on the nRF51.
import struct
from utime import ticks_ms, ticks_diff
from glue import edge_poll, battery, committed  # pin interrupts (rp2), the supply
# (low_battery_alarm), the register as committed
from fields import *  # the state indexes (inlined by the bundler)


def commit():
    # the state with the next sequence number into the record file that does
    # not hold the newest copy: a cut mid-write spoils only that one
    s = S
    s[S_SEQ] += 1
    struct.pack_into('<15I', B, 0, *s)
    struct.pack_into('<H', B, 60, crc(B, 60))
    f = open('st' + str(s[S_SEQ] & 1), 'wb')
    f.write(B)
    f.close()
    V[V_NPULSE] = 0
    V[V_TCOMMIT] = ticks_ms()


def poll():
    # a new level counts once read in two samples 5 ms apart; reverse pulses
    # become a debt paid back before the register moves again
    v = V
    x = Q[0]()
    if x == v[V_LEVEL]:
        v[V_CAND] = 0
        return
    t = ticks_ms()
    if not v[V_CAND]:
        v[V_CAND] = 1
        v[V_TCAND] = t
    elif ticks_diff(t, v[V_TCAND]) >= 5:
        v[V_LEVEL] = x
        v[V_CAND] = 0
        if x:
            s = S
            if Q[1] and Q[1]():
                s[S_REV] += 1
                s[S_DEBT] += 1
                v[V_REVN] += 1
            elif s[S_DEBT]:
                s[S_DEBT] -= 1
            else:
                s[S_REG] += 1
                v[V_FWD] += 1
            v[V_NPULSE] += 1


poll = edge_poll(poll)  # rp2: run by the pulse input's edges (board glue)


def hd(o, mt, v):
    # a CBOR head (major type mt, argument v) at F[o]; the next offset
    n = 0 if v < 24 else 1 if v < 256 else 2 if v < 65536 else 4
    F[o] = mt << 5 | (v if not n else 23 + n if n < 4 else 26)
    for i in range(n, 0, -1):
        F[o + i] = v & 255
        v >>= 8
    return o + n + 1


def pairs(kind):
    # the (key, value) pairs of a reading (0), alarm (1) or status (2) body,
    # flat; the history's value is None (body() writes the deltas there).
    # Apart from body() so that each compiles in a smaller block of the nRF51
    # heap. The age is clamped at 0: were the clock to step back, a negative
    # value would be written as a malformed CBOR head (one frame under heavy
    # load looked like that).
    s = S
    v = V
    # a reading or alarm carries the register as last committed (each is built
    # after a commit; glue committed(): rp2 reads it from commit()'s record B,
    # since a pulse interrupt may count on between commit() and here, and a
    # frame must never show a register a power cut could take back; nRF51: S,
    # the same there)
    if kind == 1:
        return (1, committed(s, B), 7, max(s[S_ISEQ], 1) - 1, 8, v[V_ACT], 12, v[V_RAISED], 13, s[S_REV])
    if kind == 2:
        b = 100  # battery, %: no measurement
        if HAS_LOW_BATTERY_ALARM:
            b = battery()  # board glue
        # reason: 2 safe mode, 1 the boot status (V_WANT 1), 0 another. V_WANT
        # is cleared here, so that a downlink in this frame's own receive
        # window can ask for the next status
        p = (9, b, 10, FW_VERSION, 11, s[S_RESETS], 14, 2 if v[V_ERR] % 4 else v[V_WANT] & 1, 15, v[V_ERR])
        v[V_WANT] = 0
        if not v[V_ERR]:
            p = p[:8]
        if HAS_STATUS_DETAIL or HAS_CONFIG_DOWNLINK:
            # protocol 4.4's optional keys as they fit; none in safe mode
            # (codes 1-3: the module has no config and does not count)
            if v[V_ERR] % 4 == 0:
                if HAS_STATUS_DETAIL:
                    q = detail()
                else:
                    q = reported()  # the thresholds in force (downlink.py)
                p = fit(p, q)
        return p
    return (1, committed(s, B), 2, v[V_WEIGHT], 3, v[V_UNIT], 4, v[V_INTERVAL], 5, None,
            6, min(65535, max(0, ticks_diff(ticks_ms(), v[V_T0])) // 1000), 7, s[S_ISEQ] - 1,
            8, v[V_ACT])


if HAS_STATUS_DETAIL or HAS_CONFIG_DOWNLINK:
    def fit(p, q):
        # the status body's (key, value, ...) p, its error code last if any,
        # with the optional (key, value, ...) q added in q's order (protocol
        # 4.4's priority order), each only if the body still fits its 40 bytes
        # with it (less the map head), a later smaller one still tried; an
        # interval or threshold (keys 4, 20..23) of 0 means none, not sent.
        # Returned in ascending key order (protocol 4.1); a CBOR head's size is
        # found by writing it out of the way, at F[75]
        r = 39
        for x in p:
            r -= hd(75, 0, x) - 75
        c = [None] * 24  # the value sent with each key (None: not sent)
        for i in range(0, len(p), 2):
            c[p[i]] = p[i + 1]
        for i in range(0, len(q), 2):
            k = q[i]
            x = q[i + 1]
            m = hd(75, 0, x) - 74  # the key's byte and the value
            if m <= r and (x or k != 4 and k < 20):
                r -= m
                c[k] = x
        p = ()
        for i in range(24):
            if c[i] is not None:
                p += (i, c[i])
        return p


if HAS_STATUS_DETAIL:
    def detail():
        # the status's optional keys for fit() (not in safe mode), in protocol
        # 4.4's priority order: alarms, interval, the thresholds in force (0:
        # none; burst only with its alarm), register (as committed: up()
        # commits first), reverse, weight, unit
        s = S
        v = V
        b = (0, 0)
        if HAS_BURST_ALARM:
            b = (v[V_BURST], v[V_BURSTN])
        return (8, v[V_ACT], 4, v[V_INTERVAL], 20, v[V_LEAK], 21, b[0], 22, b[1],
                23, v[V_BACKFLOW], 1, committed(s, B), 13, s[S_REV], 2, v[V_WEIGHT],
                3, v[V_UNIT])


def body(kind):
    # reading (0), alarm (1) or status (2) body into F[9:]; its length. A
    # reading carries as many deltas (LEB128, newest first) as fit in 51
    # bytes: all of them, else one fewer, and so on.
    v = V
    h = Q[2]
    p = pairs(kind)
    k = v[V_HLEN]
    while 1:
        o = hd(9, 5, len(p) // 2)
        for i in range(0, len(p), 2):
            o = hd(o, 0, p[i])
            if p[i + 1] is not None:
                o = hd(o, 0, p[i + 1])
                continue
            j = o + 1
            for m in range(k):
                x = h[(v[V_HPOS] - 1 - m) % len(h)]
                while x > 127:
                    F[j] = x & 127 | 128
                    x >>= 7
                    j += 1
                F[j] = x
                j += 1
                if j > 52:  # too many already (the fields after it fit in F)
                    k = m + 1
                    break
            n = j - o - 1
            if n > 23:  # a 2-byte head: move the deltas up by one
                for m in range(j, o + 1, -1):
                    F[m] = F[m - 1]
                j += 1
            hd(o, 2, n)
            o = j
        if o <= 49 or not k:  # 11 bytes of header and MIC: 51 in all
            return o - 9
        k -= 1
