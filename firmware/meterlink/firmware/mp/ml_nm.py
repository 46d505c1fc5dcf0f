# nRF51 profile: the main loop (ml_nl.step), safe mode and the maintenance
# break.
from micropython import kbd_intr
from utime import ticks_ms, sleep_ms
import ml_n
import ml_nl
from ml_n import S, V, commit, brk


def run():
    # the main loop, on the state the boot phase made (its counter
    # reservation committed); ends at the maintenance break
    from ml_nv import up
    import ml_nx
    ml_nx.poll = ml_n.poll
    ml_nl.U = up
    step = ml_nl.step
    kbd_intr(-1)
    try:
        V[18] = V[19] = ticks_ms()  # the interval and check clocks
        while V[23] % 4 == 0:  # no error, or the store was corrupt
            step()
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
