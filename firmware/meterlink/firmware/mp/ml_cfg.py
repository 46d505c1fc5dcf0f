# config.txt, written by provisioning: one name=value per line, # comments.
# Imported at boot and released. The host's meterlink.bundler.parse_config
# runs this very file, so both apply the same rules.
_M = 0xFFFFFFFF
# integer keys: name, lowest, highest, default (None: required)
INTS = (('id', 0, _M, None), ('weight', 1, 65535, 1), ('unit', 0, 2, 1),
        ('register', 0, _M, 0), ('gen', 0, _M, None), ('interval', 1, 65535, 900),
        ('leak_intervals', 1, 65535, 96), ('burst_pulses', 1, _M, 100),
        ('burst_intervals', 1, 65535, 2), ('backflow_pulses', 1, _M, 10),
        ('rx_window_ms', 0, 60000, 2000), ('history', 1, 23, 12),
        ('modem', 0, 1, 0), ('lora_freq', 863000000, 870000000, 868100000),
        ('lora_sf', 7, 12, 9), ('lora_power', 5, 22, 14))
PINS = ('pin_pulse', 'pin_dir', 'pin_tamper')
KEYS = tuple(k[0] for k in INTS) + ('key',) + PINS


class CfgError(Exception):
    # args: safe-mode error code (2 syntax, 3 value), the key (None: a line
    # without '='; an int: a byte that is not text), the line number (0: a
    # value), the values parsed so far.
    # The host's parse_config turns these into messages.
    pass


def as_text(b):
    # config.txt's bytes as text; CfgError (2, the byte, its line) for a
    # byte that is not plain ASCII text: random bytes or another encoding
    # make the file unreadable (code 2), not a bad value
    n = 1
    for c in b:
        n += c == 10
        if c > 126 or c < 32 and c not in (9, 10, 13):
            raise CfgError(2, c, n, {})
    return str(b, 'ascii')  # 1.9.2 on the micro:bit has no bytes.decode


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


def drop():
    # free this module's code once boot has parsed the config (MicroPython
    # 1.9.2 cannot unload a module; its globals can be deleted)
    g = globals()
    for k in list(g):
        if k[0] != '_':
            del g[k]
