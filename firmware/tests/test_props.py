"""Property tests of the firmware core under CPython (hypothesis): the pure AES, CTR and
CMAC against the cryptography package, the debouncer against a model, and the store
against cuts at any point of a write."""

from __future__ import annotations

import struct
from pathlib import Path

import board
import ml_aes
import ml_core
import ml_sec
import mp_checks
from cryptography.hazmat.primitives import cmac as crypto_cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st


def ecb(key: bytes, block: bytes) -> bytes:
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


@given(key=st.binary(min_size=16, max_size=16), block=st.binary(min_size=16, max_size=16))
def test_pure_aes_matches(key: bytes, block: bytes) -> None:
    b = bytearray(block)
    ml_aes.Key(key).enc(b)
    assert bytes(b) == ecb(key, block)


@given(
    key=st.binary(min_size=16, max_size=16),
    dev=st.integers(0, 2**32 - 1),
    fc=st.integers(0, 2**32 - 1),
    body=st.binary(max_size=40),
)
def test_seal_matches_ctr_and_cmac(key: bytes, dev: int, fc: int, body: bytes) -> None:
    sec = ml_sec.Sec(dev, key)
    f = bytearray(66)
    f[9 : 9 + len(body)] = body
    n = sec.seal(f, 0x20, fc, len(body))
    k_enc = ecb(key, b"\x01" + bytes(15))
    k_mic = ecb(key, b"\x02" + bytes(15))
    stream = b"".join(
        ecb(k_enc, struct.pack(">BIBIIBB", 1, 0, 0, dev, fc, 0, i + 1)) for i in range(3)
    )
    header = struct.pack(">BIH", 0x20, dev, fc & 0xFFFF)  # on air: 16 counter bits
    ct = bytes(a ^ b for a, b in zip(body, stream, strict=False))
    mac = crypto_cmac.CMAC(algorithms.AES(k_mic))
    mac.update(struct.pack(">BII", 0x20, dev, fc) + ct)  # the MIC covers all 32
    assert bytes(f[:n]) == header + ct + mac.finalize()[:4]


@settings(max_examples=60, deadline=None)
@given(
    pulses=st.lists(
        st.tuples(st.integers(15, 60), st.integers(15, 60), st.booleans()),
        min_size=1,
        max_size=25,
    )
)
def test_debounce_counts_pulses_and_ignores_glitches(
    pulses: list[tuple[int, int, bool]],
) -> None:
    # pulses high h ms then low l ms, some with a 1 ms glitch in the middle of the low
    board.reset_all("")
    c = ml_core.Core()
    highs: list[tuple[int, int]] = []
    t = 1100
    for h, low, glitch in pulses:
        highs.append((t, t + h))
        if glitch:
            highs.append((t + h + low // 2, t + h + low // 2 + 1))
        t += h + low
    board.pins["pin0"] = lambda now: int(any(a <= now < b for a, b in highs))
    c.rp = board.pin("pin0")
    while board.ticks_ms() < t + 50:
        c.poll()
    assert c.s[2] == len(pulses)


@settings(max_examples=40, deadline=None)
@given(commits=st.integers(1, 12), cut=st.integers(0, 62))
def test_a_cut_anywhere_in_a_write_loses_at_most_that_commit(commits: int, cut: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        mp_checks.setup(d + "/")
        c = ml_core.Core()
        for i in range(commits):
            c.s[2] = 100 + i
            c.commit()
        newest = Path(d) / f"st{c.s[0] & 1}"
        newest.write_bytes(newest.read_bytes()[:cut])  # the last write, cut short


        s = ml_core.Core().s
        r = ml_core.load(s)  # mp_checks.setup() went into d
        if cut == 62:
            assert r == 0 and s[2] == 100 + commits - 1
        elif commits == 1:
            assert r in (1, 4) and s[2] == 0
        else:
            assert r == 0 and s[2] == 100 + commits - 2
