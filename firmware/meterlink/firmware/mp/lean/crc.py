# CRC-16/IBM-3740 (protocol 5), for the state records (boot
# and run phases) and the link frames.


def crc(b, n, c=0xFFFF):
    # CRC-16/IBM-3740 of b[0:n], continuing from c
    for i in range(n):
        c ^= b[i] << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c


from glue import ctrl_c_off  # first file of phase 2, last of phase 3:
ctrl_c_off()  # no Ctrl-C from the UART
