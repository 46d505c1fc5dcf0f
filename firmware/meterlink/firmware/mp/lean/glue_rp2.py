# Board glue of the Raspberry Pi Pico (RP2040, MicroPython 1.22+): the spots of
# the shared sources that differ between boards (meterlink.firmware.glue). A
# module on the board (`glue`): the shared sources import from it. The radio
# modem is on UART0 (GP0 TX, GP1 RX); the REPL stays on USB, where a Ctrl-C
# is the maintenance stop (no maintenance input); between events the CPU
# sleeps (machine.lightsleep), woken by the pulse input's edges.
import machine
from utime import sleep_ms
from machine import ADC, Pin, UART
from fields import *  # the state indexes (inlined by the bundler)

FATAL = Exception  # main.py: a Ctrl-C on USB reaches the REPL (maintenance)
uart = UART(0, 115200, tx=Pin(0), rx=Pin(1), rxbuf=256, timeout=0)


def ctrl_c_off():
    pass  # Ctrl-C on the USB console is the maintenance stop


def held():
    return 0  # no maintenance input: Ctrl-C on USB instead


def bad_pin(n):
    # a config.txt pin that is not a GPIO number 0..28
    return not n.isdigit() or int(n) > 28


def pin_number(n):
    return int(n)


def _wake(p):
    pass  # the edge's interrupt has ended a lightsleep: that is all


def input_pin(p):
    # GPIO p as an input with a pull-down whose edges end a lightsleep
    p = Pin(p, Pin.IN, Pin.PULL_DOWN)
    p.irq(_wake, Pin.IRQ_RISING | Pin.IRQ_FALLING)
    return p


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
    # (the debouncer, 5 ms), the next millisecond; otherwise sleep to the next
    # 100 ms check, ended early by a pulse edge (docs/firmware.md, "Energy")
    if v[V_CAND]:
        sleep_ms(1)
    else:
        machine.lightsleep(100)
