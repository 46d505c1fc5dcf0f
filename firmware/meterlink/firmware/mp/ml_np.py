# nRF51 profile (micro:bit, MicroPython 1.9.2, about 9 KB of heap): pulse
# counting, commits and frame bodies, on the state in ml_nd. Like every ml_n*
# file it is not imported but loaded by main.py into one shared namespace, a
# top-level statement at a time (docs/firmware.md, "nRF51 profile"): names
# from the other files (S, V, F, B, Q from ml_nd, crc from ml_nk) are globals
# here. State lives in arrays rather than a class (attribute names and an
# instance dict cost heap) and the micro:bit is used directly rather than
# through board.py, for the same reason.
import struct
from micropython import const
from utime import ticks_ms, ticks_diff
from microbit import uart

# S: the persisted state, the record ml_core writes (docs/firmware.md)
_REG = const(2)
_DEBT = const(3)
_REV = const(4)
_ISEQ = const(5)
_FLG = const(9)
# V: the volatile state, by index (ml_nb, ml_nu use the numbers)
_LV = const(0)  # debouncer: level, candidate, its time
_CAND = const(1)
_TC = const(2)
_FI = const(3)  # forward / reverse pulses in this interval
_RI = const(4)
_NP = const(5)  # pulses since the last commit
_NZ = const(6)  # intervals in a row with flow
_RP = const(7)  # reverse pulses in the interval before (ml_nl)
_HP = const(8)  # history ring: next slot, entries
_HN = const(9)
_ACT = const(10)  # alarm flags: active, pending (raised, not yet sent)
_PEND = const(11)
_AN = const(13)  # pending alarm frame: length (0: none), its counter, sends,
_AFC = const(14)  # next send (ticks)
_TRIES = const(15)
_AT = const(16)
_T0 = const(18)  # end of the current interval (ticks)
_TK = const(19)  # last 100 ms check (ticks)
_TCM = const(21)  # last commit (ticks)
_ERR = const(23)  # safe-mode error code
_IV = const(26)  # interval (s)
_LEAK = const(27)  # leak_intervals
_BF = const(29)  # backflow_pulses
_RXW = const(28)  # rx_window_ms
_WANT = const(31)  # a status frame is due

_RAISED = const(12)
_W = const(24)
_UNIT = const(25)

def commit():
    # the state with the next sequence number into the record file that does
    # not hold the newest copy: a cut mid-write spoils only that one
    s = S
    s[0] += 1
    struct.pack_into('<15I', B, 0, *s)
    struct.pack_into('<H', B, 60, crc(B, 60))
    f = open('st' + str(s[0] & 1), 'wb')
    f.write(B)
    f.close()
    V[_NP] = 0
    V[_TCM] = ticks_ms()


def poll():
    # a new level counts once read in two samples 5 ms apart; reverse pulses
    # become a debt paid back before the register moves again
    v = V
    x = Q[0]()
    if x == v[_LV]:
        v[_CAND] = 0
        return
    t = ticks_ms()
    if not v[_CAND]:
        v[_CAND] = 1
        v[_TC] = t
    elif ticks_diff(t, v[_TC]) >= 5:
        v[_LV] = x
        v[_CAND] = 0
        if x:
            s = S
            if Q[1] and Q[1]():
                s[_REV] += 1
                s[_DEBT] += 1
                v[_RI] += 1
            elif s[_DEBT]:
                s[_DEBT] -= 1
            else:
                s[_REG] += 1
                v[_FI] += 1
            v[_NP] += 1


def rx():
    # what the UART (the radio modem) sent, or None. Never a way to the REPL:
    # Ctrl-C is off (main.py) and no byte sequence is special here
    # (maintenance needs the maintenance input, docs/protocol.md section 5).
    return uart.read()


def hd(o, mt, v):
    # a CBOR head (major type mt, argument v) at F[o]; the next offset
    n = 0 if v < 24 else 1 if v < 256 else 2 if v < 65536 else 4
    F[o] = mt << 5 | (v if not n else 23 + n if n < 4 else 26)
    for i in range(n, 0, -1):
        F[o + i] = v & 255
        v >>= 8
    return o + n + 1


def body(kind):
    # reading (0), alarm (1) or status (2) body into F[9:]; its length. A
    # reading carries as many deltas (LEB128, newest first) as fit in 51
    # bytes: all of them, else one fewer, and so on. The age is clamped at 0:
    # were the clock to step back, a negative value would be written as a
    # malformed CBOR head (one frame under heavy load looked like that).
    s = S
    v = V
    h = Q[2]
    if kind == 1:
        p = (1, s[2], 7, max(s[5], 1) - 1, 8, v[_ACT], 12, v[_RAISED], 13, s[4])
    elif kind == 2:
        p = (9, 100, 10, 256, 11, s[8], 14, 2 if v[_ERR] % 4 else 1, 15, v[_ERR])
        if not v[_ERR]:
            p = p[:8]
    else:
        p = (1, s[2], 2, v[_W], 3, v[_UNIT], 4, v[_IV], 5, None,
             6, min(65535, max(0, ticks_diff(ticks_ms(), v[_T0])) // 1000), 7, s[5] - 1,
             8, v[_ACT])
    k = v[_HN]
    while 1:
        o = hd(9, 5, len(p) // 2)
        for i in range(0, len(p), 2):
            o = hd(o, 0, p[i])
            if p[i + 1] is not None:
                o = hd(o, 0, p[i + 1])
                continue
            j = o + 1
            for m in range(k):
                x = h[(v[_HP] - 1 - m) % len(h)]
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
