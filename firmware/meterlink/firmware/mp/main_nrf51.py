# Boot entry on the nRF51 (flashed as main.py), the lean profile. Three
# phases with a reset between them, so that each starts on an empty heap
# (about 9 KB). 1 (no file 'cf' or 'rt'): config.txt (ml_nc, ml_cfg) to 'cf'.
# 2 ('cf'): the state records and the config (ml_nb) and the working keys
# (with ml_nx) to 'rt', the counter reservation committed. 3, run ('rt'): the
# state (ml_nd, read from 'rt'), the code, then the main loop.
# Phases 2 and 3 do not import their files: ld() compiles them a top-level
# statement at a time into this module's namespace. Compiling a whole module
# needs free blocks of about three times its size, and after a few imports
# the heap has no such blocks left; one statement at a time needs a few
# hundred bytes, and one namespace saves a module and a dict per file. The
# files are stored as chunks, each a 3-digit length and its source (the
# bundler in meterlink.firmware writes them).
# After the maintenance break the namespace is emptied, so that the REPL
# (the harness, provisioning) has the heap. On an unexpected error: Ctrl-C re-enabled, a minute's wait (tools can reach
# the REPL), a reset: never a tight crash loop.
import gc
import os
import machine


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
    if 'rt' in os.listdir():
        for n in ('ml_nd', 'ml_n', 'ml_nl', 'ml_nk', 'ml_nx', 'ml_ns', 'ml_nv', 'ml_nm'):
            ld(n)
        run()  # returns at the maintenance break: free the heap for the REPL
        g = globals()
        for n in list(g):
            if n != '__name__':
                del g[n]
    elif 'cf' in os.listdir():
        for n in ('ml_nk', 'ml_nx', 'ml_nb'):
            ld(n)
        boot()
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
