# AES-128 encryption: cryptolib's where the port has it, else the nRF51
# build's cipher (mp/lean/aes.py, its key schedule from mp/lean/boot.py, in
# ml_cipher), which calls poll() after every round so a polling board keeps
# counting.
try:
    from cryptolib import aes as _E
except ImportError:
    _E = None
import ml_cipher


class Key:
    # one AES-128 key; enc() encrypts a 16-byte bytearray in place
    def __init__(self, k):
        if _E:
            self.c = _E(bytes(k), 1)
            return
        self.w = ml_cipher.ks(k)

    def enc(self, b, poll=None):
        if _E:
            e = self.c.encrypt(bytes(b))
            for i in range(16):
                b[i] = e[i]
            return
        ml_cipher.poll = poll or int  # enc() calls the module's poll()
        ml_cipher.enc(self.w, b)
