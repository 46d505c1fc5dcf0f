# nRF51 build: battery(), the board glue the low-battery alarm calls (only in
# a bundle with low_battery_alarm). The micro:bit cannot measure its own
# supply, so the module's board gives it a stand-in (docs/firmware.md,
# "Battery on the micro:bit"): pin16 is the output of a supply supervisor
# (MAX810-class, active high, threshold at the cell's 10 % voltage): high
# means below 10 %. Unwired, the pull-down keeps it low (no alarm).
import microbit


def battery():
    # percent: 9 (below the alarm's 10 %) or 100, the two states it tells apart
    p = microbit.pin16
    p.set_pull(p.PULL_DOWN)
    return 9 if p.read_digital() else 100
