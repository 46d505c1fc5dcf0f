# Board: Raspberry Pi Pico (RP2040) on MicroPython 1.22 or later, the
# production board. Pulses are counted by Pin.irq; the radio modem is on
# UART0 (GP0 TX, GP1 RX); the REPL stays on USB; lightsleep between events.
import machine
import time
from machine import ADC, Pin, UART

NAME = 'rp2'
POLL = False
KEEP = True  # 200+ KB of heap: keep modules loaded
FS = ''
DEBOUNCE_MS = 5
ticks_ms = time.ticks_ms
ticks_diff = time.ticks_diff
ticks_add = time.ticks_add
sleep_ms = time.sleep_ms
reset = machine.reset
_u = UART(0, 115200, tx=Pin(0), rx=Pin(1), rxbuf=256)
_last = [0]


def ZERO():
    return 0


def pin(name, up=0):
    # reader of a GPIO by number ('16'); pull-up for the tamper loop
    if not name.isdigit() or int(name) > 28:
        raise ValueError(name)
    return Pin(int(name), Pin.IN, Pin.PULL_UP if up else Pin.PULL_DOWN).value


def attach(name, dname, edge):
    # count rising edges of the pulse input in an interrupt handler: an edge
    # within DEBOUNCE_MS of the previous one is contact bounce
    d = pin(dname) if dname else None

    def h(p):
        t = time.ticks_ms()
        if time.ticks_diff(t, _last[0]) >= DEBOUNCE_MS:
            _last[0] = t
            edge(d() if d else 0)

    Pin(int(name), Pin.IN, Pin.PULL_DOWN).irq(h, Pin.IRQ_RISING)


def write(b):
    _u.write(b)


def read():
    return _u.read() if _u.any() else None


def kbd_intr(c):
    pass  # the REPL is on USB, apart from the modem


def battery():
    # VSYS through the on-board 1/3 divider on ADC3: 3.0 V = 0 %, 3.6 V = 100 %
    mv = ADC(3).read_u16() * 9900 // 65535
    return max(0, min(100, (mv - 3000) // 6))


def idle(listening):
    # sleep to the main loop's next 100 ms check: a pulse edge still runs its
    # handler at once (its IRQ ends the sleep), and the CPU wakes 10 times a
    # second instead of 50 (docs/firmware.md, "Energy")
    if not listening:
        machine.lightsleep(100)
