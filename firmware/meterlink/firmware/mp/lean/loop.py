# nRF51 build: one pass of the main loop (run.py runs it).
from micropython import const
from utime import ticks_ms, ticks_diff, ticks_add
from glue import held, modem_read
from fields import *  # the state indexes (inlined by the bundler)



def step():
    # one pass of the main loop: poll, then at most one of: interval end,
    # pulse commit, the 100 ms check (the maintenance input, backflow, then
    # at most one status or alarm frame)
    v = V
    poll()
    modem_read()  # dropped: what the radio sent outside a receive window
    t = ticks_ms()
    iv = v[V_INTERVAL] * 1000
    f = 0
    if ticks_diff(t, v[V_T0]) >= iv:
        # close the interval: history, alarms, commit, then the reading
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
        m = 5
        v[V_REVPREV] = v[V_REVN]
        v[V_REVN] = 0
        commit()
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
    else:
        return
    # set the alarm flags under mask m to f; newly raised ones are pending
    v[V_PEND] |= f & m & ~v[V_ACT]
    v[V_ACT] = (v[V_ACT] & ~m) | (f & m)
    if m == 5:
        up(0)  # the reading frame
    elif v[V_WANT]:  # the boot status first, whatever an alarm waits for
        # body() clears V_WANT once the frame is built; with no duty-cycle
        # budget nothing is built (up() returns 0) and it waits
        up(2)
    elif v[V_ALEN]:  # an alarm frame waits for its ack: resend when due
        if ticks_diff(t, v[V_ANEXT]) >= 0:
            if v[V_TRIES] >= 8 or v[V_FC] - v[V_AFC] > 63:  # 64 later counters: replay
                done()
            else:
                if HAS_DUTY_CYCLE_BUDGET:
                    if not up(3):  # no budget: delayed, never dropped
                        v[V_ANEXT] = ticks_add(t, 1000)
                else:
                    up(3)
    elif v[V_PEND]:  # newly raised alarms: an alarm frame
        v[V_RAISED] = v[V_PEND]
        v[V_PEND] = 0
        if HAS_DUTY_CYCLE_BUDGET:
            if not up(1):
                v[V_PEND] = v[V_RAISED]  # waits for the budget
        else:
            up(1)
