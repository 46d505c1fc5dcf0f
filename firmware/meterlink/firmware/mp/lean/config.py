# Boot phase 1: config.txt through ml_cfg (the same rules as
# on rp2 and on the host), written in binary to the file 'cf' for phase 2
# (boot.py), which runs after a reset on an empty heap. Whatever config.txt
# holds, 'cf' is written: a bad one gives its safe-mode error code
# (protocol 4.7), never an exception. 'cf': the error code, ten 32-bit values,
# the root key, the pulse, direction and tamper pins, the burst thresholds
# (71 bytes; boot.py reads it).
import struct
from fields import *  # the feature flags (lowered by the bundler)
from glue import ctrl_c_off, held, bad_pin, pin_number, battery_pin


def read():
    # 1 if the maintenance input is held (main.py stops at the REPL)
    ctrl_c_off()  # no Ctrl-C from the UART (the radio)
    if held():
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
            # a pin this board does not have (nRF51: or pin8, the maintenance input)
            if n and bad_pin(n):
                e = 3
            elif n:
                p[i] = pin_number(n)
            if HAS_LOW_BATTERY_ALARM:
                if battery_pin(n):  # the low-battery input (nRF51: pin16)
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
    if HAS_DUTY_CYCLE_BUDGET:
        # the radio, last: modem (0 transparent, 1 AT), lora_freq, lora_sf,
        # lora_power, in ml_cfg's order, its defaults where config.txt did not
        # say (safe mode: the status frame still keeps the budget)
        import ml_cfg
        for k, lo, hi, d in ml_cfg.INTS:
            if k in ('modem', 'lora_freq', 'lora_sf', 'lora_power'):
                f.write(struct.pack('<I', g.get(k, d)))
    f.close()
