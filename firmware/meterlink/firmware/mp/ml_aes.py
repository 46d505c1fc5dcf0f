# AES-128 encryption: cryptolib's where the port has it, else the pure-Python
# cipher below (FIPS-197, encryption only: CTR and CMAC never decrypt), which
# calls poll() after every round so a polling board keeps counting.
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
        for i in range(16):  # no slice assignment on 1.9.2
            w[i] = k[i]
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
            e = self.c.encrypt(bytes(b))
            for i in range(16):
                b[i] = e[i]
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
