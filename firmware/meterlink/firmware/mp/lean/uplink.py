# Uplink sessions: the body (counting.py), sealed (seal.py),
# sent as a SLIP link frame (protocol 5). An alarm frame is kept (A,
# state.py) and sent again, the same bytes, with backoff until an ack
# arrives in the receive window after it, at most 8 times (protocol 6). A
# receive window (ack.py's, or window.py's with downlinks or the AT modem)
# follows an alarm frame, and every uplink in a build with the config or time
# downlink.
from utime import ticks_ms, ticks_add
from glue import uart
from fields import *  # the state indexes (inlined by the bundler)


def up(kind):
    # one uplink: 0 reading, 1 alarm, 2 status, 3 the alarm frame again.
    # With the duty-cycle budget, one it has no room for now is not sent but
    # deferred: a reading is skipped (its deltas go with the next one), a new
    # alarm stays pending, a resend waits 1 s, a status stays due (body()
    # clears V_WANT only once it is built)
    v = V
    if HAS_DUTY_CYCLE_BUDGET:
        if not budget(v[V_ALEN] if kind == 3 else 51):
            if kind == 3:
                v[V_ANEXT] = ticks_add(ticks_ms(), 1000)
            elif kind == 1:
                v[V_PEND] = v[V_RAISED]
            return
    if kind < 3:
        if HAS_STATUS_DETAIL:
            if kind and v[V_ERR] % 4 == 0:
                # an alarm or status frame carries the register: committed
                # first (not in safe mode, codes 1-3: it has no register)
                commit()
        else:
            if kind == 1:
                # an alarm frame carries the register: committed first, so that no
                # frame ever shows a register a power cut could take back
                # (docs/firmware.md, "Loss bound")
                commit()
        n = body(kind)
        fc = v[V_FC]
        if fc >= S[S_RSV]:
            S[S_RSV] = fc + 32  # reserve counters before using them
            commit()
        v[V_FC] = fc + 1
        n = seal(0x20 | kind, fc, n)  # protocol version 2
        if kind == 1:
            for i in range(n):  # no slice assignment on 1.9.2
                A[i] = F[i]
            v[V_ALEN] = n
            v[V_AFC] = fc
            v[V_TRIES] = 0
    else:
        n = v[V_ALEN]
        for i in range(n):
            F[i] = A[i]
    if kind & 1:
        v[V_TRIES] += 1
        w = v[V_RXW] if v[V_TRIES] >= 8 else 1000 << v[V_TRIES]
        v[V_ANEXT] = ticks_add(ticks_ms(), w)
    link(n)
    # the receive window: with downlinks after every uplink (protocol 6.3),
    # else after an alarm frame only, for its ack (window.py's listen() with
    # the AT modem, else ack.py's ack-only ack())
    if HAS_CONFIG_DOWNLINK:
        listen(v[V_RXW])
    else:
        if HAS_TIME_DOWNLINK:
            listen(v[V_RXW])
        else:
            if HAS_AT_MODEM:
                if kind & 1:
                    listen(v[V_RXW])
            else:
                if kind & 1:
                    ack(v[V_RXW])
    if HAS_DUTY_CYCLE_BUDGET:
        return 1


def link(n):
    # the radio payload F[0:n] as one DATA link frame on the UART
    if HAS_AT_MODEM:
        if RADIO[0]:  # modem=1: to the AT modem instead (at_modem.py)
            at_send(n)
            return
    c = crc(F, n, crc(b'\x01', 1))
    o = bytearray(2 * n + 8)
    o[0] = 0xC0
    o[1] = 1
    j = 2
    for i in range(n + 2):
        x = F[i] if i < n else (c >> 8 if i == n else c & 255)
        if x == 0xC0 or x == 0xDB:
            o[j] = 0xDB
            x = 0xDC if x == 0xC0 else 0xDD
            j += 1
        o[j] = x
        j += 1
    o[j] = 0xC0
    uart.write(o[0:j + 1])
