"""AES-128 key derivation, CTR key stream and CMAC MIC (spec section 3)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .constants import MIC_LEN

__all__ = ["DeviceKeys", "aes_ecb_block", "compute_mic", "counter_block", "ctr_xor"]

KEY_LEN = 16
MAX_CTR_BYTES = 64  # the CTR block index i is 1..4


def _check_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes | bytearray):
        raise ValueError(f"{what} must be 16 bytes, got {type(key).__name__}")
    if len(key) != KEY_LEN:
        raise ValueError(f"{what} must be 16 bytes (32 hex digits), got {len(key)} bytes")


def aes_ecb_block(key: bytes, block: bytes) -> bytes:
    """AES-128 of one 16-byte block."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


@dataclass(frozen=True)
class DeviceKeys:
    """The two working keys derived from a device's root key K (spec 3.1)."""

    enc: bytes
    mic: bytes

    def __post_init__(self) -> None:
        _check_key(self.enc, "encryption key")
        _check_key(self.mic, "MIC key")

    @classmethod
    def derive(cls, root_key: bytes) -> DeviceKeys:
        _check_key(root_key, "root key")
        root = bytes(root_key)
        return cls(
            enc=aes_ecb_block(root, b"\x01" + bytes(15)),
            mic=aes_ecb_block(root, b"\x02" + bytes(15)),
        )

    def __repr__(self) -> str:  # keys never end up in logs
        return "DeviceKeys(enc=<hidden>, mic=<hidden>)"


def as_device_keys(key: bytes | DeviceKeys) -> DeviceKeys:
    return key if isinstance(key, DeviceKeys) else DeviceKeys.derive(key)


def counter_block(direction: int, device_id: int, counter: int, index: int) -> bytes:
    """Block A_i of spec 3.2."""
    return struct.pack(">BIBIIBB", 0x01, 0, direction, device_id, counter, 0, index)


def ctr_xor(enc_key: bytes, direction: int, device_id: int, counter: int, data: bytes) -> bytes:
    """Encrypt or decrypt a body (CTR is its own inverse)."""
    if len(data) > MAX_CTR_BYTES:
        raise ValueError(f"body of {len(data)} bytes exceeds {MAX_CTR_BYTES} (4 AES blocks)")
    if not data:
        return b""
    blocks = (len(data) + 15) // 16
    encryptor = Cipher(algorithms.AES(enc_key), modes.ECB()).encryptor()
    stream = encryptor.update(
        b"".join(counter_block(direction, device_id, counter, i) for i in range(1, blocks + 1))
    )
    return bytes(a ^ b for a, b in zip(data, stream, strict=False))


def compute_mic(mic_key: bytes, data: bytes) -> bytes:
    """First 4 bytes of AES-128-CMAC (RFC 4493) over header || ciphertext."""
    mac = cmac.CMAC(algorithms.AES(mic_key))
    mac.update(data)
    return mac.finalize()[:MIC_LEN]
