# Checks of the nRF51 build's own sources (mp/lean/), in the language subset
# of MicroPython 1.9.2: plain asserts, no pytest. They run under CPython
# (test_lean.py) and under current MicroPython in Node (test_wasm.py), with
# the fake micro:bit, utime and machine of tests/nrf51. Each check gets an
# empty directory as the board's filesystem (setup()); the sources are run as
# the board runs them: phase 1 as a module, phases 2 and 3 in one namespace.
import os

import board  # the full profile's fake board: mp_checks decodes through it
import microbit
import mp_checks
import utime

SRC = ['']  # directory of the lean sources, with a trailing '/'
KEY = mp_checks.KEY
DEV = mp_checks.DEV
BOOT = ('crc', 'aes', 'boot')
RUN = ('state', 'counting', 'loop', 'ack', 'window', 'downlink', 'aes', 'seal', 'uplink', 'run',
       'air', 'at_modem', 'crc')


def setup(fs, src):
    SRC[0] = src
    mp_checks.setup(fs)
    microbit.reset_all()
    os.chdir(fs)


def source(role):
    with open(SRC[0] + role + '.py') as f:
        return f.read()


def load(roles):
    ns = {'__name__': '__main__'}
    for r in roles:
        exec(source(r), ns)
    return ns


def boot():
    ns = {'__name__': 'config'}
    exec(source('config'), ns)
    assert not ns['read']()
    assert not load(BOOT)['boot']()
    return load(RUN)


def config(**kw):
    v = {'id': DEV, 'key': '000102030405060708090a0b0c0d0e0f', 'gen': 1,
         'interval': 2, 'rx_window_ms': 100, 'pin_pulse': 'pin0', 'pin_dir': 'pin1'}
    for k in kw:
        v[k] = kw[k]
    with open('config.txt', 'w') as f:
        f.write(''.join([k + '=' + str(v[k]) + '\n' for k in sorted(v)]))


def uplinks(key=KEY):
    del board.tx[:]
    for b in microbit.tx:
        board.tx.append(b)
    return mp_checks.uplinks(key)


def run_until(ns, t):
    while utime.clock[0] < t:
        ns['step']()
        utime.sleep_ms(1)


def check_lean_boots_counts_and_sends_the_boot_status_first():
    config(register=500)
    ns = boot()
    t0 = utime.clock[0]
    microbit.levels['pin0'] = mp_checks.pulses_wave(t0 + 100, 60, 30, 40)
    rev = (t0 + 100 + 60 * 30, t0 + 100 + 60 * 35)
    microbit.levels['pin1'] = lambda t: 1 if rev[0] <= t < rev[1] else 0
    run_until(ns, t0 + 5 * 2000 + 300)
    f = uplinks()
    assert f[0][0] == 2 and f[0][3][10] == 256, f[0]  # status first, firmware 1.0
    r = [x for x in f if x[0] == 0]
    assert len(r) >= 4, f
    assert r[-1][3][1] == 500 + 35 - 5 == ns['S'][2], r[-1]
    fcs = [x[2] for x in f]
    assert fcs == sorted(fcs) and len(set(fcs)) == len(fcs)


def check_lean_safe_mode_missing_config():
    ns = boot()
    assert ns['V'][23] == 1
    start = utime.clock[0]
    microbit.levels['pin8'] = lambda t: 1 if t > start + 3000 else 0
    ns['run']()
    f = uplinks(bytes(16))
    assert len(f) == 1 and f[0][0] == 2 and f[0][3][15] == 1, f
    assert ns['S'][9] == 1  # the maintenance stop committed a clean record


def check_lean_aes_and_cmac_vectors():
    ns = load(('crc', 'aes', 'boot', 'seal'))
    ns['poll'] = int
    h2b = mp_checks.h2b
    b = bytearray(h2b('00112233445566778899aabbccddeeff'))
    ns['enc'](ns['ks'](h2b('000102030405060708090a0b0c0d0e0f')), b)
    assert b == h2b('69c4e0d86a7b0430d8cdb78070b4c55a'), b  # FIPS-197 C.1
    k = ns['ks'](h2b(mp_checks.RFC4493_KEY))
    e = bytearray(16)
    ns['enc'](k, e)
    k1 = ns['dbl'](e)
    ns['K'] = [None, k, k1, ns['dbl'](k1)]
    m = h2b(mp_checks.RFC4493_MSG)
    for n, t in mp_checks.RFC4493_TAGS:
        assert bytes(ns['cmac'](bytearray(m), n)) == h2b(t), n
    assert ns['crc'](b'123456789', 9) == 0x29B1


def check_lean_config_and_time_downlinks():
    # the sources as written have every feature: a config applied and answered, a
    # stale one dropped, a time kept (downlinks sealed by mp_checks.downlink)
    import fields
    config()
    ns = boot()
    s = ns['S']
    v = ns['V']
    run_until(ns, utime.clock[0] + 300)  # the boot status
    microbit.rx.append(mp_checks.downlink(9, 5, b'\xa2\x04\x05\x17\x04'))
    ns['listen'](30)  # interval 5, backflow_pulses 4
    assert s[fields.S_DLC] == 5 and s[fields.S_OV] == 5 and s[fields.S_OV + 4] == 4
    assert v[fields.V_INTERVAL] == 5 and v[fields.V_BACKFLOW] == 4
    microbit.rx.append(mp_checks.downlink(9, 5, b'\xa1\x04\x06'))  # stale: dropped
    microbit.rx.append(mp_checks.downlink(9, 6, b'\xa1\x04\x06', key=bytes(16)))  # MIC
    ns['listen'](30)
    assert s[fields.S_DLC] == 5 and v[fields.V_INTERVAL] == 5
    microbit.rx.append(mp_checks.downlink(10, 6, b'\xa1\x18\x1e\x1a\x69\x2d\xa8\xc0'))
    ns['listen'](30)
    assert v[fields.V_TIME] == 1764600000 and s[fields.S_DLC] == 6
    run_until(ns, utime.clock[0] + 300)  # the answer to the config
    st = [x[3] for x in uplinks() if x[0] == 2]
    assert len(st) == 2 and st[1][14] == 0 and st[1][4] == 5 and st[1][23] == 4, st


def check_lean_torn_rt_boots_again():
    import machine
    config()
    ns = {'__name__': 'config'}
    exec(source('config'), ns)
    ns['read']()
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


def run_all(fs_root, src):
    # for MicroPython: every check in its own directory; True if all pass
    return mp_checks.run_checks(globals(), fs_root + '/l', lambda d: setup(d, src),
                                'lean checks')
