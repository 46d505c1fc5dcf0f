# A fake micro:bit module for running the nRF51 build's sources (mp/lean/) off
# the board, under CPython and under MicroPython (WebAssembly), so in the
# 1.9.2 subset: the pins the board has (pin0..pin16, pin19, pin20), each read
# from a level or a function of the fake clock (utime.py here), and a UART
# made of two byte buffers. Only what the firmware uses: read_digital,
# set_pull/NO_PULL, uart.read/write/any.
import utime

levels = {}  # pin name -> 0/1 or a function of the clock
tx = []  # what the firmware wrote on the UART
rx = []  # chunks waiting to be read
on_write = [None]  # called with each chunk written, if set


class Pin:
    NO_PULL = 0
    PULL_DOWN = 1
    PULL_UP = 2

    def __init__(self, name):
        self.name = name
        self.pull = 1

    def set_pull(self, pull):
        self.pull = pull

    def read_digital(self):
        v = levels.get(self.name, 0)
        return int(v(utime.clock[0]) if callable(v) else v)


class _Uart:
    def read(self, n=None):
        return rx.pop(0) if rx else None

    def any(self):
        return len(rx[0]) if rx else 0

    def write(self, b):
        b = bytes(b)
        tx.append(b)
        if on_write[0] is not None:
            on_write[0](b)
        return len(b)


uart = _Uart()
for _n in range(21):
    if _n not in (17, 18):  # the edge connector has no pin17, pin18
        globals()['pin' + str(_n)] = Pin('pin' + str(_n))


def reset_all():
    levels.clear()
    del tx[:]
    del rx[:]
    on_write[0] = None
    utime.clock[0] = 1000
