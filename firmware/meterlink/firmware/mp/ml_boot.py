# Boot, imported once and released: config.txt, the newer valid state record,
# a fresh provisioning, the counter reservation. parse() is also the host's
# config checker (meterlink.firmware.parse_config loads this file).
import struct

# State fields are written as numbers here (see ml_core): 1 gen, 2 register,
# 6 counter reservation, 8 resets, 9 flags. Records are 62 bytes.
_M = 0xFFFFFFFF
# integer keys: name, lowest, highest, default (None: required)
INTS = (('id', 0, _M, None), ('weight', 1, 65535, 1), ('unit', 0, 2, 1),
        ('register', 0, _M, 0), ('gen', 0, _M, None), ('interval', 1, 65535, 900),
        ('leak_intervals', 1, 65535, 96), ('burst_pulses', 1, _M, 100),
        ('burst_intervals', 1, 65535, 2), ('backflow_pulses', 1, _M, 10),
        ('rx_window_ms', 0, 60000, 2000), ('history', 1, 48, 12))
PINS = ('pin_pulse', 'pin_dir', 'pin_tamper')
KEYS = tuple(k[0] for k in INTS) + ('key',) + PINS


class CfgError(Exception):
    # args: safe-mode error code (2 syntax, 3 value), the key (None: a line
    # without '='), the line number (0: a value), the values parsed so far.
    # The host's parse_config turns these into messages.
    pass


def parse(text):
    # config.txt text -> dict of every key, defaults filled in; CfgError
    raw = {}
    n = 0
    for ln in text.split('\n'):
        n += 1
        ln = ln.strip()
        if not ln or ln[0] == '#':
            continue
        i = ln.find('=')
        k = ln[:i].strip()
        if i < 1:
            raise CfgError(2, None, n, {})
        if k in raw:
            raise CfgError(2, k, n, {})
        if k not in KEYS:
            raise CfgError(3, k, n, {})
        raw[k] = ln[i + 1:].strip()
    c = {}
    for k, lo, hi, d in INTS:
        v = raw.get(k, '')
        if v == '' and d is not None:
            c[k] = d
        elif not v.isdigit() or not lo <= int(v) <= hi:
            raise CfgError(3, k, 0, c)
        else:
            c[k] = int(v)
        if k == 'id':
            v = raw.get('key', '').lower()
            if len(v) != 32 or v.strip('0123456789abcdef'):
                raise CfgError(3, 'key', 0, c)
            c['key'] = bytes([int(v[i:i + 2], 16) for i in range(0, 32, 2)])
    for k in PINS:
        v = raw.get(k, '')
        c[k] = v or ('pin0' if k == 'pin_pulse' else '')
        if v and not (v.isdigit() or (v[:3] == 'pin' and v[3:].isdigit())):
            raise CfgError(3, k, 0, c)
    p = [c[k] for k in PINS if c[k]]
    if len(set(p)) < len(p):
        raise CfgError(3, 'pins', 0, c)
    return c


def _record(fs, i):
    # (record or None, file present)
    from ml_core import crc16
    try:
        f = open(fs + 'st' + str(i), 'rb')
    except OSError:
        return None, 0
    d = f.read(63)
    f.close()
    if len(d) != 62 or crc16(d, 60) != struct.unpack_from('<H', d, 60)[0]:
        return None, 1
    return struct.unpack_from('<15I', d, 0), 1


def load(s, fs):
    # fill s from the newer valid record: 0 loaded, 1 none yet, 4 both corrupt
    a, ea = _record(fs, 0)
    b, eb = _record(fs, 1)
    if b and (not a or b[0] > a[0]):
        a = b
    if not a:
        return 4 if ea or eb else 1
    for i in range(15):
        s[i] = a[i]
    return 0


def boot(c):
    import board
    from array import array
    s = c.s
    e = load(s, board.FS)
    try:
        f = open(board.FS + 'config.txt', 'r')
    except OSError:
        f = None
        c.err = 1
    g = {}
    if f:
        try:
            g = parse(f.read())
            c.rp = board.pin(g['pin_pulse'])
            if g['pin_dir']:
                c.rd = board.pin(g['pin_dir'])
            if g['pin_tamper']:
                c.rt = board.pin(g['pin_tamper'], 1)
        except CfgError as x:
            c.err = x.args[0]
            g = x.args[3]
        except ValueError:  # a pin this board does not have
            c.err = 3
        f.close()
    c.dev = g.get('id', 0)
    c.key = g.get('key', c.key)
    if not c.err:
        if e or s[1] != g['gen']:
            # first boot of this provisioning: keep only the counter reservation
            r = s[6]
            for i in range(15):
                s[i] = 0
            s[6] = r
            s[1] = g['gen']
            s[2] = g['register']
        else:
            s[8] += 1
            if not s[9] & 1:
                c.act = c.pend = 32  # unexpected reset
        if e == 4:
            c.err = 4
        c.w = g['weight']
        c.unit = g['unit']
        c.base = (g['interval'], g['leak_intervals'], g['burst_pulses'],
                  g['burst_intervals'], g['backflow_pulses'])
        c.rxw = g['rx_window_ms']
        c.h = array('L', [0] * g['history'])
        if not board.POLL:  # the board counts edges by interrupt
            board.attach(g['pin_pulse'], g['pin_dir'], c.edge)
            c.rp = board.ZERO
    s[9] = 0
    c.fc = s[6]
    s[6] = c.fc + 32  # reserve frame counters before using any (protocol 3.4)
    c.commit()
    c.t0 = c.tk = board.ticks_ms()
