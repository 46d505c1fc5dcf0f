# nRF51 build, boot phase 1: config.txt through ml_cfg (the same rules as
# on rp2 and on the host), written in binary to the file 'cf' for phase 2
# (boot.py), which runs after a reset on an empty heap. Whatever config.txt
# holds, 'cf' is written: a bad one gives its safe-mode error code
# (protocol 4.7), never an exception. 'cf': the error code, ten 32-bit values,
# the root key, the pulse, direction and tamper pins, the burst thresholds
# (71 bytes; boot.py reads it).
import struct
import microbit
import micropython
from fields import *  # the feature flags (lowered by the bundler)


def read():
    # 1 if the maintenance input is held (main.py stops at the REPL)
    micropython.kbd_intr(-1)  # no Ctrl-C from the UART (the radio)
    if microbit.pin8.read_digital():
        return 1
    import ml_cfg
    e = 1  # missing
    g = {}
    try:
        f = open('config.txt', 'rb')
        try:
            g = ml_cfg.parse(ml_cfg.as_text(f.read()))
            e = 0
        except ml_cfg.CfgError as x:
            e = x.args[0]
            g = x.args[3]
        except Exception:  # unreadable: too large for the heap, a read error
            e = 2
        f.close()
    except OSError:
        pass
    ml_cfg = None
    p = [255, 255, 255]  # pulse, direction and tamper pin numbers (255: none)
    if not e:
        for i in (0, 1, 2):
            n = g[('pin_pulse', 'pin_dir', 'pin_tamper')[i]]
            # a pin this board does not have, or pin8, the maintenance input
            if n and (n[:3] != 'pin' or n == 'pin8' or not hasattr(microbit, n)):
                e = 3
            elif n:
                p[i] = int(n[3:])
            if HAS_LOW_BATTERY_ALARM:
                if n == 'pin16':  # the low-battery input (nrf51_battery.py)
                    e = 3
    f = open('cf', 'wb')
    f.write(struct.pack('<I', e))
    for k in ('id', 'gen', 'register', 'weight', 'unit', 'interval', 'leak_intervals',
              'rx_window_ms', 'backflow_pulses', 'history'):
        f.write(struct.pack('<I', g.get(k, 0)))
    f.write(g.get('key', bytes(16)))
    f.write(bytes(p))
    for k in ('burst_pulses', 'burst_intervals'):
        f.write(struct.pack('<I', g.get(k, 0)))
    f.close()
