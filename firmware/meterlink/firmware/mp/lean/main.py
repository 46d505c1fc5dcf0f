# Boot entry (flashed as main.py, on every board). Three
# phases with a reset between them, so that each starts on an empty heap
# (about 9 KB). 1 (no file 'cf' or 'rt'): config.txt (config.py, ml_cfg) to
# 'cf'. 2 ('cf'): the state records and the config (boot.py) and the working
# keys (with aes.py) to 'rt', the counter reservation committed. 3, run
# ('rt'): the state (state.py, first, so that its data lies at the bottom of
# the heap), the code, largest functions first while the heap still has
# large blocks, then the main loop (run.py).
# Every byte of this file's code stays in the heap while a phase runs (this
# module is its caller), so it only picks the phase, loads the phase's files
# and calls the function they name phase() (run(), boot(), config.py's read()).
# The load orders are meterlink.bundler's NRF51_RUN, NRF51_BOOT and
# NRF51_CONFIG_PHASE: the bundler writes them here for RUN_FILES, BOOT_FILES
# and CONFIG_FILES (the on-board names' letters). A phase's files are not
# loaded by a file of that phase: a file loaded inside ld() has the C stack of
# two more calls, and the run phase's files ran out of it ('maximum recursion
# depth exceeded' running state.py).
# ld() compiles a file a top-level statement at a time into this module's
# namespace. Compiling a whole module needs free blocks of about three times
# its size, and after a few imports the heap has no such blocks left; one
# statement at a time needs a few hundred bytes, and one namespace saves a
# module and a dict per file. The files are stored as chunks, each a 3-digit
# length and its source (the bundler in meterlink.bundler writes them).
# After the maintenance stop the namespace is emptied, so that the REPL (the
# harness, provisioning) has the heap.
# Maintenance (docs/protocol.md section 5) needs someone at the module: the
# maintenance input (pin8, held high by the programming cable), seen at boot
# (phases 1 and 2: config.read(), boot() return 1) or while the firmware runs
# (loop.py, run.py: run() returns 1). Nothing received on the UART, which the
# radio modem shares, leads to the REPL: each phase's first file turns Ctrl-C
# off (config.py, crc.py, state.py; code here would stay in the heap), a
# Ctrl-C before that ends in the error path below, and only a phase() that
# returns 1 ends this file at the REPL.
# On an unexpected error: a minute's wait, then a reset whatever happens on
# the way (never a tight crash loop, never the REPL).
import gc
import os
import machine
from glue import FATAL


def ld(n):
    f = open(n)
    while 1:
        k = f.read(3)
        if not k:
            break
        exec(f.read(int(k)), globals())
        gc.collect()
    f.close()


try:
    gc.collect()
    for n in (RUN_FILES if 'rt' in os.listdir() else
              BOOT_FILES if 'cf' in os.listdir() else CONFIG_FILES):
        ld('ml_n' + chr(n))
    phase() or machine.reset()  # 1: the maintenance input is held
    for n in list(globals()):
        if n != '__name__':
            del globals()[n]
except FATAL as e:  # nRF51: a KeyboardInterrupt too
    try:
        import sys
        import utime
        sys.print_exception(e)
        utime.sleep_ms(60000)
    finally:
        machine.reset()
