# The parts of MicroPython's micropython module the firmware uses, for CPython.


def const(x):
    return x


interrupt_char = [3]  # what kbd_intr() last set (-1: Ctrl-C off); tests read it


def kbd_intr(c):
    interrupt_char[0] = c
