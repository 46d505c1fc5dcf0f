# Frame security (protocol section 3): K_enc/K_mic from the root key,
# AES-128-CTR and the 4-byte AES-CMAC MIC. A frame is built and checked in
# its authenticated form (the 9-byte header with the whole 32-bit counter,
# body at offset 9); on air the counter's high 16 bits (bytes 5, 6) are left
# out (protocol 2, 3.4).
import struct
from ml_aes import Key
from ml_cipher import dbl  # CMAC subkey doubling, the nRF51 build's (mp/lean/boot.py)


class Sec:
    def __init__(self, dev, root):
        self.dev = dev
        self.x = bytearray(16)
        k = Key(root)
        e = bytearray(16)
        e[0] = 1
        k.enc(e)
        m = bytearray(16)
        m[0] = 2
        k.enc(m)
        self.keys(e, m)

    def keys(self, e, m):
        # use e as K_enc and m as K_mic (tests set them directly)
        self.ke = Key(e)
        self.km = Key(m)
        b = bytearray(16)
        self.km.enc(b)
        self.k1 = dbl(b)
        self.k2 = dbl(self.k1)

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
        # f[9:9+n] holds the body: header, encryption and MIC over the 9-byte
        # header; then the payload as sent, 7-byte header, is f[0:11+n]
        struct.pack_into('>BII', f, 0, vt, self.dev, fc)
        self.ctr(f, 9, n, 0, fc, poll)
        x = self.cmac(f, 9 + n, poll)
        for i in range(4):  # no slice assignment on 1.9.2
            f[9 + n + i] = x[i]
        for i in range(5, 9 + n + 2):
            f[i] = f[i + 2]
        return 11 + n

    def open(self, f, n, afc, dlc, poll=None):
        # check a downlink radio payload f[0:n] (f holds n + 2 bytes) and
        # decrypt its body in place at f[9:]: (type, counter, body length), or
        # None if it is not a valid one for us. An ack must carry the counter
        # of the alarm frame afc (None: no ack is awaited); a config or time
        # counter is extended from dlc, the last accepted one, and one not
        # above it is stale: dropped unseen (protocol 3.4)
        if n < 11 or n > 64 or not 0x28 <= f[0] <= 0x2A:  # v2 ack, config, time
            return None
        vt, dev, lo = struct.unpack_from('>BIH', f, 0)
        if dev != self.dev:
            return None
        if vt == 0x28:
            if afc is None or afc & 0xFFFF != lo:
                return None
            fc = afc
        else:
            b = max(0, dlc - 63)
            fc = b + ((lo - b) & 0xFFFF)
            if fc <= dlc:
                return None
        for i in range(n + 1, 6, -1):
            f[i] = f[i - 2]
        struct.pack_into('>I', f, 5, fc)
        x = self.cmac(f, n - 2, poll)
        if x[0:4] != f[n - 2:n + 2]:
            return None
        self.ctr(f, 9, n - 11, 1, fc, poll)
        return vt & 15, fc, n - 11
