# Checks of the firmware core, in the language subset of MicroPython 1.9.2:
# plain asserts, no pytest. They run under CPython (test_core.py), under
# current MicroPython in Node (wasm/run.mjs, through test_wasm.py), and the
# vector checks on the emulated board. Each check_* gets a fresh fake board
# and an empty directory as the board's filesystem (setup()).
import os
import struct
import sys

import board  # the fake board (tests/fake/board.py)

KEY = bytes(range(16))
DEV = 0x12345678


def setup(fs):
    board.reset_all(fs)
    for m in ('ml_main', 'ml_boot', 'ml_cfg', 'ml_body', 'ml_link', 'ml_dl', 'ml_sec',
              'ml_aes'):
        if m in sys.modules:
            del sys.modules[m]


def h2b(s):
    return bytes([int(s[i:i + 2], 16) for i in range(0, len(s), 2)])


def write(name, data):
    with open(board.FS + name, 'wb') as f:
        f.write(data)


def config(**kw):
    v = {'id': DEV, 'key': '000102030405060708090a0b0c0d0e0f', 'gen': 1, 'interval': 10,
         'rx_window_ms': 200}
    for k in kw:
        v[k] = kw[k]
    write('config.txt', ''.join([f'{k}={v[k]}\n' for k in sorted(v)]).encode())


def boot():
    import ml_boot
    import ml_core
    c = ml_core.Core()
    ml_boot.boot(c)
    return c


def run_until(c, t):
    import ml_main
    while board.clock[0] < t:
        ml_main.step(c)


# ---- decoding what the firmware sent (uplinks) and making downlinks

def unslip(data):
    # SLIP frames in data -> list of (link type, payload), CRC checked
    from ml_core import crc16
    out = []
    cur = bytearray()
    esc = 0
    for v in data:
        if v == 0xC0:
            if len(cur) >= 3:
                assert crc16(cur, len(cur) - 2) == cur[-2] << 8 | cur[-1], 'link CRC'
                out.append((cur[0], bytes(cur[1:-2])))
            cur = bytearray()
        elif v == 0xDB:
            esc = 1
        else:
            if esc:
                v = 0xC0 if v == 0xDC else 0xDB
                esc = 0
            cur.append(v)
    return out


def cbor(b):
    # a map of uint keys to uint or byte string values
    def arg(o):
        a = b[o] & 31
        if a < 24:
            return b[o] >> 5, a, o + 1
        n = 1 << (a - 24)
        v = 0
        for i in range(n):
            v = v << 8 | b[o + 1 + i]
        return b[o] >> 5, v, o + 1 + n
    mt, n, o = arg(0)
    assert mt == 5
    d = {}
    keys = []
    for _ in range(n):
        _, k, o = arg(o)
        mt, v, o = arg(o)
        if mt == 2:
            d[k] = bytes(b[o:o + v])
            o += v
        else:
            assert mt == 0
            d[k] = v
        keys.append(k)
    assert o == len(b), 'trailing bytes'
    assert keys == sorted(keys), 'keys ascending'
    return d


def uplinks(key=KEY):
    # every frame the firmware sent: (type, device, counter, body dict, size);
    # the 16-bit counter on air is extended as a gateway does (protocol 3.4)
    import ml_sec
    sec = ml_sec.Sec(0, key)
    out = []
    hi = -1
    for lt, p in unslip(b''.join(board.tx)):
        assert lt == 1
        n = len(p)
        assert 11 <= n <= 51, n
        vt, dev, lo = struct.unpack_from('>BIH', p, 0)
        assert vt >> 4 == 2 and not vt & 8
        b = max(0, hi - 63)
        fc = lo if hi < 0 else b + ((lo - b) & 0xFFFF)
        hi = max(hi, fc)
        f = bytearray(n + 2)
        f[0:5] = p[0:5]
        struct.pack_into('>I', f, 5, fc)
        f[9:] = p[7:]
        sec.dev = dev
        x = sec.cmac(f, n - 2)
        assert bytes(x[0:4]) == bytes(f[n - 2:]), 'MIC'
        sec.ctr(f, 9, n - 11, 0, fc)
        out.append((vt & 15, dev, fc, cbor(f[9:n - 2]), n))
    return out


def downlink(typ, fc, body, key=KEY, dev=DEV):
    # a sealed downlink as a SLIP link frame
    import ml_sec
    from ml_core import crc16
    sec = ml_sec.Sec(dev, key)
    f = bytearray(66)
    f[9:9 + len(body)] = body
    struct.pack_into('>BII', f, 0, 0x20 | typ, dev, fc)
    sec.ctr(f, 9, len(body), 1, fc)
    x = sec.cmac(f, 9 + len(body))
    n = 13 + len(body)
    f[n - 4:n] = x[0:4]
    d = b'\x01' + bytes(f[0:5]) + bytes(f[7:n])  # 16 counter bits on air
    c = crc16(d, len(d))
    d = d + bytes([c >> 8, c & 255])
    out = bytearray([0xC0])
    for v in d:
        if v in (0xC0, 0xDB):
            out += bytes([0xDB, 0xDC if v == 0xC0 else 0xDD])
        else:
            out.append(v)
    out.append(0xC0)
    return bytes(out)


def pulses_wave(start, period, high, count):
    # level function: count pulses from start, high for `high` ms of each period
    def w(t):
        k = (t - start) // period
        return 1 if 0 <= k < count and (t - start) % period < high else 0
    return w


# ---- the checks

def check_aes_fips197():
    from ml_aes import Key
    b = bytearray(h2b('00112233445566778899aabbccddeeff'))
    Key(h2b('000102030405060708090a0b0c0d0e0f')).enc(b)
    assert b == h2b('69c4e0d86a7b0430d8cdb78070b4c55a'), b


# RFC 4493's AES-CMAC examples: key, message, (length, tag) per example
RFC4493_KEY = '2b7e151628aed2a6abf7158809cf4f3c'
RFC4493_MSG = ('6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51'
               '30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710')
RFC4493_TAGS = ((0, 'bb1d6929e95937287fa37d129b756746'),
                (16, '070a16b46b4d4144f79bdd9dd04a287c'),
                (40, 'dfa66747de9ae63030ca32611497c827'),
                (64, '51f0bebf7e3b9d92fc49741779363cfe'))


def check_cmac_rfc4493():
    import ml_sec
    k = h2b(RFC4493_KEY)
    s = ml_sec.Sec(0, bytes(16))
    s.keys(k, k)
    m = h2b(RFC4493_MSG)
    for n, t in RFC4493_TAGS:
        assert bytes(s.cmac(m, n)) == h2b(t), n


def check_crc_check_value():
    from ml_core import crc16
    assert crc16(b'123456789', 9) == 0x29B1


def check_key_derivation_and_ctr_roundtrip():
    import ml_sec
    from ml_aes import Key
    s = ml_sec.Sec(DEV, KEY)
    e = bytearray(16)
    e[0] = 1
    Key(KEY).enc(e)
    b = bytearray(16)
    s.ke.enc(b)
    c = bytearray(16)
    Key(e).enc(c)
    assert b == c
    f = bytearray(b'\x00' * 9 + bytes(range(40)))
    s.ctr(f, 9, 40, 0, 7)
    assert f[9:] != bytes(range(40))
    s.ctr(f, 9, 40, 0, 7)
    assert f[9:] == bytes(range(40))


def check_store_survives_a_cut_mid_write():
    import ml_core
    c = ml_core.Core()
    assert ml_core.load(c.s) == 1  # no store yet
    for r in range(1, 6):
        c.s[2] = r * 10
        c.commit()
    write('st' + str(c.s[0] & 1), b'')  # the newest copy cut to nothing
    s = ml_core.Core().s
    assert ml_core.load(s) == 0
    assert s[0] == 4 and s[2] == 40  # the previous commit
    with open(board.FS + 'st' + str(s[0] & 1), 'rb') as f:
        d = f.read()
    write('st' + str(s[0] & 1), d[:30])  # and the other one torn too
    assert ml_core.load(ml_core.Core().s) == 4


def check_debounce_ignores_glitches():
    import ml_core
    c = ml_core.Core()
    # 3 pulses of 40 ms, then glitches of 1 ms
    board.pins['pin0'] = lambda t: 1 if (1100 <= t < 1340 and (t - 1100) % 80 < 40) or (
        t >= 1400 and t % 20 == 0) else 0
    c.rp = board.pin('pin0')
    while board.ticks_ms() < 1600:
        c.poll()
    assert c.s[2] == 3, c.s[2]


def check_reverse_flow_is_not_consumption():
    import ml_core
    c = ml_core.Core()
    for rev in (0, 0, 1, 1, 1, 0, 0, 0, 0):
        c.edge(rev)
    # 2 forward, 3 reverse (debt 3), 4 forward pay 3 and add 1
    assert (c.s[2], c.s[3], c.s[4], c.fi, c.ri) == (3, 0, 3, 3, 3)


def check_boot_status_then_readings():
    config(register=1000, interval=2)
    board.pins['pin0'] = pulses_wave(1100, 80, 40, 30)
    c = boot()
    run_until(c, 1000 + 4 * 2000 + 500)
    f = uplinks()
    assert f[0][0] == 2 and f[0][3][14] == 1 and f[0][3][10] == 257, f[0]  # boot status
    r = [x for x in f if x[0] == 0]
    assert len(r) == 4, len(r)
    assert [x[3][7] for x in r] == [0, 1, 2, 3]
    assert r[-1][3][1] == 1030 and c.s[2] == 1030  # all 30 pulses
    d = r[-1][3][5]
    assert sum(bytearray(d)) == 30 and len(d) == 4  # deltas, newest first
    cs = [x[2] for x in f]
    assert cs == list(range(len(cs))), cs  # counters 0, 1, 2, ...
    assert all([x[1] == DEV for x in f])


def check_pulses_during_frames_are_counted():
    # 40 ms pulses all the time, intervals of 1 s: many frames are built and
    # sealed while pulses arrive; the pure AES polls between rounds
    config(interval=1, rx_window_ms=50)
    n = 200
    board.pins['pin0'] = pulses_wave(1050, 80, 40, n)
    c = boot()
    run_until(c, 1050 + 80 * n + 1000)
    assert len([x for x in uplinks() if x[0] == 0]) >= 10
    assert c.s[2] == n, c.s[2]


def check_safe_mode_missing_config():
    import ml_main
    c = boot()
    assert c.err == 1
    ml_main.safe(c)
    board.rx.append(b'\x03' * 8)  # the old radio break: nothing happens
    f = uplinks(bytes(16))
    assert len(f) == 1 and f[0][0] == 2 and f[0][3][15] == 1 and f[0][3][14] == 2, f
    ml_main.safe(c)
    assert not board.rx


def check_safe_mode_bad_value_keeps_id_and_key():
    config(interval=0)
    import ml_main
    c = boot()
    assert c.err == 3 and c.dev == DEV
    ml_main.safe(c)
    f = uplinks()
    assert f[0][3][15] == 3 and f[0][1] == DEV


def check_unknown_pin_is_safe_mode():
    config(pin_pulse='pin7')
    c = boot()
    assert c.err == 3


def check_alarm_retried_until_acked():
    config(pin_tamper='pin2', interval=600, rx_window_ms=100)
    board.pins['pin0'] = 0
    board.pins['pin2'] = lambda t: 1 if t > 1500 else 0  # tamper loop opens
    sends = []

    def gateway(chunk):
        # the gateway acks the third send of the alarm, inside its window
        for _, p in unslip(chunk):
            if p[0] & 15 == 1:
                sends.append(board.clock[0])
                if len(sends) == 3:
                    board.rx.append(downlink(8, struct.unpack_from('>H', p, 5)[0], b''))
    board.on_write[0] = gateway
    c = boot()
    run_until(c, 1500 + 30000)
    a = [x for x in uplinks() if x[0] == 1]
    assert len(a) == 3 and c.an == 0, a
    assert a[0][3][12] == 8 and a[0][3][8] & 8
    assert a[0][2] == a[1][2] == a[2][2]  # the same frame
    g = [sends[i + 1] - sends[i] for i in range(2)]
    assert 2000 <= g[0] < 2300 and 4000 <= g[1] < 4300, g  # backoff


def check_alarm_gives_up_after_8_sends():
    config(pin_tamper='pin2', interval=600, rx_window_ms=100)
    board.pins['pin0'] = 0
    board.pins['pin2'] = 1
    c = boot()
    run_until(c, 1000 + 300000)
    a = [x for x in uplinks() if x[0] == 1]
    assert len(a) == 8 and c.an == 0, len(a)


def check_alarm_not_resent_below_the_window():
    # once 64 later counters are used, a gateway would take the alarm for a replay
    # (protocol 3.5), so the module gives up instead of resending it
    config(pin_tamper='pin2', interval=600, rx_window_ms=10)
    board.pins['pin0'] = 0
    board.pins['pin2'] = lambda t: 1 if t > 1500 else 0
    c = boot()
    run_until(c, 1800)
    assert c.an, 'the alarm was sent'
    c.fc = c.afc + 64  # 63 later frames were sent (or skipped at resets)
    run_until(c, 12000)  # resends would be due at +2 and +6 s
    a = [x for x in uplinks() if x[0] == 1]
    assert len(a) == 1 and c.an == 0, len(a)


def check_reset_alarm_after_unclean_restart():
    config()
    board.pins['pin0'] = 0
    c = boot()
    c.commit()  # running state (flags 0)
    c = boot()  # a power cut, then boot
    assert c.act & 32 and c.pend & 32 and c.s[8] == 1


def check_counters_never_repeat_across_cuts():
    config(interval=1, rx_window_ms=10)
    board.pins['pin0'] = 0
    seen = []
    bodies = {}
    for k in range(4):
        del board.tx[:]
        c = boot()
        run_until(c, board.clock[0] + 1000 * (k + 2) + 100)
        for x in uplinks():
            # a counter seen again must be an alarm resend: the same frame
            assert bodies.setdefault(x[2], x[3]) == x[3], x
            if x[2] not in seen:
                seen.append(x[2])
    assert seen == sorted(seen) and len(seen) > 10, seen


def check_gen_change_restarts_register_keeps_counters():
    config(register=5)
    board.pins['pin0'] = 0
    c = boot()
    c.s[2] = 77
    c.s[7] = 41  # a downlink counter accepted
    c.commit()
    rsv = c.s[6]
    config(register=500, gen=2)
    c = boot()
    assert c.s[2] == 500 and c.fc == rsv and not c.act & 32
    assert c.s[7] == 41  # old config downlinks stay stale


def check_config_downlink_applied_once():
    config(interval=600, rx_window_ms=300)
    board.pins['pin0'] = 0
    c = boot()
    import ml_dl
    import ml_sec
    sec = ml_sec.Sec(DEV, KEY)
    # {4: 60, 20: 10}
    for raw in (downlink(9, 5, b'\xa2\x04\x18\x3c\x14\x0a'),):
        f = unslip(raw)[0][1]
        r = bytearray(b'\x01' + f + b'\x00\x00')
        ml_dl.got(c, sec, r, len(f))
    assert c.th(0) == 60 and c.th(1) == 10 and c.s[7] == 5 and c.want == 1
    f = unslip(downlink(9, 5, b'\xa1\x04\x18\x1e'))[0][1]
    ml_dl.got(c, sec, bytearray(b'\x01' + f + b'\x00\x00'), len(f))
    assert c.th(0) == 60  # a replayed counter is ignored
    f = unslip(downlink(9, 6, b'\xa1\x04\x00'))[0][1]
    ml_dl.got(c, sec, bytearray(b'\x01' + f + b'\x00\x00'), len(f))
    assert c.th(0) == 60 and c.s[7] == 5  # an invalid value: nothing applied
    f = unslip(downlink(9, 7, b'\xa1\x04\x18\x3c', key=bytes(16)))[0][1]
    ml_dl.got(c, sec, bytearray(b'\x01' + f + b'\x00\x00'), len(f))
    assert c.s[7] == 5  # wrong key: bad MIC, ignored


def check_radio_bytes_never_stop_the_main_loop():
    # the old break (8 x 0x03) and other control bytes from the radio modem
    # are dropped or framed; the loop keeps counting and sending
    config(interval=1, rx_window_ms=50)
    board.pins['pin0'] = pulses_wave(1010, 80, 40, 20)
    c = boot()
    for _ in range(40):
        board.rx.append(b'\x03' * 8)
        board.rx.append(b'\xc0' + b'\x03' * 12 + b'\x04\x01\xc0')
    run_until(c, 1010 + 80 * 20 + 2500)
    assert c.s[2] == 20, c.s[2]
    assert len([x for x in uplinks() if x[0] == 0]) >= 3


def check_maintenance_ctrl_c_commits_clean():
    # maintenance on rp2 is Ctrl-C on the USB console: a KeyboardInterrupt
    # in the main loop (here raised as the first frame is written)
    import ml_main
    config()
    board.pins['pin0'] = pulses_wave(1010, 80, 40, 3)
    seen = []

    def feed(b):
        seen.append(b)
        if len(seen) == 2:
            raise KeyboardInterrupt()
    board.on_write[0] = feed
    ml_main.main()  # returns on Ctrl-C
    assert board.kbd[0] == 3
    import ml_core
    s = ml_core.Core().s
    ml_core.load(s)
    assert s[9] & 1  # clean
    c = boot()
    assert not c.act & 32


def check_reading_frame_fits_with_huge_values():
    config(register=4000000000, weight=65535, interval=65535, history=23)
    board.pins['pin0'] = 0
    c = boot()
    import ml_body
    c.s[5] = 0xFFFFFFFF
    c.act = 255
    for i in range(23):
        c.h[i] = 0xFFFFFFFF if i % 2 else 100
    c.hn = 23
    c.t0 -= 70000000  # an age above 65535 s is sent as 65535
    n = ml_body.build(c, 0)
    assert 11 + n <= 51, n
    d = cbor(c.f[9:9 + n])
    assert len(d[5]) >= 1 and d[1] == 4000000000 and d[6] == 65535


def check_reading_after_15_years_carries_12_deltas():
    config(register=123456, history=12)
    board.pins['pin0'] = 0
    c = boot()
    import ml_body
    c.s[5] = 525601  # the newest interval is 525,600
    for i in range(12):
        c.h[i] = 100
    c.hn = 12
    n = ml_body.build(c, 0)
    d = cbor(c.f[9:9 + n])
    assert len(d[5]) == 12 and 11 + n <= 51 and d[7] == 525600, (n, d)


def check_status_frame_keeps_the_priority_order():
    # every optional key large: the status drops from the end of protocol 4.4's list
    config(register=4000000000, weight=65535, interval=65535, leak_intervals=65535,
           burst_pulses=4000000000, burst_intervals=65535, backflow_pulses=4000000000)
    board.pins['pin0'] = 0
    c = boot()
    import ml_body
    c.s[4] = 70000  # reverse pulses
    c.s[8] = 70000  # resets
    c.act = 63
    n = ml_body.build(c, 2)
    assert 11 + n <= 51, n
    d = cbor(c.f[9:9 + n])
    # 23, 1, 13 and 2 (6, 6, 6 and 4 bytes) no longer fit; 3 (2 bytes) still does
    assert sorted(d) == [3, 4, 8, 9, 10, 11, 14, 20, 21, 22], d
    config(register=5)
    c = boot()
    n = ml_body.build(c, 2)
    d = cbor(c.f[9:9 + n])
    assert sorted(d) == [1, 2, 3, 4, 8, 9, 10, 11, 13, 14, 20, 21, 22, 23], d


def check_stale_and_strict_downlinks_are_ignored():
    config(interval=600, rx_window_ms=300)
    board.pins['pin0'] = 0
    c = boot()
    import ml_dl
    import ml_sec
    sec = ml_sec.Sec(DEV, KEY)

    def give(fc, body):
        f = unslip(downlink(9, fc, body))[0][1]
        ml_dl.got(c, sec, bytearray(b'\x01' + f + b'\x00\x00'), len(f))

    c.s[7] = 69990  # the last downlink counter accepted
    give(70000, b'\xa1\x04\x18\x3c')  # counter 70,000: 4,464 on air
    assert c.th(0) == 60 and c.s[7] == 70000
    for body in (b'\xa2\x14\x0a\x04\x18\x1e',  # keys descending
                 b'\xa2\x04\x18\x1e\x04\x18\x1f',  # key 4 twice
                 b'\xa1\x04\x19\x00\x1e',  # 30 not in its shortest form
                 b'\xa1\x04\x18\x1e\x00',  # a byte after the map
                 b'\xa1\x18\x28\x61\x41',  # a text string
                 b'\xa1\x04\xf5'):  # true
        give(70001, body)
        assert c.th(0) == 60 and c.s[7] == 70000, body
    give(70000 - 5, b'\xa1\x04\x18\x1e')  # stale: below the last accepted
    assert c.th(0) == 60 and c.s[7] == 70000


def check_interval_alarms():
    import ml_main
    config(leak_intervals=3, burst_pulses=5, burst_intervals=2, backflow_pulses=2)
    board.pins['pin0'] = 0
    c = boot()
    c.pend = c.act = 0
    ml_main.up = lambda c, k: None  # frames are checked elsewhere
    # backflow counts this interval's reverse pulses and the one's before: an event
    # across an interval end is not split in two
    for d, rev, want in ((1, 0, 0), (1, 0, 0), (1, 0, 1), (6, 0, 1), (6, 0, 3),
                         (0, 2, 4), (0, 0, 4), (0, 0, 0), (0, 1, 0), (0, 1, 4), (0, 0, 0)):
        for _ in range(d):
            c.edge(0)
        for _ in range(rev):
            c.edge(1)
        ml_main.interval(c, board.ticks_ms())
        assert c.act == want, (d, rev, c.act, want)
    del sys.modules['ml_main']


# ---- the AT modem (RAK3172-class, RUI3 in P2P mode) as the firmware sees it

def hexs(b):
    return ''.join([f'{v:02X}' for v in b])


def at_modem(answer=None):
    # a scripted RUI3 modem on the fake UART: OK to commands, TX DONE after
    # PSEND, and for PRECV answer(payload just sent) as an RXP2P event (or a
    # receive timeout). Returns the command lines and the payloads sent.
    lines = []
    sent = []
    buf = [b'']

    def w(chunk):
        buf[0] += bytes(chunk)
        while b'\r\n' in buf[0]:
            i = buf[0].find(b'\r\n')
            ln = buf[0][0:i].decode()
            buf[0] = buf[0][i + 2:]
            lines.append(ln)
            out = ['OK']
            if ln.startswith('AT+PSEND='):
                sent.append(h2b(ln[9:]))
                out.append('+EVT:TXP2P DONE')
            elif ln.startswith('AT+PRECV='):
                d = answer(sent[-1]) if answer and sent else None
                out.append('+EVT:RXP2P:-97:-3:' + hexs(d) if d else
                           '+EVT:RXP2P RECEIVE TIMEOUT')
            board.rx.append(('\r\n'.join(out) + '\r\n').encode())
    board.on_write[0] = w
    return lines, sent


def link_payload(d):
    # the radio payload of one SLIP DATA frame made by downlink()
    return unslip(d)[0][1]


def check_at_modem_set_up_at_boot_and_frames_sent_as_hex():
    config(modem=1, lora_freq=868300000, lora_sf=10, lora_power=14, interval=2,
           rx_window_ms=150)
    board.pins['pin0'] = 0
    lines, sent = at_modem()
    c = boot()
    run_until(c, 1000 + 2 * 2000 + 300)
    assert lines[0:2] == ['AT+NWM=0', 'AT+P2P=868300000:10:125:0:8:14'], lines[0:3]
    assert lines[2].startswith('AT+PSEND=') and lines[3][0:9] == 'AT+PRECV=', lines[2:4]
    assert not board.tx or all([t[0:2] == b'AT' for t in board.tx])  # no SLIP at all
    kinds = [p[0] & 15 for p in sent]
    assert kinds == [2, 0, 0], kinds  # boot status, two readings
    assert all([struct.unpack_from('>I', p, 1)[0] == DEV for p in sent])


def check_at_modem_alarm_acked_by_rxp2p_in_the_window():
    config(modem=1, pin_tamper='pin2', interval=600, rx_window_ms=1000)
    board.pins['pin0'] = 0
    board.pins['pin2'] = lambda t: 1 if t > 1500 else 0

    def gateway(p):
        if p[0] & 15 == 1:  # ack the alarm
            return link_payload(downlink(8, struct.unpack_from('>H', p, 5)[0], b''))
        return None
    lines, sent = at_modem(gateway)
    c = boot()
    run_until(c, 1500 + 10000)
    assert [p[0] & 15 for p in sent] == [2, 1], [p[0] & 15 for p in sent]
    assert c.an == 0  # acked at the first send: no resend
    i = lines.index('AT+PSEND=' + hexs(sent[1]))
    assert lines[i + 1][0:9] == 'AT+PRECV=', lines[i + 1]  # the window opens on TX done
    assert 900 <= int(lines[i + 1][9:]) <= 1000


def check_duty_cycle_budget_delays_an_alarm_and_skips_readings():
    # 1 % sub-band, SF7: a 51-byte frame is charged 102.7 ms of airtime, which
    # the bucket earns back in 10.3 s
    config(pin_tamper='pin2', interval=2, rx_window_ms=50, lora_sf=7,
           lora_freq=868100000)
    board.pins['pin0'] = 0
    board.pins['pin2'] = lambda t: 1 if t > 1500 else 0
    c = boot()
    run_until(c, 1100)
    n0 = len(uplinks())
    c.dcb = 0  # the budget is spent
    t0 = board.clock[0]
    run_until(c, t0 + 9500)
    assert len(uplinks()) == n0  # nothing fits yet: the readings were skipped
    assert c.pend & 8 and not c.an  # the alarm waits
    run_until(c, t0 + 12000)
    f = uplinks()[n0:]
    assert [x[0] for x in f] == [1], [x[0] for x in f]  # the alarm first, not dropped
    assert c.s[5] >= 5  # intervals went on; their deltas ride in later readings


def check_airtime_formula():
    import ml_air
    assert ml_air.air_us(51, 12) == 2465792
    assert ml_air.air_us(13, 7) == 46336
    assert ml_air.air_us(51, 11) == 1314816
    assert ml_air.rate(868100000) == 10 and ml_air.rate(869525000) == 100
    assert ml_air.rate(868800000) == 1


def run_checks(space, prefix, prepare, label):
    # for MicroPython: every check_* of the module namespace `space` in its own
    # directory (prefix + its index, made ready by prepare); True if all pass
    names = sorted([n for n in space if n.startswith('check_')])
    bad = 0
    for i, n in enumerate(names):
        d = prefix + str(i)
        os.mkdir(d)
        prepare(d + '/')
        try:
            space[n]()
            print('PASS', n)
        except Exception as e:
            bad += 1
            print('FAIL', n, repr(e))
            sys.print_exception(e)
    print(label + ':', len(names), 'failed:', bad)
    return not bad


def run_all(fs_root):
    return run_checks(globals(), fs_root + '/c', setup, 'checks')
