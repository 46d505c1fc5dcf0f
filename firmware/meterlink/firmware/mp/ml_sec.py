# Frame security (protocol section 3): K_enc/K_mic from the root key,
# AES-128-CTR and the 4-byte AES-CMAC MIC. AES is cryptolib's where the port
# has it, else the pure-Python cipher below, which calls poll() after every
# round so a polling board keeps counting while a frame is sealed.
import struct
try:
    from cryptolib import aes as _E
except ImportError:
    _E = None
    # the S-box, computed (a 256-byte literal would cost more flash)
    _S = bytearray(256)
    _S[0] = 0x63
    p = q = 1
    while 1:
        p ^= (p << 1) ^ (0x1b if p & 128 else 0)  # p * 3
        p &= 255
        q ^= q << 1  # q / 3
        q ^= q << 2
        q ^= q << 4
        q &= 255
        if q & 128:
            q ^= 9
        x = q
        for r in (1, 2, 3, 4):
            x ^= ((q << r) | (q >> (8 - r))) & 255
        _S[p] = x ^ 0x63
        if p == 1:
            break
    _SH = b'\x00\x05\x0a\x0f\x04\x09\x0e\x03\x08\x0d\x02\x07\x0c\x01\x06\x0b'  # ShiftRows


class Key:
    # one AES-128 key; enc() encrypts a 16-byte bytearray in place
    def __init__(self, k):
        if _E:
            self.c = _E(bytes(k), 1)
            return
        w = bytearray(176)  # the key schedule
        w[0:16] = k
        rc = 1
        for i in range(16, 176, 4):
            a, b, c, d = w[i - 4], w[i - 3], w[i - 2], w[i - 1]
            if not i & 15:
                a, b, c, d = _S[b] ^ rc, _S[c], _S[d], _S[a]
                rc = (rc << 1) ^ (0x11b if rc & 128 else 0)
            w[i] = w[i - 16] ^ a
            w[i + 1] = w[i - 15] ^ b
            w[i + 2] = w[i - 14] ^ c
            w[i + 3] = w[i - 13] ^ d
        self.w = w
        self.t = bytearray(16)

    def enc(self, b, poll=None):
        if _E:
            b[0:16] = self.c.encrypt(bytes(b))
            return
        w = self.w
        t = self.t
        for i in range(16):
            b[i] ^= w[i]
        for r in range(16, 176, 16):
            for i in range(16):
                t[i] = _S[b[_SH[i]]]  # SubBytes, ShiftRows
            for c in range(0, 16, 4):
                if r == 160:  # the last round has no MixColumns
                    for i in range(c, c + 4):
                        b[i] = t[i] ^ w[r + i]
                    continue
                x = t[c] ^ t[c + 1] ^ t[c + 2] ^ t[c + 3]
                for i in range(4):
                    y = t[c + i] ^ t[c + (i + 1) % 4]
                    y = ((y << 1) ^ 0x11b) if y & 128 else y << 1
                    b[c + i] = t[c + i] ^ x ^ y ^ w[r + c + i]
            if poll:
                poll()


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


class Sec:
    def __init__(self, dev, root):
        self.dev = dev
        k = Key(root)
        b = bytearray(16)
        b[0] = 1
        k.enc(b)
        self.ke = Key(b)
        b = bytearray(16)
        b[0] = 2
        k.enc(b)
        self.km = Key(b)
        b = bytearray(16)
        self.km.enc(b)
        self.k1 = dbl(b)
        self.k2 = dbl(self.k1)
        self.x = bytearray(16)

    def ctr(self, f, o, n, dn, fc, poll=None):
        # XOR the key stream of (direction dn, counter fc) into f[o:o+n]
        a = self.x
        for i in range(0, n, 16):
            struct.pack_into('>BIBIIBB', a, 0, 1, 0, dn, self.dev, fc, 0, i // 16 + 1)
            self.ke.enc(a, poll)
            for j in range(min(16, n - i)):
                f[o + i + j] ^= a[j]

    def cmac(self, m, n, poll=None):
        # AES-CMAC (RFC 4493) of m[0:n], into self.x, which is returned
        x = self.x
        for i in range(16):
            x[i] = 0
        nb = (n + 15) // 16 or 1
        sub = self.k1 if n and not n % 16 else self.k2
        for j in range(nb):
            for i in range(16):
                p = j * 16 + i
                v = m[p] if p < n else (128 if p == n else 0)
                if j == nb - 1:
                    v ^= sub[i]
                x[i] ^= v
            self.km.enc(x, poll)
        return x

    def seal(self, f, vt, fc, n, poll=None):
        # f[9:9+n] holds the body: write the header, encrypt, append the MIC
        struct.pack_into('>BII', f, 0, vt, self.dev, fc)
        self.ctr(f, 9, n, 0, fc, poll)
        x = self.cmac(f, 9 + n, poll)
        f[9 + n:13 + n] = x[0:4]
        return 13 + n

    def open(self, f, n, poll=None):
        # check a downlink radio payload f[0:n] and decrypt its body in place:
        # (type, counter, body length), or None if it is not a valid one for us
        if n < 13 or n > 64 or f[0] & 0xF8 != 0x18:
            return None
        vt, dev, fc = struct.unpack_from('>BII', f, 0)
        x = self.cmac(f, n - 4, poll)
        if dev != self.dev or x[0:4] != f[n - 4:n]:
            return None
        self.ctr(f, 9, n - 13, 1, fc, poll)
        return vt & 15, fc, n - 13
