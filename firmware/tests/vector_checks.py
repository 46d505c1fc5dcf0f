# The protocol test vectors (protocol/vectors/v2.json) against the firmware's
# code, in the MicroPython 1.9.2 language subset. Each function takes one
# vector case (a dict) and asserts; run_all() runs a whole vectors document.
# The firmware encodes uplinks and decodes downlinks, so it runs the cases of
# those two paths: every valid uplink sealed byte for byte, every valid
# downlink opened and decoded, every invalid radio case refused by its
# downlink path, and the downlink counter rule.

_BODY = 66


def h2b(s):
    return bytes([int(s[i:i + 2], 16) for i in range(0, len(s), 2)])


def crc16(v):
    from ml_core import crc16
    d = h2b(v['data'])
    assert crc16(d, len(d)) == int(v['crc'], 16), v


def aes128(v):
    from ml_aes import Key
    b = bytearray(h2b(v['plaintext']))
    Key(h2b(v['key'])).enc(b)
    assert b == h2b(v['ciphertext']), v


def cmac(v):
    import ml_sec
    k = h2b(v['key'])
    s = ml_sec.Sec(0, bytes(16))
    s.keys(k, k)
    m = h2b(v['message'])
    assert bytes(s.cmac(m, len(m))) == h2b(v['mac']), v


def key_derivation(v):
    import ml_sec
    from ml_aes import Key
    s = ml_sec.Sec(0, h2b(v['root_key']))
    for k, name in ((s.ke, 'enc'), (s.km, 'mic')):
        a = bytearray(16)
        b = bytearray(16)
        k.enc(a)
        Key(h2b(v[name])).enc(b)
        assert a == b, (v, name)


def slip(v):
    import board
    import ml_link
    out = []
    w = board.write
    board.write = lambda b: out.append(bytes(b))
    try:
        d = h2b(v['data'])
        ml_link.send(d, len(d))
    finally:
        board.write = w
    assert v['link_type'] == 1 and out == [h2b(v['link_frame'])], (v, out)


def _encode(m, b):
    # the firmware's CBOR encoder over a vector's decoded map
    from ml_body import head
    ks = sorted([int(k) for k in m])
    o = head(b, 9, 5, len(ks))
    for k in ks:
        x = m[str(k)]
        o = head(b, o, 0, k)
        if k == 5:
            x = h2b(x)
            o = head(b, o, 2, len(x))
            b[o:o + len(x)] = x
            o += len(x)
        else:
            o = head(b, o, 0, x)
    return o - 9


def _open(v, p, afc, dlc):
    # the firmware's downlink path: MIC, counter, decryption, then the body
    import ml_sec
    from ml_dl import dmap
    sec = ml_sec.Sec(0x12345678, h2b(v['root_key']))
    f = bytearray(_BODY)
    f[0:len(p)] = p
    x = sec.open(f, len(p), afc, dlc)
    if x is None:
        return None
    # as ml_dl.got: an ack has no body, a config or time has a map
    if x[0] == 8:
        return None if x[2] else (x, {})
    d = dmap(f, 9, 9 + x[2])
    return None if d is None or (x[0] == 10 and 30 not in d) else (x, d)


def valid_frame(v):
    # uplinks: the firmware encodes and seals them to the same bytes;
    # downlinks: the firmware opens and decodes them
    import ml_sec
    h = v['header']
    sec = ml_sec.Sec(h['device_id'], h2b(v['root_key']))
    p = h2b(v['payload'])
    if h['frame_type'] < 8:
        if 'encoder_input' in v:
            return  # trimming and unknown keys: the body builder's checks
        f = bytearray(_BODY)
        n = _encode(v['map'], f)
        assert bytes(f[9:9 + n]) == h2b(v['plaintext']), v['name']
        n = sec.seal(f, 0x20 | h['frame_type'], v['counter'], n)
        assert bytes(f[0:n]) == p, v['name']
    else:
        c = v['counter']
        r = _open(v, p, c, c - 1)
        assert r is not None, v['name']
        x, d = r
        assert x == (h['frame_type'], c, len(p) - 11), (v['name'], x)
        want = {}
        for k in v['map']:
            if int(k) not in v.get('ignored_keys', ()):
                want[int(k)] = v['map'][k]
        for k in v.get('ignored_keys', ()):  # the handler does not look at them
            d.pop(k, None)
        assert d == want, (v['name'], d, want)
        # the same frame with the wrong counter context is dropped
        assert _open(v, p, c + 1, c - 1 if h['frame_type'] == 8 else c) is None, v['name']


def invalid(v):
    # every invalid radio case, given to the downlink path with the most
    # permissive context (its ack awaited, its counter fresh), is dropped
    if v['layer'] not in ('radio', 'downlink'):  # 'uplink': a gateway's path
        return 0
    p = h2b(v['input'])
    lo = p[5] << 8 | p[6] if len(p) >= 7 else 0
    c = v.get('counter', lo)
    assert _open(v, p, c, max(0, c - 1)) is None, v['name']
    return 1


def downlink_counter(v):
    p = h2b(v['payload'])
    r = _open({'root_key': '000102030405060708090a0b0c0d0e0f'}, p, None, v['last'])
    if v['outcome'] == 'stale':
        assert r is None, v
    else:
        assert r is not None and r[0][1] == v['counter'], (v, r)


def link_stream(v):
    # the receive window's SLIP decoder (ml_link.listen): it hands ml_dl.got
    # exactly the DATA frames of at most 64 bytes of payload, in order
    import board
    import ml_core
    import ml_dl
    import ml_link
    c = ml_core.Core()
    got = []
    keep = ml_dl.got
    ml_dl.got = lambda c, sec, r, n: got.append(bytes(r[1:1 + n]))
    board.rx.append(h2b(v['input']))
    try:
        ml_link.listen(c, None, 50)
    finally:
        ml_dl.got = keep
    want = [h2b(x['ok']) for x in v['results']
            if 'ok' in x and x['link_type'] == 1 and len(x['ok']) <= 128]
    assert got == want, (v['name'], got, want)


def varint(v):
    # the reading builder's LEB128: a history whose deltas, newest first, are
    # the vector's values gives the vector's bytes
    import board
    import ml_body
    import ml_core
    c = ml_core.Core()
    vals = v['values']
    c.h = [0] * len(vals)
    for x in vals[::-1]:  # the oldest first, so vals[0] is the newest
        c.h[c.hp] = x
        c.hp = (c.hp + 1) % len(c.h)
    c.hn = len(vals)
    c.t0 = board.ticks_ms()
    c.s[5] = 1
    n = ml_body.reading(c)
    want = h2b(v['bytes'])
    body = bytes(c.f[9:9 + n])
    key = b'\x05' + bytes([0x40 | len(want)])  # key 5, byte string head
    i = body.find(key)
    assert len(want) < 24 and i > 0 and body[i + 2:i + 2 + len(want)] == want, (v, body)


def run_all(doc):
    n = 0
    assert doc['protocol_version'] == 2
    fn = {'link_streams': 'link_stream'}
    for name in ('crc16', 'aes128', 'cmac', 'key_derivation', 'slip', 'varint',
                 'downlink_counter', 'link_streams'):
        for v in doc[name]:
            globals()[fn.get(name, name)](v)
            n += 1
    for v in doc['valid_frames']:
        valid_frame(v)
        n += 1
    for v in doc['invalid']:
        n += invalid(v)
    return n
