# Boot entry on the nRF51 (flashed as main.py), the lean profile. Three
# phases with a reset between them, so that each compiles its modules into
# an empty heap (compiling a file needs about three times its size in free
# heap, and the heap is about 9 KB). 1 (no file 'cf' or 'rt'): config.txt
# (ml_nc, ml_cfg) to 'cf'. 2 ('cf'): the state records and the config (ml_nb)
# and the working keys (with ml_nx) to 'rt', the counter reservation
# committed. 3, run ('rt'): ml_nd (the state, read from 'rt'), then the
# resident code, each file into the heap the previous ones left (small files:
# the compiler needs blocks of about the file's size), then the main loop. On an unexpected error it re-enables Ctrl-C, waits a
# minute (tools can reach the REPL) and resets: never a tight crash loop.
import gc
import os
import machine
try:
    gc.collect()  # needed: compiling the next module fails without it
    if 'rt' in os.listdir():
        for n in ('ml_nd', 'ml_n', 'ml_nl', 'ml_nx', 'ml_ns', 'ml_nv', 'ml_nm'):
            __import__(n)
            gc.collect()
        import ml_nm
        ml_nm.run()
    elif 'cf' in os.listdir():
        import ml_nb
        ml_nb.boot()
        machine.reset()
    else:
        import ml_nc
        ml_nc.read()
        machine.reset()
except Exception as e:
    import sys
    import micropython
    import utime
    micropython.kbd_intr(3)
    sys.print_exception(e)
    utime.sleep_ms(60000)
    machine.reset()
