# The main loop (step, loop.py), safe mode, and the stop for
# maintenance (the maintenance input, docs/protocol.md section 5).
from utime import ticks_ms, ticks_diff, sleep_ms
from glue import held, idle, stopping
from fields import *  # the state indexes (inlined by the bundler)


def run():
    # the main loop, on the state the boot phase made (its counter
    # reservation committed); returns 1 when the maintenance input is seen
    # (main.py then stops at the REPL)
    try:
        V[V_T0] = V[V_TCHECK] = ticks_ms()  # the interval and check clocks
        while V[V_ERR] % 4 == 0:  # no error, or the store was corrupt
            k = step()  # 1 + the kind of the uplink due, or 0
            if k:
                up(k - 1)
            # the board glue's wait (nRF51: the next timer tick, so pulses
            # high and low for 15 ms are still all counted, 10 ms are not, and
            # the CPU sleeps most of the time; rp2: lightsleep to the next
            # 100 ms check, ended by a pulse edge)
            idle(V)
        # safe mode: no counting; the status frame with the error code (again
        # every 300 s with safe_mode_repeat), and a wait for the maintenance input
        up(2)
        while not held():
            sleep_ms(20)
            if HAS_SAFE_MODE_REPEAT:
                if ticks_diff(ticks_ms(), V[V_T0]) >= 300000:
                    V[V_T0] = ticks_ms()
                    up(2)
    except KeyboardInterrupt:  # raised by step() on the maintenance input
        pass
    stopping()  # no Ctrl-C from here to the REPL (rp2: more of a burst comes)
    S[S_FLAGS] = 1  # a clean stop: no unexpected-reset alarm at the next boot
    commit()  # the REPL enables Ctrl-C for what it runs
    return 1


phase = run  # what main.py calls in the run phase
