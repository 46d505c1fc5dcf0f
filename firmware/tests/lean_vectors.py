# The protocol test vectors (protocol/vectors/v2.json) against the lean
# sources (mp/lean/: the code every board's bundle is made from), in the
# MicroPython 1.9.2 language subset: CRC-16, AES-128, CMAC, the key
# derivation, the SLIP writer, the reading body's LEB128 deltas, every valid
# uplink encoded and sealed byte for byte, every valid downlink taken by got()
# (an ack ends its alarm, a config sets its overrides, a time is kept) and
# dropped with the wrong counter context, every invalid radio case changing
# nothing, the downlink counter rule, the SLIP receiver's frames (listen()),
# and the LoRa airtime of the duty-cycle budget (air.py). It runs where the
# sources run: under CPython (test_lean.py), MicroPython 1.27 in Node
# (test_wasm.py) and on the emulated RP2040 (the HIL suite), on a namespace
# the caller loads (space()).
from array import array

import fields
from fields import (
    S_DLC,
    S_ISEQ,
    S_N,
    S_OV,
    V_AFC,
    V_ALEN,
    V_DEV,
    V_HLEN,
    V_HPOS,
    V_N,
    V_T0,
)  # the state indexes

V_TIME = getattr(fields, 'V_TIME', 0)  # with the time downlink (lean/downlink.py)
# the files it loads (downlink.py where the sources have it: the caller's load()
# skips a role it has no file for)
ROLES = ('crc', 'aes', 'boot', 'counting', 'ack', 'window', 'downlink', 'seal', 'uplink', 'air')


def h2b(s):
    return bytes([int(s[i:i + 2], 16) for i in range(0, len(s), 2)])


class Out:
    # a UART or file that keeps what is written
    def __init__(self):
        self.got = []

    def write(self, b):
        self.got.append(bytes(b))
        return len(b)


def space(load):
    # a run-phase namespace without 'rt': the state state.py would read,
    # then load(ns, ROLES) puts the code in
    ns = {'__name__': '__main__'}
    ns['S'] = array('L', [0] * S_N)
    ns['V'] = array('L', [0] * V_N)
    ns['F'] = bytearray(80)
    ns['B'] = bytearray(62)
    ns['A'] = bytearray(48)
    ns['Q'] = [int, None, array('L', [0] * 23)]
    ns['K'] = [None, None, None, None]
    ns['RADIO'] = (0, 868100000, 9, 14)
    load(ns, ROLES)
    ns['poll'] = int
    return ns


def root(ns, key, dev):
    # the working keys of root key `key` as boot.py derives them, for device dev
    f = Out()
    ns['keys'](f, key)
    ns['K'] = [f.got[0], f.got[1], f.got[2], f.got[3]]
    ns['V'][V_DEV] = dev


def put(ns, p):
    f = ns['F']
    for i in range(len(p)):
        f[i] = p[i]


def crc16(ns, v):
    d = h2b(v['data'])
    assert ns['crc'](d, len(d)) == int(v['crc'], 16), v


def aes128(ns, v):
    b = bytearray(h2b(v['plaintext']))
    ns['enc'](ns['ks'](h2b(v['key'])), b)
    assert b == h2b(v['ciphertext']), v


def cmac(ns, v):
    k = ns['ks'](h2b(v['key']))
    e = bytearray(16)
    ns['enc'](k, e)
    k1 = ns['dbl'](e)
    ns['K'] = [None, k, k1, ns['dbl'](k1)]
    m = h2b(v['message'])
    assert bytes(ns['cmac'](bytearray(m), len(m))) == h2b(v['mac']), v


def key_derivation(ns, v):
    f = Out()
    ns['keys'](f, h2b(v['root_key']))
    assert f.got[0] == bytes(ns['ks'](h2b(v['enc']))), v
    assert f.got[1] == bytes(ns['ks'](h2b(v['mic']))), v


def slip(ns, v):
    out = Out()
    ns['uart'] = out
    d = h2b(v['data'])
    put(ns, d)
    ns['link'](len(d))
    assert v['link_type'] == 1 and out.got == [h2b(v['link_frame'])], (v, out.got)


def varint(ns, v):
    # the reading body's deltas: a history whose deltas, newest first, are the
    # vector's values gives the vector's bytes
    vals = v['values']
    V = ns['V']
    h = array('L', [0] * len(vals))
    for i in range(len(vals)):
        h[i] = vals[len(vals) - 1 - i]  # the oldest first: vals[0] is the newest
    ns['Q'][2] = h
    V[V_HPOS] = 0
    V[V_HLEN] = len(vals)
    ns['S'][S_ISEQ] = 1
    V[V_T0] = ns['ticks_ms']()
    n = ns['body'](0)
    want = h2b(v['bytes'])
    body = bytes(ns['F'][9:9 + n])
    i = body.find(b'\x05' + bytes([0x40 | len(want)]))  # key 5, byte string head
    assert len(want) < 24 and i > 0 and body[i + 2:i + 2 + len(want)] == want, (v, body)


def encode(ns, m):
    # the firmware's CBOR heads over a vector's decoded map, into F[9:]
    hd = ns['hd']
    f = ns['F']
    ks = sorted([int(k) for k in m])
    o = hd(9, 5, len(ks))
    for k in ks:
        x = m[str(k)]
        o = hd(o, 0, k)
        if k == 5:
            x = h2b(x)
            o = hd(o, 2, len(x))
            for i in range(len(x)):
                f[o + i] = x[i]
            o += len(x)
        else:
            o = hd(o, 0, x)
    return o - 9


def heard(ns, p, afc, dlc):
    # payload p given to got() as listen() would (11..64 bytes), with an alarm
    # frame of counter afc waiting (None: none) and dlc the last downlink
    # counter; what it did: (acked, overrides, time, dlc)
    S = ns['S']
    V = ns['V']
    V[V_ALEN] = 0 if afc is None else 40
    V[V_AFC] = afc or 0
    S[S_DLC] = dlc
    for i in range(5):
        S[S_OV + i] = 0
    V[V_TIME] = 0
    if 10 < len(p) < 65:
        put(ns, p)
        ns['got'](len(p))
    ov = [S[S_OV + i] for i in range(5)]
    return (afc is not None and not V[V_ALEN], ov, V[V_TIME], S[S_DLC])


OVERRIDE_KEYS = (4, 20, 21, 22, 23)


def valid_frame(ns, v):
    # uplinks: encoded and sealed to the same bytes; downlinks: taken
    h = v['header']
    root(ns, h2b(v['root_key']), h['device_id'])
    p = h2b(v['payload'])
    t = h['frame_type']
    if t < 8:
        if 'encoder_input' in v:
            return  # trimming and unknown keys: the body builder's checks
        n = encode(ns, v['map'])
        assert bytes(ns['F'][9:9 + n]) == h2b(v['plaintext']), v['name']
        n = ns['seal'](0x20 | t, v['counter'], n)
        assert bytes(ns['F'][0:n]) == p, v['name']
        return
    c = v['counter']
    m = v['map']
    if t == 8:
        assert heard(ns, p, c, 0)[0], v['name']
        assert not heard(ns, p, c + 1, 0)[0], v['name']  # another alarm's counter
        return
    _, ov, tm, dlc = heard(ns, p, None, c - 1)
    assert dlc == c, (v['name'], dlc)
    if t == 9:
        want = [m.get(str(k), 0) for k in OVERRIDE_KEYS]
        assert ov == want, (v['name'], ov, want)
    else:
        assert tm == m['30'], (v['name'], tm)
    assert heard(ns, p, None, c) == (False, [0] * 5, 0, c), v['name']  # stale


def invalid(ns, v):
    # every invalid radio case, given to got() with the most permissive
    # context (its ack awaited, its counter fresh), acks nothing, sets no
    # override and keeps no time
    if v['layer'] not in ('radio', 'downlink'):  # 'uplink': a gateway's path
        return 0
    p = h2b(v['input'])
    lo = p[5] << 8 | p[6] if len(p) >= 7 else 0
    c = v.get('counter', lo)
    if len(p) > 4:
        ns['V'][V_DEV] = p[1] << 24 | p[2] << 16 | p[3] << 8 | p[4]
    root(ns, h2b(v['root_key']), ns['V'][V_DEV])
    acked, ov, tm, _ = heard(ns, p, c, max(0, c - 1))
    assert not acked and ov == [0] * 5 and not tm, (v['name'], acked, ov, tm)
    return 1


def downlink_counter(ns, v):
    root(ns, h2b('000102030405060708090a0b0c0d0e0f'), 0x12345678)
    _, _, tm, dlc = heard(ns, h2b(v['payload']), None, v['last'])
    if v['outcome'] == 'stale':
        assert dlc == v['last'] and not tm, v
    else:
        assert dlc == v['counter'] and tm, (v, dlc)


def link_stream(ns, v):
    # the receive window's SLIP receiver (listen()) hands got() exactly the
    # DATA frames with 11..64 bytes of payload (an ack .. the largest
    # downlink), in order
    got = []
    keep = ns['got'], ns.get('modem_read')
    chunks = [h2b(v['input'])]
    ns['got'] = lambda n: got.append(bytes(ns['F'][0:n]))
    ns['modem_read'] = lambda: chunks.pop() if chunks else None  # the glue's read
    try:
        ns['listen'](30)
    finally:
        ns['got'], ns['modem_read'] = keep
    want = [h2b(x['ok']) for x in v['results']
            if 'ok' in x and x['link_type'] == 1 and 22 <= len(x['ok']) <= 128]
    assert got == want, (v['name'], got, want)


def airtime(ns, v):
    # air.py's time on air, for each frame size and SF of the radio section
    n = 0
    for f in v['airtime_ms']:
        for sf in f['sf']:
            us = ns['air_us'](f['bytes'], int(sf))
            assert us == int(f['sf'][sf] * 1000 + 0.5), (f, sf, us)
            n += 1
    return n


def run_all(doc, ns):
    # every case the namespace has the code for; the number run: the vectors'
    # own count (137 with the downlink handler got(), of lean/window.py with
    # config and time downlinks; without it the uplink side, 28), then the
    # airtimes
    n = 0
    assert doc['protocol_version'] == 2
    down = 'got' in ns and 'listen' in ns
    names = ('crc16', 'aes128', 'cmac', 'key_derivation', 'slip', 'varint')
    for name in names + (('downlink_counter',) if down else ()):
        for v in doc[name]:
            globals()[name](ns, v)
            n += 1
    for v in doc['link_streams'] if down else ():
        link_stream(ns, v)
        n += 1
    for v in doc['valid_frames']:
        if down or v['header']['frame_type'] < 8:
            valid_frame(ns, v)
            n += 1
    for v in doc['invalid'] if down else ():
        n += invalid(ns, v)
    return n, airtime(ns, doc['radio'])
