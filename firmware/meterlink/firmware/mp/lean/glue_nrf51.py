# Board glue of the micro:bit (nRF51, MicroPython 1.9.2): the spots of the
# shared sources that differ between boards (meterlink.firmware.glue). The
# bundler inlines each function's one line where it is called and puts the
# imports it needs where the source has `from glue import ...` (no module, no
# calls: the heap has no room for them); the plain sources, run off the board,
# import this file as `glue`.
import microbit
import micropython
from microbit import uart  # the REPL UART, shared with the radio modem
from utime import sleep_ms
from fields import *  # the state indexes (inlined by the bundler)

FATAL = BaseException  # main.py: a Ctrl-C too ends in the wait and reset


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
    return uart.read()


def edge_poll(f):
    # the debouncer f stays the main loop's poll() (no pin interrupts on 1.9.2)
    return f


def idle(v):
    # between main-loop passes (v: the volatile state): the next timer tick
    sleep_ms(1)
