# A fake board for running the firmware core off the board (CPython and the
# MicroPython WebAssembly port): a file system under FS, pins driven by
# functions of a fake clock, a UART made of two byte buffers. The clock
# advances 1 ms on every ticks_ms() call, so time passes as the core works.
import os

NAME = 'fake'
POLL = True
KEEP = False
FS = ''
DEBOUNCE_MS = 5
clock = [0]
pins = {}  # name -> level (0/1) or function of the clock returning one
tx = []  # chunks the firmware wrote
rx = []  # chunks waiting to be read
kbd = [3]
bat = [100]
on_write = [None]  # called with each chunk written, if set


def reset_all(fs):
    # the board's files are in fs, the current folder (as on a board, where FS is
    # '': the records are read by the nRF51 build's rec() without a prefix)
    global FS
    FS = fs
    if fs:
        os.chdir(fs)
    clock[0] = 1000
    pins.clear()
    del tx[:]
    del rx[:]
    kbd[0] = 3
    bat[0] = 100
    on_write[0] = None


def ticks_ms():
    clock[0] += 1
    return clock[0]


def ticks_diff(a, b):
    return a - b


def ticks_add(a, d):
    return a + d


def sleep_ms(n):
    clock[0] += n


def ZERO():
    return 0


def level(name):
    v = pins[name]
    return v(clock[0]) if callable(v) else v


def pin(name, up=0):
    if name not in pins:
        raise ValueError(name)
    return lambda: level(name)


def attach(name, dname, edge):
    pass


def write(b):
    b = bytes(b)
    tx.append(b)
    if on_write[0]:
        on_write[0](b)


def read():
    if rx:
        return rx.pop(0)
    return None


def kbd_intr(c):
    kbd[0] = c


def battery():
    return bat[0]


def idle(listening):
    pass


def reset():
    raise SystemExit('reset')
