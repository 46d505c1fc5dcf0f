# nRF51 profile: uplink sessions: the body (ml_n), sealed (ml_ns), sent as
# a SLIP link frame (protocol 5). This profile sends reading and status
# frames only and does not listen for downlinks (alarm frames, acks, config
# and time downlinks are rp2-only: docs/firmware.md).
from micropython import const
from microbit import uart

_RSV = const(6)
_FC = const(17)


def up(kind):
    # one uplink: 0 reading, 2 status (alarm frames are rp2-only; the flags
    # are in every reading frame)
    v = V
    n = body(kind)
    fc = v[_FC]
    if fc >= S[_RSV]:
        S[_RSV] = fc + 32  # reserve counters before using them
        commit()
    v[_FC] = fc + 1
    n = seal(0x10 | kind, fc, n)
    # the radio payload F[0:n] as one DATA link frame
    c = crc(F, n, crc(b'\x01', 1))
    o = bytearray(2 * n + 8)
    o[0] = 0xC0
    o[1] = 1
    j = 2
    for i in range(n + 2):
        x = F[i] if i < n else (c >> 8 if i == n else c & 255)
        if x == 0xC0 or x == 0xDB:
            o[j] = 0xDB
            x = 0xDC if x == 0xC0 else 0xDD
            j += 1
        o[j] = x
        j += 1
    o[j] = 0xC0
    uart.write(o[0:j + 1])
