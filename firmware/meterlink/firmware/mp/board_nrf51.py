# Board: BBC micro:bit (nRF51822) on MicroPython 1.9.2, the emulated
# reference board, for on-board tests of the full profile's modules (the
# shipped nRF51 build is the lean profile). No pin interrupts: the core polls.
import microbit
import machine
import micropython
import utime

NAME = 'nrf51'
POLL = True
KEEP = False  # release modules after use: the heap is about 9 KB
FS = ''
DEBOUNCE_MS = 5
ticks_ms = utime.ticks_ms
ticks_diff = utime.ticks_diff
ticks_add = utime.ticks_add
sleep_ms = utime.sleep_ms
reset = machine.reset
_u = microbit.uart


def ZERO():
    return 0


def pin(name, up=0):
    # reader of a micro:bit pin by name ('pin0'); pulls are on the module's
    # board (pull-down on pulse and direction, pull-up on the tamper loop)
    if name[:3] != 'pin' or not hasattr(microbit, name):
        raise ValueError(name)
    p = getattr(microbit, name)
    p.set_pull(p.NO_PULL)
    return p.read_digital


def attach(name, dname, edge):
    pass


def write(b):
    _u.write(b)


def read():
    return _u.read() if _u.any() else None


def kbd_intr(c):
    if hasattr(micropython, 'kbd_intr'):
        micropython.kbd_intr(c)


def battery():
    return 100  # this board cannot measure its supply


def idle(listening):
    pass
