# CMAC (RFC 4493) and sealing (protocol 3) with the working
# keys K (state.py), on aes.py's cipher; AES-CTR for both directions.
import struct
from fields import *  # the state indexes (inlined by the bundler)


def cmac(m, n, o=0):
    # AES-CMAC of m[o:o+n] with K_mic, into X
    x = X
    for i in range(16):
        x[i] = 0
    b = (n + 15) // 16 or 1
    k = K[2] if n and not n % 16 else K[3]
    for j in range(b):
        for i in range(16):
            p = j * 16 + i
            c = m[o + p] if p < n else (128 if p == n else 0)
            x[i] ^= c ^ k[i] if j == b - 1 else c
        enc(K[1], x)
    return x


def seal(vt, fc, n):
    # header, AES-CTR over the body F[9:9+n], MIC over the 9-byte header with
    # the whole counter; then F[0:11+n] is the payload as sent, without the
    # counter's high 16 bits (protocol 2); its length. The key stream's
    # direction (protocol 3.2) is the type's bit 3: 0 for the uplink types, 1
    # for the downlink ones (0x28 and up), so this also opens a downlink body
    # (its header already in F[0:9]): then found decrypted at F[7:7+n]
    d = V[V_DEV]
    struct.pack_into('>BII', F, 0, vt, d, fc)
    a = X
    for i in range(0, n, 16):
        struct.pack_into('>BIBIIBB', a, 0, 1, 0, vt >> 3 & 1, d, fc, 0, i // 16 + 1)
        enc(K[0], a)
        for j in range(min(16, n - i)):
            F[9 + i + j] ^= a[j]
    a = cmac(F, 9 + n)
    for i in range(4):
        F[9 + n + i] = a[i]
    for i in range(5, 11 + n):
        F[i] = F[i + 2]
    return 11 + n
