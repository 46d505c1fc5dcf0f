# Checks of the one on-board source (mp/lean/: the code every board's bundle
# is made from), in the language subset of MicroPython 1.9.2: plain asserts,
# no pytest. They run under CPython (test_lean.py) and under current
# MicroPython in Node (test_wasm.py), with the fake micro:bit, utime and
# machine of tests/nrf51. Each check gets an empty directory as the board's
# filesystem (setup()); the sources are run as the board runs them: phase 1
# as a module, phases 2 and 3 in one namespace, the main loop through run()
# (stopped by the maintenance input, or cut by a pulse input that raises).
# Downlinks are made by the gateway's encoder (meterlink.protocol): the runner
# puts it in DOWN (under MicroPython, a table of DOWNLINKS it made on the
# host); what the firmware sent is read back with the sources' own CRC, AES
# and CMAC (checked against FIPS-197 and RFC 4493 here, and against the
# protocol vectors in lean_vectors.py) and, under CPython, by
# meterlink.protocol's decoder too (SEEN).
import os
import struct

import microbit
import utime
from fields import (
    FW_VERSION,
    S_DEBT,
    S_DLC,
    S_FLAGS,
    S_ISEQ,
    S_OV,
    S_REG,
    S_RESETS,
    S_REV,
    S_RSV,
    V_ACT,
    V_AFC,
    V_ALEN,
    V_DEV,
    V_ERR,
    V_FC,
    V_HLEN,
    V_HPOS,
    V_INTERVAL,
    V_N,
    V_PEND,
    V_T0,
    V_TIME,
)
from lean_vectors import h2b, root

SRC = ['']  # directory of the lean sources, with a trailing '/'
KEY = bytes(range(16))
DEV = 0x12345678
BOOT = ('crc', 'aes', 'boot')
RUN = ('state', 'counting', 'loop', 'ack', 'window', 'downlink', 'aes', 'seal', 'uplink', 'run',
       'air', 'at_modem', 'crc')
DOWN = [None]  # (type, counter, body, key) -> the SLIP link frame (meterlink.protocol)
SEEN = [None]  # CPython: (UART bytes, key, what uplinks() read) checked by the codec
# every downlink the checks send (DOWN refuses others): acks of the first counters,
# configs, a time
DOWNLINKS = tuple([(8, c, b'', KEY) for c in range(8)]) + (  # noqa: RUF005 (1.9.2)
    (9, 5, b'\xa2\x04\x05\x17\x04', KEY),  # interval 5, backflow_pulses 4
    (9, 5, b'\xa1\x04\x06', KEY),
    (9, 6, b'\xa1\x04\x06', bytes(16)),  # another key: a bad MIC
    (10, 6, b'\xa1\x18\x1e\x1a\x69\x2d\xa8\xc0', KEY),  # unix_time 1764600000
)
_CODEC = {}  # key -> a namespace of the sources' crypto with its working keys


def setup(fs, src):
    SRC[0] = src
    microbit.reset_all()
    os.chdir(fs)


def source(role):
    with open(SRC[0] + role + '.py') as f:
        return f.read()


def load(roles):
    ns = {'__name__': '__main__'}
    for r in roles:
        try:  # noqa: SIM105 (no contextlib on 1.9.2)
            exec(source(r), ns)
        except OSError:
            pass  # a file these sources do not have (a feature file)
    return ns


def phase1():
    ns = {'__name__': 'config'}
    exec(source('config'), ns)
    return ns['read']()


def boot():
    # the three boot phases (main.py runs them after resets): the run phase's namespace
    assert not phase1()
    assert not load(BOOT)['boot']()
    return load(RUN)


def config(**kw):
    v = {'id': DEV, 'key': '000102030405060708090a0b0c0d0e0f', 'gen': 1,
         'interval': 2, 'rx_window_ms': 100, 'pin_pulse': 'pin0', 'pin_dir': 'pin1'}
    for k in kw:
        v[k] = kw[k]
    with open('config.txt', 'w') as f:
        f.write(''.join([k + '=' + str(v[k]) + '\n' for k in sorted(v)]))


def pulses_wave(start, period, high, count):
    # level function: count pulses from start, high for `high` ms of each period
    def w(t):
        k = (t - start) // period
        return 1 if 0 <= k < count and (t - start) % period < high else 0
    return w


def run_until(ns, t):
    # the main loop (run()) until the fake clock reaches t: then the
    # maintenance input is seen at the next 100 ms check and run() returns
    # after its clean commit
    microbit.levels['pin8'] = lambda now: 1 if now >= t else 0
    ns['run']()
    microbit.levels['pin8'] = 0
    assert utime.clock[0] >= t, 'run() returned early'


class Cut(Exception):
    pass


def cut_at(ns, t):
    # the main loop until a power cut at t: the pulse input raises at its next
    # read, nothing is committed on the way (the files stay as they were)
    w = microbit.levels.get('pin0', 0)

    def level(now):
        if now >= t:
            raise Cut()
        return w(now) if callable(w) else w
    microbit.levels['pin0'] = level
    try:
        ns['run']()
        raise AssertionError('run() returned')
    except Cut:
        pass
    microbit.levels['pin0'] = w


# ---- what the firmware sent, and the downlinks it hears

def codec(key):
    # the sources' own CRC, AES, CMAC and sealing in a namespace of their own,
    # with the working keys of root key `key`
    if key not in _CODEC:
        ns = load(('crc', 'aes', 'boot', 'seal'))
        ns['poll'] = int
        ns['F'] = bytearray(80)
        ns['V'] = [0] * V_N
        root(ns, key, 0)
        _CODEC[key] = ns
    return _CODEC[key]


def unslip(data):
    # SLIP frames in data -> list of (link type, payload), CRC checked
    crc = codec(KEY)['crc']
    out = []
    cur = bytearray()
    esc = 0
    for v in data:
        if v == 0xC0:
            if len(cur) >= 3:
                assert crc(cur, len(cur) - 2) == cur[-2] << 8 | cur[-1], 'link CRC'
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


def uplinks(key=KEY, data=None):
    # every frame the firmware sent (the UART, or data): (type, device, counter,
    # body dict, size); the 16-bit counter on air is extended as a gateway does
    # (protocol 3.4); the MIC checked, the body decrypted
    ns = codec(key)
    f = ns['F']
    data = b''.join(microbit.tx) if data is None else data
    out = []
    hi = -1
    for lt, p in unslip(data):
        assert lt == 1
        n = len(p)
        assert 11 <= n <= 51, n
        vt, dev, lo = struct.unpack_from('>BIH', p, 0)
        assert vt >> 4 == 2 and not vt & 8
        b = max(0, hi - 63)
        fc = lo if hi < 0 else b + ((lo - b) & 0xFFFF)
        hi = max(hi, fc)
        for i in range(80):
            f[i] = p[i] if i < 5 else p[i - 2] if 9 <= i < n - 2 else 0
        struct.pack_into('>I', f, 5, fc)
        assert bytes(ns['cmac'](f, n - 2)[0:4]) == p[n - 4:], 'MIC'
        ns['V'][V_DEV] = dev
        ns['seal'](vt, fc, n - 11)  # the CTR again: the body, found at F[7:]
        out.append((vt & 15, dev, fc, cbor(bytes(f[7:n - 4])), n))
    if SEEN[0] is not None:
        SEEN[0](data, key, out)
    return out


def downlink(typ, fc, body, key=KEY):
    # a sealed downlink as a SLIP link frame, made by the gateway's encoder
    return DOWN[0](typ, fc, body, key)


def alarms_acked_at(sends, n):
    # a gateway on the UART: records the clock at each alarm frame sent and acks
    # the n-th send in its receive window
    def gateway(chunk):
        for _, p in unslip(chunk):
            if p[0] & 15 == 1:
                sends.append(utime.clock[0])
                if len(sends) == n:
                    microbit.rx.append(downlink(8, p[5] << 8 | p[6], b''))
    microbit.on_write[0] = gateway


def backflow(start, n):
    # n reverse pulses from start: a backflow alarm with backflow_pulses <= n
    microbit.levels['pin1'] = 1
    microbit.levels['pin0'] = pulses_wave(start, 60, 30, n)


# ---- the checks

def check_crc_aes_cmac_vectors():
    ns = load(('crc', 'aes', 'boot', 'seal'))
    ns['poll'] = int
    b = bytearray(h2b('00112233445566778899aabbccddeeff'))
    ns['enc'](ns['ks'](h2b('000102030405060708090a0b0c0d0e0f')), b)
    assert b == h2b('69c4e0d86a7b0430d8cdb78070b4c55a'), b  # FIPS-197 C.1
    k = ns['ks'](h2b(RFC4493_KEY))
    e = bytearray(16)
    ns['enc'](k, e)
    k1 = ns['dbl'](e)
    ns['K'] = [None, k, k1, ns['dbl'](k1)]
    m = h2b(RFC4493_MSG)
    for n, t in RFC4493_TAGS:
        assert bytes(ns['cmac'](bytearray(m), n)) == h2b(t), n
    assert ns['crc'](b'123456789', 9) == 0x29B1


# RFC 4493's AES-CMAC examples: key, message, (length, tag) per example
RFC4493_KEY = '2b7e151628aed2a6abf7158809cf4f3c'
RFC4493_MSG = ('6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51'
               '30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710')
RFC4493_TAGS = ((0, 'bb1d6929e95937287fa37d129b756746'),
                (16, '070a16b46b4d4144f79bdd9dd04a287c'),
                (40, 'dfa66747de9ae63030ca32611497c827'),
                (64, '51f0bebf7e3b9d92fc49741779363cfe'))


def check_boots_counts_and_sends_the_boot_status_first():
    config(register=500)
    ns = boot()
    t0 = utime.clock[0]
    microbit.levels['pin0'] = pulses_wave(t0 + 100, 60, 30, 40)
    rev = (t0 + 100 + 60 * 30, t0 + 100 + 60 * 35)
    microbit.levels['pin1'] = lambda t: 1 if rev[0] <= t < rev[1] else 0
    run_until(ns, t0 + 5 * 2000 + 300)
    f = uplinks()
    assert f[0][0] == 2 and f[0][3][10] == FW_VERSION and f[0][3][14] == 1, f[0]  # boot status
    r = [x for x in f if x[0] == 0]
    assert len(r) == 5, f
    assert [x[3][7] for x in r] == [0, 1, 2, 3, 4]  # interval sequence numbers
    # 30 forward pulses, 5 reverse (a debt), 5 forward paying it back
    s = ns['S']
    assert r[-1][3][1] == 500 + 30 == s[S_REG], r[-1]
    assert (s[S_REV], s[S_DEBT]) == (5, 0)
    d = r[-1][3][5]
    assert sum(bytearray(d)) == 30 and len(d) == 5  # deltas, newest first
    assert [x[2] for x in f] == list(range(len(f)))  # counters 0, 1, 2, ...
    assert all([x[1] == DEV for x in f])


def check_pulses_during_frames_are_counted():
    # 40 ms pulses all the time, intervals of 1 s: many frames are built and
    # sealed while pulses arrive; the AES polls between rounds
    config(interval=1, rx_window_ms=50)
    n = 200
    ns = boot()
    t0 = utime.clock[0] + 50
    microbit.levels['pin0'] = pulses_wave(t0, 80, 40, n)
    run_until(ns, t0 + 80 * n + 1000)
    assert len([x for x in uplinks() if x[0] == 0]) >= 10
    assert ns['S'][S_REG] == n, ns['S'][S_REG]


def check_debounce_ignores_glitches():
    # 3 pulses of 40 ms, then glitches of 1 ms every 20 ms
    config()
    ns = boot()
    t0 = utime.clock[0] + 100
    microbit.levels['pin0'] = lambda t: 1 if (t0 <= t < t0 + 240 and (t - t0) % 80 < 40) or (
        t >= t0 + 300 and t % 20 == 0) else 0
    run_until(ns, t0 + 1500)
    assert ns['S'][S_REG] == 3, ns['S'][S_REG]


def check_safe_mode_missing_config():
    ns = boot()
    assert ns['V'][V_ERR] == 1
    start = utime.clock[0]
    microbit.levels['pin8'] = lambda t: 1 if t > start + 3000 else 0
    microbit.rx.append(b'\x03' * 8)  # the old radio break: nothing happens
    ns['run']()
    assert utime.clock[0] > start + 3000  # only the maintenance input ends it
    f = uplinks(bytes(16))  # no key was read: sealed with zeros (protocol 4.7)
    assert len(f) == 1 and f[0][0] == 2 and f[0][3][15] == 1 and f[0][3][14] == 2, f
    assert ns['S'][S_FLAGS] == 1  # the maintenance stop committed a clean record


def check_safe_mode_bad_value_keeps_id_and_key():
    config(interval=0)
    ns = boot()
    assert ns['V'][V_ERR] == 3 and ns['V'][V_DEV] == DEV
    start = utime.clock[0]
    microbit.levels['pin8'] = lambda t: 1 if t > start + 500 else 0
    ns['run']()
    f = uplinks()  # sealed with the module's key
    assert len(f) == 1 and f[0][3][15] == 3 and f[0][1] == DEV, f


def check_a_pin_the_board_lacks_is_safe_mode():
    for kw in ({'pin_pulse': 'pin25'}, {'pin_pulse': 'pin17'}, {'pin_dir': 'pin8'},
               {'pin_pulse': 'p0'}):
        for n in os.listdir():
            os.remove(n)
        config(**kw)
        ns = boot()
        assert ns['V'][V_ERR] == 3, kw


def check_alarm_resent_with_backoff_until_acked():
    config(backflow_pulses=3, interval=600, rx_window_ms=100)
    ns = boot()
    backflow(utime.clock[0] + 100, 4)
    sends = []
    alarms_acked_at(sends, 3)  # the third send is acked in its window
    run_until(ns, utime.clock[0] + 30000)
    a = [x for x in uplinks() if x[0] == 1]
    assert len(a) == 3 and ns['V'][V_ALEN] == 0, a
    assert a[0][3][12] & 4 and a[0][3][8] & 4  # backflow raised, active
    assert a[0][2] == a[1][2] == a[2][2] and a[0][3] == a[2][3]  # the same frame
    g = [sends[i + 1] - sends[i] for i in range(2)]
    assert 2000 <= g[0] < 2300 and 4000 <= g[1] < 4300, g  # backoff


def check_alarm_gives_up_after_8_sends():
    config(backflow_pulses=3, interval=600, rx_window_ms=100)
    ns = boot()
    backflow(utime.clock[0] + 100, 4)
    run_until(ns, utime.clock[0] + 300000)
    a = [x for x in uplinks() if x[0] == 1]
    assert len(a) == 8 and ns['V'][V_ALEN] == 0, len(a)
    assert len(set([x[2] for x in a])) == 1


def check_alarm_not_resent_below_the_window():
    # once 64 later counters are used, a gateway would take the alarm for a replay
    # (protocol 3.5), so the module gives up instead of resending it
    config(backflow_pulses=3, interval=600, rx_window_ms=10)
    ns = boot()
    backflow(utime.clock[0] + 100, 4)
    run_until(ns, utime.clock[0] + 800)
    v = ns['V']
    assert v[V_ALEN], 'the alarm was sent'
    v[V_FC] = v[V_AFC] + 64  # 63 later frames were sent (or skipped at resets)
    run_until(ns, utime.clock[0] + 10000)  # resends would be due at +2 and +6 s
    a = [x for x in uplinks() if x[0] == 1]
    assert len(a) == 1 and v[V_ALEN] == 0, len(a)


def check_reset_alarm_after_unclean_restart():
    config()
    ns = boot()
    cut_at(ns, utime.clock[0] + 500)  # a power cut while running
    ns = boot()
    assert ns['V'][V_ACT] & 32 and ns['V'][V_PEND] & 32 and ns['S'][S_RESETS] == 1
    del microbit.tx[:]
    run_until(ns, utime.clock[0] + 1000)
    a = [x for x in uplinks() if x[0] == 1]
    assert a and a[0][3][12] & 32, a  # the unexpected-reset alarm is sent


def check_maintenance_stop_and_ctrl_c_commit_clean():
    # the maintenance input (nRF51) and Ctrl-C on USB (rp2: a KeyboardInterrupt
    # in the main loop, here as a frame is written): a clean stop, no
    # unexpected-reset alarm at the next boot
    config()
    ns = boot()
    run_until(ns, utime.clock[0] + 2500)
    assert ns['S'][S_FLAGS] == 1
    ns = boot()
    assert not ns['V'][V_ACT] & 32 and ns['S'][S_RESETS] == 1

    def ctrl_c(b):
        raise KeyboardInterrupt()
    microbit.on_write[0] = ctrl_c
    ns['run']()  # returns at the first frame written
    microbit.on_write[0] = None
    assert ns['S'][S_FLAGS] == 1
    ns = boot()
    assert not ns['V'][V_ACT] & 32 and ns['S'][S_RESETS] == 2


def check_counters_never_repeat_across_cuts():
    config(interval=1, rx_window_ms=10)
    seen = []
    bodies = {}
    for k in range(4):
        del microbit.tx[:]
        ns = boot()
        cut_at(ns, utime.clock[0] + 1000 * (k + 2) + 100)
        for x in uplinks():
            # a counter seen again must be an alarm resend: the same frame
            assert bodies.setdefault(x[2], x[3]) == x[3], x
            if x[2] not in seen:
                seen.append(x[2])
    assert seen == sorted(seen) and len(seen) > 10, seen


def check_gen_change_restarts_register_keeps_counters():
    config(register=5)
    ns = boot()
    s = ns['S']
    s[S_REG] = 77
    s[S_DLC] = 41  # a downlink counter accepted
    ns['commit']()
    rsv = s[S_RSV]
    config(register=500, gen=2)
    ns = boot()
    s = ns['S']
    assert s[S_REG] == 500 and ns['V'][V_FC] == rsv and not ns['V'][V_ACT] & 32
    assert s[S_DLC] == 41  # old config downlinks stay stale
    assert s[S_RESETS] == 0


def check_store_survives_a_cut_mid_write():
    config(register=7)
    ns = boot()
    s = ns['S']
    for r in range(1, 6):
        s[S_REG] = r * 10
        ns['commit']()
    with open('st' + str(s[0] & 1), 'wb') as f:
        f.write(b'')  # the newest copy cut to nothing
    ns = boot()
    assert ns['S'][S_REG] == 40 and ns['V'][V_ERR] == 0  # the previous commit
    for i in (0, 1):
        with open('st' + str(i), 'rb') as f:
            d = f.read()
        with open('st' + str(i), 'wb') as f:
            f.write(d[:30])  # both torn
    del microbit.tx[:]
    ns = boot()
    assert ns['V'][V_ERR] == 4 and ns['S'][S_REG] == 7  # corrupt: config.txt's register
    t0 = utime.clock[0]
    microbit.levels['pin0'] = pulses_wave(t0 + 100, 60, 30, 3)
    run_until(ns, t0 + 2500)  # still counting, and saying so
    f = uplinks()
    assert f[0][0] == 2 and f[0][3][15] == 4, f[0]
    assert ns['S'][S_REG] == 10


def check_radio_bytes_never_stop_the_main_loop():
    # the old break (8 x 0x03) and other control bytes from the radio modem
    # are dropped or framed; the loop keeps counting and sending
    config(interval=1, rx_window_ms=50)
    ns = boot()
    t0 = utime.clock[0] + 10
    microbit.levels['pin0'] = pulses_wave(t0, 80, 40, 20)
    for _ in range(40):
        microbit.rx.append(b'\x03' * 8)
        microbit.rx.append(b'\xc0' + b'\x03' * 12 + b'\x04\x01\xc0')
    run_until(ns, t0 + 80 * 20 + 2500)
    assert ns['S'][S_REG] == 20, ns['S'][S_REG]
    assert len([x for x in uplinks() if x[0] == 0]) >= 3


def reading(ns):
    # the reading body the firmware builds now (after a commit, as at an interval's
    # end), decoded; its frame's size
    ns['commit']()
    n = ns['body'](0)
    return cbor(bytes(ns['F'][9:9 + n])), 11 + n


def check_reading_frame_fits_with_huge_values():
    config(register=4000000000, weight=65535, interval=65535, history=23)
    ns = boot()
    s = ns['S']
    v = ns['V']
    h = ns['Q'][2]
    s[S_ISEQ] = 0xFFFFFFFF
    v[V_ACT] = 255
    for i in range(23):
        h[i] = 0xFFFFFFFF if i % 2 else 100
    v[V_HLEN] = 23
    v[V_HPOS] = 0
    v[V_T0] = utime.ticks_ms()
    utime.clock[0] += 70000000  # an age above 65535 s is sent as 65535
    d, n = reading(ns)
    assert n <= 51, n
    assert len(d[5]) >= 1 and d[1] == 4000000000 and d[6] == 65535 and d[2] == 65535, d


def check_reading_after_15_years_carries_12_deltas():
    config(register=123456, history=12)
    ns = boot()
    ns['S'][S_ISEQ] = 525601  # the newest interval is 525,600
    for i in range(12):
        ns['Q'][2][i] = 100
    ns['V'][V_HLEN] = 12
    ns['V'][V_T0] = utime.ticks_ms()
    d, n = reading(ns)
    assert len(d[5]) == 12 and n <= 51 and d[7] == 525600, (n, d)


def check_status_frame_keeps_the_priority_order():
    # every value large: the status keeps its required keys and the optional
    # ones of protocol 4.4's list (15, 8, 4, 20, 21, 22, 23, 1, 13, 2, 3) that
    # fit, in its order (the sources as written have the burst alarm and
    # status_detail): 15 + 1 bytes of required keys and map head leave 24; 8
    # (2), 4 (4), 20 (4), 21 (3), 22 (2), 23 (6) leave 3; the register (6) does
    # not fit, the reverse count after it (2) does; weight and unit (2 each) not
    config(interval=65535, leak_intervals=65535, backflow_pulses=4000000000,
           register=4000000000)
    ns = boot()
    ns['S'][S_RESETS] = 70000
    run_until(ns, utime.clock[0] + 300)
    f = uplinks()
    assert f[0][0] == 2 and f[0][4] <= 51, f[0]
    keys = sorted(f[0][3])
    assert [k for k in (9, 10, 11, 14) if k in keys] == [9, 10, 11, 14], keys
    order = [15, 8, 4, 20, 21, 22, 23, 1, 13, 2, 3]
    kept = [k for k in order if k in keys]
    assert kept == [8, 4, 20, 21, 22, 23, 13] and keys == sorted(keys), keys
    assert f[0][3][13] == 0 and f[0][4] == 50, f[0]


def check_interval_alarms():
    # leak: flow in leak_intervals intervals in a row; backflow: the reverse
    # pulses of this interval and the one before (an event across an interval
    # end is not split in two), as each reading's active alarms show
    config(interval=1, rx_window_ms=10, leak_intervals=3, backflow_pulses=2)
    plan = ((1, 0, 0), (1, 0, 0), (1, 0, 1), (6, 0, 1), (6, 0, 1), (0, 2, 4), (0, 0, 4),
            (0, 0, 0), (0, 1, 0), (0, 1, 4), (0, 0, 0))
    ns = boot()
    t0 = utime.clock[0] + 1  # run()'s interval grid starts here
    up = []
    rev = []
    for k in range(len(plan)):
        fwd, r = plan[k][0], plan[k][1]
        for j in range(fwd + r):
            up.append(t0 + 1000 * k + 100 + 60 * j)
            rev.append(j >= fwd)

    def level(pin):
        def w(t):
            for i in range(len(up)):
                if up[i] <= t < up[i] + 30:
                    return 1 if pin == 0 else int(rev[i])
                if pin == 1 and up[i] - 30 <= t < up[i] + 30:
                    return int(rev[i])  # the direction input leads the pulse
            return 0
        return w
    microbit.levels['pin0'] = level(0)
    microbit.levels['pin1'] = level(1)
    utime.clock[0] = t0 - 1
    run_until(ns, t0 + 1000 * len(plan) + 50)
    got = [x[3][8] for x in uplinks() if x[0] == 0]
    assert got == [p[2] for p in plan], got


def check_airtime_and_the_sub_band_budget():
    ns = {'RADIO': (0, 868100000, 9, 14)}
    exec(source('air'), ns)
    assert ns['air_us'](51, 12) == 2465792
    assert ns['air_us'](13, 7) == 46336
    assert ns['air_us'](51, 11) == 1314816
    r = ns['band_rate']
    assert r(868100000) == 10 and r(869525000) == 100 and r(868800000) == 1


def check_config_and_time_downlinks():
    # the sources as written have every feature: a config applied and answered, a
    # stale one dropped, a time kept
    config()
    ns = boot()
    s = ns['S']
    v = ns['V']
    run_until(ns, utime.clock[0] + 300)  # the boot status
    microbit.rx.append(downlink(9, 5, b'\xa2\x04\x05\x17\x04'))
    ns['listen'](30)  # interval 5, backflow_pulses 4
    assert s[S_DLC] == 5 and s[S_OV] == 5 and s[S_OV + 4] == 4
    assert v[V_INTERVAL] == 5
    microbit.rx.append(downlink(9, 5, b'\xa1\x04\x06'))  # stale: dropped
    microbit.rx.append(downlink(9, 6, b'\xa1\x04\x06', key=bytes(16)))  # MIC
    ns['listen'](30)
    assert s[S_DLC] == 5 and v[V_INTERVAL] == 5
    microbit.rx.append(downlink(10, 6, b'\xa1\x18\x1e\x1a\x69\x2d\xa8\xc0'))
    ns['listen'](30)
    assert v[V_TIME] == 1764600000 and s[S_DLC] == 6
    run_until(ns, utime.clock[0] + 300)  # the answer to the config
    st = [x[3] for x in uplinks() if x[0] == 2]
    assert len(st) == 2 and st[1][14] == 0 and st[1][4] == 5 and st[1][23] == 4, st


def check_torn_rt_boots_again():
    import machine
    config()
    assert not phase1()
    load(BOOT)['boot']()
    with open('rt', 'rb') as f:
        d = f.read()
    with open('rt', 'wb') as f:
        f.write(d[:122])  # a cut while boot.py wrote it
    try:
        load(RUN)
        raise AssertionError('no reset')
    except machine.Reset:
        pass
    assert 'rt' not in os.listdir()


def run_checks(space, prefix, prepare, label):
    # for MicroPython: every check_* of the module namespace `space` in its own
    # directory (prefix + its index, made ready by prepare); True if all pass
    import sys
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


def run_all(fs_root, src):
    # for MicroPython: every check in its own directory; True if all pass
    return run_checks(globals(), fs_root + '/l', lambda d: setup(d, src), 'lean checks')
