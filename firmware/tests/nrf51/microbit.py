# A fake micro:bit module for running the nRF51 build's sources (mp/lean/) off
# the board, under CPython and under MicroPython (WebAssembly), so in the
# 1.9.2 subset: the pins the board has (pin0..pin16, pin19, pin20), each read
# from a level or a function of the fake clock (utime.py here), and a UART
# made of two byte buffers (both from tests/fake_io.py). Only what the
# firmware uses: read_digital, set_pull/NO_PULL, uart.read/write/any.
from fake_io import Io

uart = Io()  # the UART; its levels are the pins'
levels, tx, rx, on_write = uart.levels, uart.tx, uart.rx, uart.on_write


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
        return uart.level(self.name)


for _n in range(21):
    if _n not in (17, 18):  # the edge connector has no pin17, pin18
        globals()['pin' + str(_n)] = Pin('pin' + str(_n))


def reset_all():
    uart.reset()
