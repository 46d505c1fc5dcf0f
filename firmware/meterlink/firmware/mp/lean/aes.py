# AES-128 encryption (FIPS-197; CTR and CMAC never decrypt)
# as functions on key schedules (no class, no cryptolib branch: this port
# has none), calling poll() (counting.py's in the run phase, a no-op in the boot
# phase) after every round so that no pulse is missed. The boot phase
# (boot.py) derives the keys with it; CMAC and sealing are in seal.py.

# the S-box, computed (a 256-byte literal costs more flash)
SB = bytearray(256)
SB[0] = 0x63
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
    SB[p] = x ^ 0x63
    if p == 1:
        break
del p, q, x, r  # no names left behind in the one namespace (main.py's table)
H = b'\x00\x05\x0a\x0f\x04\x09\x0e\x03\x08\x0d\x02\x07\x0c\x01\x06\x0b'  # ShiftRows
T = bytearray(16)
X = bytearray(16)


def enc(w, b):
    # encrypt the 16-byte bytearray b in place with schedule w
    t = T
    for i in range(16):
        b[i] ^= w[i]
    for r in range(16, 176, 16):
        for i in range(16):
            t[i] = SB[b[H[i]]]  # SubBytes, ShiftRows
        for c in range(0, 16, 4):
            x = t[c] ^ t[c + 1] ^ t[c + 2] ^ t[c + 3]
            for i in range(c, c + 4):
                if r == 160:  # the last round has no MixColumns
                    b[i] = t[i] ^ w[r + i]
                    continue
                y = t[i] ^ t[c | (i + 1) & 3]
                y = ((y << 1) ^ 0x11b) if y & 128 else y << 1
                b[i] = t[i] ^ x ^ y ^ w[r + i]
        poll()
