# nRF51 profile, boot phase 1: config.txt through ml_cfg (the same rules as
# on rp2 and on the host), written in binary to the file 'cf' for phase 2
# (ml_nb), which runs after a reset on an empty heap.
import struct
import microbit


def read():
    import gc
    gc.collect()
    import ml_cfg
    e = 1  # missing
    g = {}
    try:
        f = open('config.txt', 'r')
        try:
            g = ml_cfg.parse(f.read())
            e = 0
        except ml_cfg.CfgError as x:
            e = x.args[0]
            g = x.args[3]
        f.close()
    except OSError:
        pass
    ml_cfg = None
    p = [255, 255]  # pulse and direction pin numbers (255: none)
    if not e:
        for i in (0, 1):
            n = g[('pin_pulse', 'pin_dir')[i]]
            if n and (n[:3] != 'pin' or not hasattr(microbit, n)):
                e = 3  # a pin this board does not have
            elif n:
                p[i] = int(n[3:])
    f = open('cf', 'wb')
    f.write(struct.pack('<I', e))
    for k in ('id', 'gen', 'register', 'weight', 'unit', 'interval', 'leak_intervals',
              'rx_window_ms', 'backflow_pulses', 'history'):
        f.write(struct.pack('<I', g.get(k, 0)))
    f.write(g.get('key', bytes(16)))
    f.write(bytes(p))
    f.close()
