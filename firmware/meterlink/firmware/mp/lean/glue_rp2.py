# Board glue of the Raspberry Pi Pico (RP2040, MicroPython 1.22+): the spots of
# the shared sources that differ between boards (meterlink.bundler.glue). A
# module on the board (`glue`): the shared sources import from it. The radio
# modem is on UART0 (GP0 TX, GP1 RX); the REPL stays on USB, where a Ctrl-C
# is the maintenance stop (no maintenance input); between events the CPU
# sleeps (machine.lightsleep), woken by the pulse input's edges.
import machine
import micropython
import struct
from machine import ADC, Pin, UART
from fields import *  # the state indexes (inlined by the bundler)

FATAL = Exception  # main.py: a Ctrl-C on USB reaches the REPL (maintenance)
uart = UART(0, 115200, tx=Pin(0), rx=Pin(1), rxbuf=256, timeout=0)


def modem_read():
    # what the modem sent, or None (without waiting: any() first)
    return uart.read() if uart.any() else None


def ctrl_c_off():
    pass  # Ctrl-C on the USB console is the maintenance stop


def held():
    return 0  # no maintenance input: Ctrl-C on USB instead


def committed(s, b):
    # the register as commit() wrote it to the record b: the pulse interrupt may
    # have counted on in s since
    return struct.unpack_from('<I', b, 4 * S_REG)[0]


def stopping():
    # the maintenance stop has begun (a Ctrl-C on USB): the rest of the burst a
    # tool sends (ten 0x03, again each second until the prompt comes) must not
    # cut the clean commit short; the REPL turns Ctrl-C on for what it runs
    micropython.kbd_intr(-1)


def bad_pin(n):
    # a config.txt pin that is not a GPIO number 0..28
    return not n.isdigit() or int(n) > 28


def battery_pin(n):
    return 0  # the supply is measured on ADC3 (VSYS), no GPIO of config.txt


def pin_number(n):
    return int(n)


PINS = []  # the inputs input_pin() made: the pulse input first


def input_pin(p):
    # GPIO p as an input with a pull-down
    p = Pin(p, Pin.IN, Pin.PULL_DOWN)
    PINS.append(p)
    return p


_T = machine.Timer()
_F = [int]  # the debouncer


def _sample(x):
    _F[0]()


def edge_poll(f):
    # the debouncer f (counting.py's poll) is run by the pulse input's edges
    # (Pin.irq, both ways; an edge also ends a lightsleep) and once more by a
    # timer 6 ms after each, which takes a level seen 5 ms apart; no pulse waits
    # for the main loop, which may be sealing, sending or writing the flash.
    # What the main loop calls as poll() does nothing (returned: int).
    if not PINS:
        return f  # safe mode: no pulse input, nothing counted
    _F[0] = f

    def edge(p):
        f()
        _T.init(mode=machine.Timer.ONE_SHOT, period=6, callback=_sample)

    PINS[0].irq(edge, Pin.IRQ_RISING | Pin.IRQ_FALLING)
    return int


def no_pull(p):
    pass  # input_pin() set the pull-down


def reader(p):
    return p.value


def battery():
    # VSYS through the on-board 1/3 divider on ADC3: 3.0 V = 0 %, 3.6 V = 100 %
    mv = ADC(3).read_u16() * 9900 // 65535
    return max(0, min(100, (mv - 3000) // 6))


def idle(v):
    # between main-loop passes: while a level waits for its second sample
    # (the debouncer, 5 ms: edge_poll's timer), 6 ms; otherwise to the next
    # 100 ms check; a pulse edge ends either (docs/firmware.md, "Energy")
    if v[V_CAND]:
        machine.lightsleep(6)  # the timer's sample is due by then
    else:
        machine.lightsleep(100)
