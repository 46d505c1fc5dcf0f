# Boot phase 2 (main.py): the state records and the config
# values config.py wrote to 'cf' (a new gen, resets, the unexpected reset); the
# counter reservation committed. The state, the volatile values (fields.py),
# the root key and the pins go to the file 'rt' for the run phase, which
# starts after a reset on an empty heap (state.py reads 'rt'). Loaded by
# main.py with crc.py (crc) and aes.py (enc, SB) into one namespace.
import os
import struct
from glue import held
from array import array
from fields import *  # the state indexes (inlined by the bundler)


poll = int  # enc's pulse poll: nothing to count in this phase


def rec(i):
    # (record or None, file present)
    try:
        f = open('st' + str(i), 'rb')
    except OSError:
        return None, 0
    d = f.read(63)
    f.close()
    if len(d) != 62 or crc(d, 60) != struct.unpack_from('<H', d, 60)[0]:
        return None, 1
    return struct.unpack_from('<15I', d, 0), 1


def dbl(b):
    # CMAC subkey doubling in GF(2^128)
    r = bytearray(16)
    c = 0
    for i in range(15, -1, -1):
        r[i] = (b[i] << 1 | c) & 255
        c = b[i] >> 7
    if c:
        r[15] ^= 0x87
    return r


def ks(k):
    # the key schedule of a 16-byte key
    w = bytearray(176)
    for i in range(16):  # no slice assignment on 1.9.2
        w[i] = k[i]
    c = 1
    for i in range(16, 176, 4):
        a, b, d, e = w[i - 4], w[i - 3], w[i - 2], w[i - 1]
        if not i & 15:
            a, b, d, e = SB[b] ^ c, SB[d], SB[e], SB[a]
            c = (c << 1) ^ (0x11b if c & 128 else 0)
        w[i] = w[i - 16] ^ a
        w[i + 1] = w[i - 15] ^ b
        w[i + 2] = w[i - 14] ^ d
        w[i + 3] = w[i - 13] ^ e
    return w


if HAS_DUTY_CYCLE_BUDGET:
    def radio(c):
        # 'cf' without the radio fields config.py wrote last (kept in RADIO for
        # 'rt'), or b'' if they are not whole (a cut: read config.txt again)
        global RADIO
        RADIO = c[71:]
        return c[:71] if len(RADIO) == 16 else b''


def newest():
    # the state from the newer whole record, and the store's code: 0 read,
    # 1 no record, 4 a record file there but spoilt
    S = array('L', [0] * S_N)
    a, ea = rec(0)
    b, eb = rec(1)
    if b and (not a or b[0] > a[0]):
        a = b
    if a:
        for i in range(S_N):
            S[i] = a[i]
    return S, 0 if a else 4 if ea or eb else 1


def boot():
    # 1 if the maintenance input is held: 'cf' is removed (the next boot
    # reads config.txt again) and main.py stops at the REPL
    if held():
        os.remove('cf')
        return 1
    f = open('cf', 'rb')
    c = f.read()
    f.close()
    if HAS_DUTY_CYCLE_BUDGET:
        c = radio(c)
    if len(c) != 71:
        os.remove('cf')  # not whole (a cut): read config.txt again
        return
    g = struct.unpack_from('<11I', c, 0)  # error, id, gen, register, weight,
    # unit, interval, leak_intervals, rx_window_ms, backflow_pulses, history;
    # then the key (44), the pins (60) and the burst thresholds (63)
    S, e = newest()
    V = array('L', [0] * V_N)
    V[V_ERR] = g[0]
    V[V_DEV] = g[1]
    if not V[V_ERR]:
        if e or S[S_GEN] != g[2]:
            # first boot of this provisioning: keep only the record sequence,
            # the counter reservation and the last downlink counter (an old
            # config downlink must stay stale: protocol 3.4)
            for i in range(S_GEN, S_N):
                if i != S_RSV and i != S_DLC:
                    S[i] = 0
            S[S_GEN] = g[2]
            S[S_REG] = g[3]
        else:
            S[S_RESETS] += 1
            if not S[S_FLAGS] & 1:
                V[V_ACT] = V[V_PEND] = 32  # unexpected reset
        V[V_ERR] = e & 4
        for i in range(6):
            V[V_WEIGHT + i] = g[4 + i]
        V[V_BURST], V[V_BURSTN] = struct.unpack_from('<2I', c, 63)
    V[V_WANT] = 1  # the boot status frame
    S[S_FLAGS] = 0
    V[V_FC] = S[S_RSV]
    S[S_RSV] += 32  # reserve frame counters before using any (protocol 3.4)
    # commit, as counting.py's commit()
    S[S_SEQ] += 1
    b = bytearray(struct.pack('<15I', *S) + b'..')
    struct.pack_into('<H', b, 60, crc(b, 60))
    f = open('st' + str(S[S_SEQ] & 1), 'wb')
    f.write(b)
    f.close()
    f = open('rt', 'wb')
    f.write(struct.pack('<15I', *S))
    f.write(struct.pack('<%dI' % V_N, *V))
    S = V = None
    keys(f, c[44:60])
    if HAS_DUTY_CYCLE_BUDGET:
        f.write(RADIO)
    f.write(c[60:62])  # the pulse and direction pins
    f.write(bytes((g[10], c[62])))  # the history length, the tamper pin
    f.close()
    os.remove('cf')


def keys(f, r):
    # K_enc, K_mic (protocol 3.1) from the root key r and the CMAC subkeys to
    # f (their key schedules, so that the run phase needs no key expansion)
    k = ks(r)
    e = bytearray(16)
    e[0] = 1
    enc(k, e)
    m = bytearray(16)
    m[0] = 2
    enc(k, m)
    f.write(ks(e))
    m = ks(m)
    f.write(m)
    e = bytearray(16)
    enc(m, e)
    e = dbl(e)
    f.write(e)
    f.write(dbl(e))


phase = boot  # what main.py calls in boot phase 2
