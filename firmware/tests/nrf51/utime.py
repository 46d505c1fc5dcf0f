# The fake clock of the nRF51 sources off the board: ticks_ms() advances 1 ms
# per call (time passes as the firmware works),
# sleep_ms(n) by n. Under MicroPython the check script puts it in sys.modules
# over the built-in utime.
clock = [1000]


def ticks_ms():
    clock[0] += 1
    return clock[0]


def ticks_diff(a, b):
    return a - b


def ticks_add(a, d):
    return a + d


def sleep_ms(n):
    clock[0] += n
