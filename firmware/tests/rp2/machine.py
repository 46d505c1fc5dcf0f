# A fake of the rp2 port's machine module, for running the lean sources with
# the Pico's glue (mp/lean/glue_rp2.py) off the board: GPIO levels from a dict
# (a level or a function of the fake clock, tests/nrf51/utime.py), UART0 as two
# byte buffers, ADC3 (VSYS) as a value, lightsleep(ms) advancing the clock
# unless a level changes first (a pulse edge ends it, as its IRQ does on the
# chip), Pin.irq handlers and one-shot Timers run by service() (the test's
# stand-in for the scheduler: between main-loop passes), and reset() ending the
# phase as on the nRF51 fake. The levels and UART0's buffers are
# tests/fake_io.py's, as the micro:bit fake's.
import utime
from fake_io import Io

_io = Io()
levels, tx, rx, on_write = _io.levels, _io.tx, _io.rx, _io.on_write  # GPIO number -> level
level = _io.level
vsys = [3.6]  # volts on VSYS
sleeps = []  # the ms of each lightsleep() call
irqs = {}  # GPIO number -> trigger mask set by Pin.irq
handlers = {}  # GPIO number -> (Pin, handler, the level last seen)
timers = []  # [due time, callback, Timer] of the armed one-shot timers


class Reset(Exception):
    pass


def reset():
    raise Reset()


def lightsleep(ms):
    # sleep ms, or until an input with an IRQ changes level (its edge wakes)
    sleeps.append(ms)
    now = [level(n) for n in irqs]
    for _ in range(ms):
        utime.clock[0] += 1
        if [level(n) for n in irqs] != now:
            return


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 8
    IRQ_FALLING = 4

    def __init__(self, n, mode=-1, pull=-1):
        if not 0 <= n <= 29:
            raise ValueError('invalid pin')
        self.n = n
        self.pull = pull

    def value(self):
        return level(self.n)

    def irq(self, handler=None, trigger=12):
        irqs[self.n] = trigger
        if handler is not None:
            handlers[self.n] = [self, handler, level(self.n)]


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, *a, **kw):
        pass

    def init(self, mode=0, period=0, callback=None):
        assert mode == 0, 'one-shot timers only'
        for t in timers:
            if t[2] is self:
                timers.remove(t)
                break
        timers.append([utime.clock[0] + period, callback, self])


_busy = [0]


def service():
    # what the scheduler would have run by now: the handlers of changed inputs
    # (the edge's direction matches its trigger), then the timers that are due.
    # Run on every tick of the fake clock (ticked(), below), as the chip runs
    # them between bytecodes, whatever the main loop is doing.
    if _busy[0]:
        return
    _busy[0] = 1
    try:
        _service()
    finally:
        _busy[0] = 0


def _service():
    for n in list(handlers):
        h = handlers[n]
        now = level(n)
        if now != h[2]:
            h[2] = now
            if irqs[n] & (8 if now else 4):
                h[1](h[0])
    for t in list(timers):
        if t[0] <= utime.clock[0]:
            timers.remove(t)
            t[1](t[2])


class UART:
    def __init__(self, n, baudrate=115200, **kw):
        assert n == 0 and kw.get('timeout') == 0
        self.kw = kw
        self.read, self.any, self.write = _io.read, _io.any, _io.write


class ADC:
    def __init__(self, n):
        assert n == 3  # VSYS through the 1/3 divider
        self.n = n

    def read_u16(self):
        return int(vsys[0] / 3 / 3.3 * 65535)


def ticked(ticks_ms):
    # ticks_ms of the fake clock, running service() at each tick
    def ticks():
        t = ticks_ms()
        service()
        return t
    return ticks


def reset_all():
    _io.reset()
    del sleeps[:]
    irqs.clear()
    handlers.clear()
    del timers[:]
    vsys[0] = 3.6
