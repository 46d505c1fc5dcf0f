# nRF51 profile: the main loop (step, ml_nl), safe mode and the maintenance
# break.
from micropython import kbd_intr
from utime import ticks_ms, sleep_ms


def run():
    # the main loop, on the state the boot phase made (its counter
    # reservation committed); ends at the maintenance break
    kbd_intr(-1)
    try:
        V[18] = V[19] = ticks_ms()  # the interval and check clocks
        while V[23] % 4 == 0:  # no error, or the store was corrupt
            step()
            # the CPU waits for the board's next timer tick: pulses high and
            # low for 15 ms are still all counted (10 ms are not), and the CPU
            # sleeps most of the time (the battery; on the emulator, 3% of a
            # host core instead of 85%)
            sleep_ms(1)
        # safe mode: no counting; the status frame with the error code once
        # (rp2 repeats it every 300 s); the maintenance break still works
        up(2)
        while True:
            brk()
            sleep_ms(5)
    except KeyboardInterrupt:
        S[9] = 1  # a clean stop: no unexpected-reset alarm at the next boot
        commit()
    finally:
        kbd_intr(3)
