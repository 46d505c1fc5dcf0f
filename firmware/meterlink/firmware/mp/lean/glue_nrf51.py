# Board glue of the micro:bit (nRF51, MicroPython 1.9.2): the spots of the
# shared sources that differ between boards (meterlink.bundler.glue). The
# bundler inlines each function's one line where it is called and puts the
# imports it needs where the source has `from glue import ...` (no module, no
# calls: the heap has no room for them); the plain sources, run off the board,
# import this file as `glue`.
import microbit
import micropython
from utime import sleep_ms
from fields import *  # the state indexes (inlined by the bundler)

FATAL = BaseException  # main.py: a Ctrl-C too ends in the wait and reset
# the REPL UART, shared with the radio modem; as microbit.uart where used, so
# that the run phase's namespace holds no name more (a name over main.py's
# grown table makes it grow again late: a 520-byte block the heap lacks)
uart = microbit.uart


def ctrl_c_off():
    # no Ctrl-C from the UART: the radio shares it (docs/protocol.md section 5)
    micropython.kbd_intr(-1)


def held():
    # the maintenance input (pin8, P0.18) is held high by the programming cable
    return microbit.pin8.read_digital()


def committed(s, b):
    return s[S_REG]  # the register, as commit() wrote it (no pulse interrupts)


def stopping():
    pass  # the maintenance stop: Ctrl-C is off already (ctrl_c_off)


def bad_pin(n):
    # config.txt pin name n (not empty) that this board cannot use as an input
    return n[:3] != 'pin' or n == 'pin8' or not hasattr(microbit, n)


def battery_pin(n):
    # a pin the low-battery alarm takes (pin16, the supply supervisor's output),
    # so no meter input may be wired to it
    return n == 'pin16'


def battery():
    # percent: 9 (below the alarm's 10 %) or 100. The micro:bit cannot measure
    # its own supply: pin16 is the output of a supply supervisor on the
    # module's board (active high below the cell's 10 % voltage;
    # docs/firmware.md, "Battery on the micro:bit"); unwired, the pull-down
    # keeps it low
    return 9 if microbit.pin16.read_digital() else 100


def pin_number(n):
    # the number of a good pin name ('pin0' -> 0), as 'cf' stores it
    return int(n[3:])


def input_pin(p):
    # the pin of number p (the pulse and direction inputs)
    return getattr(microbit, 'pin' + str(p))


def no_pull(p):
    # the inputs are pulled down on the module's board
    p.set_pull(p.NO_PULL)


def reader(p):
    # the function that reads pin p (0 or 1)
    return p.read_digital


def modem_read():
    # what the modem sent, or None
    return microbit.uart.read(32)


def edge_poll(f):
    # the debouncer f stays the main loop's poll() (no pin interrupts on 1.9.2)
    return f


def idle(v):
    # between main-loop passes (v: the volatile state): the next timer tick
    sleep_ms(1)
