# nRF51 profile: one pass of the main loop (ml_nm runs it).
from micropython import const
from utime import ticks_ms, ticks_diff, ticks_add

_ISEQ = const(5)
_FI = const(3)  # forward / reverse pulses in this interval
_RI = const(4)
_RP = const(7)  # reverse pulses in the interval before
_NP = const(5)  # pulses since the last commit
_NZ = const(6)  # intervals in a row with flow
_HP = const(8)  # history ring: next slot, entries
_HN = const(9)
_ACT = const(10)  # alarm flags: active, pending (raised, not yet sent)
_PEND = const(11)
_T0 = const(18)  # end of the current interval (ticks)
_TK = const(19)  # last 100 ms check (ticks)
_TCM = const(21)  # last commit (ticks)
_IV = const(26)  # interval (s)
_LEAK = const(27)  # leak_intervals
_BF = const(29)  # backflow_pulses
_WANT = const(31)  # a status frame is due
_RAISED = const(12)
_AN = const(13)  # pending alarm frame: length (0: none), sends, next send
_TRIES = const(15)
_AT = const(16)


def step():
    # one pass of the main loop: poll, then at most one of: interval end,
    # pulse commit, the 100 ms check (the maintenance input, backflow, then
    # at most one status or alarm frame)
    v = V
    poll()
    rx()
    t = ticks_ms()
    iv = v[_IV] * 1000
    f = 0
    if ticks_diff(t, v[_T0]) >= iv:
        # close the interval: history, alarms, commit, then the reading
        v[_T0] = ticks_add(v[_T0], iv)
        if ticks_diff(t, v[_T0]) >= iv:
            v[_T0] = t  # more than an interval late: restart the grid
        d = v[_FI]
        v[_FI] = 0
        h = Q[2]
        h[v[_HP]] = d
        v[_HP] = (v[_HP] + 1) % len(h)
        v[_HN] = min(v[_HN] + 1, len(h))
        S[_ISEQ] += 1
        v[_NZ] = v[_NZ] + 1 if d else 0
        # backflow: reverse pulses in this interval and the one before (_RP),
        # so that an event across an interval end is not split in two
        f = (4 if v[_RI] + v[_RP] >= v[_BF] else 0) | (1 if v[_NZ] >= v[_LEAK] else 0)
        m = 5
        v[_RP] = v[_RI]
        v[_RI] = 0
        commit()
    elif v[_NP] >= 10 and ticks_diff(t, v[_TCM]) >= 300000:
        commit()
        return
    elif ticks_diff(t, v[_TK]) >= 100:
        v[_TK] = t
        if microbit.pin8.read_digital():  # the maintenance input: stop
            raise KeyboardInterrupt
        if v[_RI] + v[_RP] < v[_BF]:
            m = 0
        else:
            f = m = 4
    else:
        return
    # set the alarm flags under mask m to f; newly raised ones are pending
    v[_PEND] |= f & m & ~v[_ACT]
    v[_ACT] = (v[_ACT] & ~m) | (f & m)
    if m == 5:
        up(0)  # the reading frame
    elif v[_WANT]:  # the boot status first, whatever an alarm waits for
        v[_WANT] = 0
        up(2)
    elif v[_AN]:  # an alarm frame waits for its ack: resend when due
        if ticks_diff(t, v[_AT]) >= 0:
            if v[_TRIES] >= 8 or v[17] - v[14] > 63:  # 64 later counters: replay
                done()
            else:
                up(3)
    elif v[_PEND]:  # newly raised alarms: an alarm frame
        v[_RAISED] = v[_PEND]
        v[_PEND] = 0
        up(1)
