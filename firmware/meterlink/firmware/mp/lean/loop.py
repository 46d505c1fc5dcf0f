# One pass of the main loop (run.py runs it). The optional
# alarms (burst, tamper, low battery) and the daily status are `if HAS_X:`
# blocks, in the bundle only with their feature (meterlink.bundler.features).
from utime import ticks_ms, ticks_diff, ticks_add
from glue import held, modem_read, battery
from fields import *  # the state indexes (inlined by the bundler)



def close(t):
    # the interval's end: history, leak, backflow and the optional alarms,
    # the commit; the alarm flags (mask 23) it finds. Apart from step(), so
    # that each compiles in the few hundred bytes the heap has left
    v = V
    iv = v[V_INTERVAL] * 1000
    v[V_T0] = ticks_add(v[V_T0], iv)
    if ticks_diff(t, v[V_T0]) >= iv:
        v[V_T0] = t  # more than an interval late: restart the grid
    d = v[V_FWD]
    v[V_FWD] = 0
    h = Q[2]
    h[v[V_HPOS]] = d
    v[V_HPOS] = (v[V_HPOS] + 1) % len(h)
    v[V_HLEN] = min(v[V_HLEN] + 1, len(h))
    S[S_ISEQ] += 1
    v[V_NFLOW] = v[V_NFLOW] + 1 if d else 0
    # backflow: reverse pulses in this interval and the one before (V_REVPREV),
    # so that an event across an interval end is not split in two
    f = (4 if v[V_REVN] + v[V_REVPREV] >= v[V_BACKFLOW] else 0) | (1 if v[V_NFLOW] >= v[V_LEAK] else 0)
    if HAS_BURST_ALARM:
        # burst: at least burst_pulses in each of burst_intervals in a row
        v[V_NBURST] = v[V_NBURST] + 1 if d >= v[V_BURST] else 0
        if v[V_NBURST] >= v[V_BURSTN]:
            f |= 2
    if HAS_LOW_BATTERY_ALARM:
        if battery() < 10:
            f |= 16
    if HAS_DAILY_STATUS:
        # a status frame once a day of intervals (reason 0, periodic)
        v[V_NDAY] += 1
        if v[V_NDAY] * v[V_INTERVAL] >= 86400:
            v[V_NDAY] = 0
            v[V_WANT] = 2
    v[V_REVPREV] = v[V_REVN]
    v[V_REVN] = 0
    commit()
    return f


def step():
    # one pass of the main loop: poll, then at most one of: interval end
    # (close()), pulse commit, the 100 ms check (the maintenance input,
    # backflow, tamper). Returns 1 + the kind of the uplink due (up()), if
    # any: run() sends it, so that step()'s frame is not on the board's 1.8 KB
    # C stack under the deepest calls (up, seal, cmac, enc, poll)
    v = V
    poll()
    # dropped: what the radio modem sent outside a receive window. Never a
    # way to the REPL: Ctrl-C is off (main.py) and no byte sequence is special
    # (maintenance needs the maintenance input, protocol section 5)
    modem_read()
    t = ticks_ms()
    f = 0
    if ticks_diff(t, v[V_T0]) >= v[V_INTERVAL] * 1000:
        f = close(t)
        m = 23  # leak, burst, backflow, low battery; then the reading
    elif v[V_NPULSE] >= 10 and ticks_diff(t, v[V_TCOMMIT]) >= 300000:
        commit()
        return
    elif ticks_diff(t, v[V_TCHECK]) >= 100:
        v[V_TCHECK] = t
        if held():  # the maintenance input: stop
            raise KeyboardInterrupt
        if v[V_REVN] + v[V_REVPREV] < v[V_BACKFLOW]:
            m = 0
        else:
            f = m = 4
        if HAS_TAMPER_ALARM:
            # tamper: the tamper input reads 1 (its loop is open)
            m |= 8
            if Q[3]():
                f |= 8
    else:
        return
    # set the alarm flags under mask m to f; newly raised ones are pending
    v[V_PEND] |= f & m & ~v[V_ACT]
    v[V_ACT] = (v[V_ACT] & ~m) | (f & m)
    if m == 23:
        return 1  # the reading frame
    if v[V_WANT]:  # the boot status first, whatever an alarm waits for
        return 3
    if v[V_ALEN]:  # an alarm frame waits for its ack: resend when due
        if ticks_diff(t, v[V_ANEXT]) >= 0:
            if v[V_TRIES] >= 8 or v[V_FC] - v[V_AFC] > 63:  # 64 later counters: replay
                done()
            else:
                return 4
    elif v[V_PEND]:  # newly raised alarms: an alarm frame
        v[V_RAISED] = v[V_PEND]
        v[V_PEND] = 0
        return 2
