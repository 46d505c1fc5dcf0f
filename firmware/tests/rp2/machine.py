# A fake of the rp2 port's machine module, for running the lean sources with
# the Pico's glue (mp/lean/glue_rp2.py) off the board: GPIO levels from a dict
# (a level or a function of the fake clock, tests/nrf51/utime.py), UART0 as two
# byte buffers, ADC3 (VSYS) as a value, lightsleep(ms) advancing the clock
# unless a level changes first (a pulse edge ends it, as its IRQ does on the
# chip), and reset() ending the phase as on the nRF51 fake.
import utime

levels = {}  # GPIO number -> 0/1 or a function of the clock
tx = []  # what the firmware wrote on UART0
rx = []  # chunks waiting to be read
on_write = [None]  # called with each chunk written, if set
vsys = [3.6]  # volts on VSYS
sleeps = []  # the ms of each lightsleep() call
irqs = {}  # GPIO number -> trigger mask set by Pin.irq


class Reset(Exception):
    pass


def reset():
    raise Reset()


def level(n):
    v = levels.get(n, 0)
    return int(v(utime.clock[0]) if callable(v) else v)


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


class UART:
    def __init__(self, n, baudrate=115200, **kw):
        assert n == 0 and kw.get('timeout') == 0
        self.kw = kw

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


class ADC:
    def __init__(self, n):
        assert n == 3  # VSYS through the 1/3 divider
        self.n = n

    def read_u16(self):
        return int(vsys[0] / 3 / 3.3 * 65535)


def reset_all():
    levels.clear()
    del tx[:]
    del rx[:]
    del sleeps[:]
    irqs.clear()
    on_write[0] = None
    vsys[0] = 3.6
    utime.clock[0] = 1000
