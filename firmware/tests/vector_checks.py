# The protocol test vectors (protocol/vectors/v1.json) against the firmware's
# code, in the MicroPython 1.9.2 language subset. Each function takes one
# vector case (a dict) and asserts; run_all() runs a whole vectors document.

_BODY = 64


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


def valid_frame(v):
    # uplinks: the firmware encodes and seals them to the same bytes;
    # downlinks: the firmware opens and decodes them
    import ml_sec
    h = v['header']
    sec = ml_sec.Sec(h['device_id'], h2b(v['root_key']))
    p = h2b(v['payload'])
    if h['frame_type'] < 8:
        if 'encoder_input' in v or '99' in v['map']:
            return  # trimming and unknown keys: the reading builder's checks
        f = bytearray(_BODY)
        n = _encode(v['map'], f)
        assert bytes(f[9:9 + n]) == h2b(v['plaintext']), v['name']
        n = sec.seal(f, 0x10 | h['frame_type'], h['counter'], n)
        assert bytes(f[0:n]) == p, v['name']
    else:
        from ml_dl import dmap
        f = bytearray(_BODY)
        f[0:len(p)] = p
        x = sec.open(f, len(p))
        assert x == (h['frame_type'], h['counter'], len(p) - 13), (v['name'], x)
        d = dmap(f, 9, len(p) - 4) if len(p) > 13 else {}
        want = {}
        for k in v['map']:
            want[int(k)] = v['map'][k]
        assert d == want, (v['name'], d, want)


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
    for name in ('crc16', 'aes128', 'cmac', 'key_derivation', 'slip', 'varint'):
        for v in doc[name]:
            globals()[name](v)
            n += 1
    for v in doc['valid_frames']:
        valid_frame(v)
        n += 1
    return n
