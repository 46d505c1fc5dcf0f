# nRF51 build: the main loop (step, loop.py), safe mode, and the stop for
# maintenance (the maintenance input, docs/protocol.md section 5).
from utime import ticks_ms, ticks_diff, sleep_ms
from fields import *  # the state indexes (inlined by the bundler)


def run():
    # the main loop, on the state the boot phase made (its counter
    # reservation committed); returns when the maintenance input is seen
    try:
        V[V_T0] = V[V_TCHECK] = ticks_ms()  # the interval and check clocks
        while V[V_ERR] % 4 == 0:  # no error, or the store was corrupt
            k = step()
            if k:
                up(k - 1)
            # the CPU waits for the board's next timer tick: pulses high and
            # low for 15 ms are still all counted (10 ms are not), and the CPU
            # sleeps most of the time (the battery; on the emulator, 3% of a
            # host core instead of 85%)
            sleep_ms(1)
        # safe mode: no counting; the status frame with the error code (again
        # every 300 s with safe_mode_repeat), and a wait for the maintenance input
        up(2)
        while not microbit.pin8.read_digital():
            sleep_ms(20)
            if HAS_SAFE_MODE_REPEAT:
                if ticks_diff(ticks_ms(), V[V_T0]) >= 300000:
                    V[V_T0] = ticks_ms()
                    up(2)
    except KeyboardInterrupt:  # raised by step() on the maintenance input
        pass
    S[S_FLAGS] = 1  # a clean stop: no unexpected-reset alarm at the next boot
    commit()  # the REPL enables Ctrl-C for what it runs
