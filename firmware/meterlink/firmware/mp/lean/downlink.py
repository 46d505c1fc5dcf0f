# The config and time downlinks (protocol 4.5, 4.6), in builds with either
# feature: the counter restored from the last one accepted (S_DLC) and a stale
# one dropped unseen (protocol 3.4), the MIC checked over the whole counter,
# the body decrypted and read as a v2 CBOR map (protocol 4.1). A config is
# applied whole or not at all and is always answered by a status frame with
# the values the module applies (protocol 4.5); a time is kept with the ticks
# it arrived at. The overrides a config sets (S_OV..S_OV+4, 0: none) are
# persisted with the counter, and replace config.txt's values at every boot.
from utime import ticks_ms
from fields import *  # the state indexes (inlined by the bundler)

DK = (4, 20, 21, 22, 23, 30)  # the body keys taken: the overrides, unix_time
if HAS_CONFIG_DOWNLINK:
    # where override S_OV+i applies: interval, leak_intervals, burst_pulses,
    # burst_intervals, backflow_pulses (the config's keys 4, 20, 21, 22, 23)
    OV = (V_INTERVAL, V_LEAK, V_BURST, V_BURSTN, V_BACKFLOW)

    def overrides():
        # the overrides in force over config.txt's values
        for i in range(5):
            if S[S_OV + i]:
                V[OV[i]] = S[S_OV + i]

    overrides()  # at boot: the run phase starts with the overrides persisted

    if HAS_STATUS_DETAIL:
        pass  # counting.py's detail() has these with the other optional keys
    else:
        def reported():
            # the thresholds in force for counting.py's fit() (protocol 4.4: after
            # the error code): keys 4, 20..23 (0: none on this board)
            v = V
            return (4, v[V_INTERVAL], 20, v[V_LEAK], 21, v[V_BURST], 22, v[V_BURSTN],
                    23, v[V_BACKFLOW])


def head(o, e):
    # the CBOR head at F[o], before F[e]: (major type, argument, next offset),
    # the argument below 2^32 in its shortest form (protocol 4.1); major type
    # 7 (never valid in a body) if it is not one
    if o >= e:
        return 7, 0, e
    a = F[o] & 31
    t = F[o] >> 5
    o += 1
    if a > 23:
        k = 1 << (a - 24)  # 1, 2 or 4 bytes
        if a > 26 or o + k > e:
            return 7, 0, e
        a = 0
        for i in range(o, o + k):
            a = a << 8 | F[i]
        o += k
        if a < 24 or not a >> 4 * k:
            return 7, 0, e
    return t, a, o


def fresh():
    # the whole counter of the downlink F[0:] (its low 16 bits on air, placed
    # by the last one accepted: protocol 3.4), or -1: stale, dropped unseen,
    # or in safe mode, where no downlink is taken
    d = S[S_DLC]
    b = max(0, d - 63)
    c = b + (((F[5] << 8 | F[6]) - b) & 65535)
    return c if c > d and not V[V_ERR] % 4 else -1


def downlink(n, c):
    # a config (type 0x29) or time (0x2A) downlink for this module, counter
    # c, its MIC checked (window.py's got()); the body F[9:n-2] still encrypted
    s = S
    v = V
    seal(F[0], c, n - 11)  # the body decrypted, to F[7:n-4]
    # the map: unsigned keys ascending; values unsigned integers, or byte
    # strings (at most 64 bytes), skipped
    w = [None] * 6  # the values of the keys DK (None: absent)
    e = n - 4
    t, m, o = head(7, e)
    x = t == 5 and m <= 32  # 1 while the body is well-formed
    p = -1
    while x and m:
        t, k, o = head(o, e)
        u, a, o = head(o, e)
        j = DK.index(k) if k in DK else -1
        if t or k <= p or u == 2 and a > 64 or u and u != 2:
            x = 0
        elif u:
            o += a
            a = -1  # a byte string: for a key taken here, a wrong value
        if j >= 0:
            w[j] = a
        p = k
        m -= 1
    x = x and o == e
    if HAS_CONFIG_DOWNLINK:
        if F[0] == 0x29:
            # all values within the limits of meterlink.protocol.module_config (1
            # and up; interval, leak_intervals and burst_intervals 65535 at most),
            # or none applied; answered either way
            for i in range(5):
                if w[i] is not None and not 0 < w[i] <= (65535 if i in (0, 1, 3) else w[i]):
                    x = 0
            for i in range(5 if x else 0):
                if w[i] is not None:
                    s[S_OV + i] = w[i]
            overrides()
            v[V_WANT] = 2  # a status frame (reason 0)
    if HAS_TIME_DOWNLINK:
        if F[0] == 0x2A:
            if not x or w[5] is None or w[5] < 0:
                return  # malformed: nothing to keep, nothing to answer
            v[V_TIME] = w[5]
            v[V_TTICKS] = ticks_ms()
    s[S_DLC] = c
    commit()
