# What the two boards' fakes (tests/nrf51/microbit.py, tests/rp2/machine.py)
# share: input levels read from a dict (a level, or a function of the fake
# clock of tests/nrf51/utime.py) and a UART made of two byte buffers. One Io
# per fake module, so the two boards never share state. In the subset
# MicroPython and CPython both accept: the micro:bit fake also runs under
# MicroPython (WebAssembly).
import utime


class Io:
    def __init__(self):
        self.levels = {}  # input (pin name or GPIO number) -> 0/1 or a function of the clock
        self.tx = []  # what the firmware wrote on the UART
        self.rx = []  # chunks waiting to be read
        self.on_write = [None]  # called with each chunk written, if set

    def level(self, key):
        v = self.levels.get(key, 0)
        return int(v(utime.clock[0]) if callable(v) else v)

    def read(self, n=None):
        return self.rx.pop(0) if self.rx else None

    def any(self):
        return len(self.rx[0]) if self.rx else 0

    def write(self, b):
        b = bytes(b)
        self.tx.append(b)
        if self.on_write[0] is not None:
            self.on_write[0](b)
        return len(b)

    def reset(self):
        self.levels.clear()
        del self.tx[:]
        del self.rx[:]
        self.on_write[0] = None
        utime.clock[0] = 1000
