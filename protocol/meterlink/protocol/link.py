"""Link frames on serial lines and in UDP datagrams (spec section 5)."""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from .constants import MAX_LINK_FRAME, LinkType
from .errors import BadCrc, BadLinkType, Oversized, Truncated

__all__ = [
    "END",
    "ESC",
    "ESC_END",
    "ESC_ESC",
    "LinkFrame",
    "crc16",
    "decode_link_datagram",
    "encode_link",
    "encode_rxinfo",
    "slip_escape",
]

END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
MIN_LINK_FRAME = 3  # link type and CRC

def crc16(data: bytes) -> int:
    """CRC-16/IBM-3740 (CCITT-FALSE): poly 0x1021, init 0xFFFF, no reflection, no xor-out."""
    return binascii.crc_hqx(bytes(data), 0xFFFF)


def slip_escape(data: bytes) -> bytes:
    return (
        bytes(data)
        .replace(bytes([ESC]), bytes([ESC, ESC_ESC]))
        .replace(bytes([END]), bytes([ESC, ESC_END]))
    )


@dataclass(frozen=True)
class LinkFrame:
    link_type: LinkType
    payload: bytes  # the radio payload
    rssi: int | None = None  # dBm, RXINFO only
    snr_qdb: int | None = None  # quarter dB, RXINFO only


def _unslipped(link_type: LinkType | int, data: bytes) -> bytes:
    if not 0 <= link_type <= 0xFF:
        raise ValueError(f"link type {link_type} does not fit a byte")
    body = bytes([link_type]) + bytes(data)
    return body + crc16(body).to_bytes(2, "big")


def encode_link(link_type: LinkType | int, data: bytes) -> bytes:
    """A SLIP link frame: END, escaped type || data || CRC (big-endian), END."""
    escaped = slip_escape(_unslipped(link_type, data))
    if len(escaped) > MAX_LINK_FRAME:
        raise Oversized(f"link frame of {len(escaped)} escaped bytes exceeds {MAX_LINK_FRAME}")
    return bytes([END]) + escaped + bytes([END])


def encode_link_datagram(link_type: LinkType | int, data: bytes) -> bytes:
    """The UDP form: type || data || CRC, without SLIP."""
    return _unslipped(link_type, data)


def _rxinfo_data(payload: bytes, rssi: int, snr_qdb: int) -> bytes:
    for name, value in (("rssi", rssi), ("snr_qdb", snr_qdb)):
        if not -128 <= value <= 127:
            raise ValueError(f"{name} {value} does not fit a signed byte (-128 .. 127)")
    return struct.pack(">bb", rssi, snr_qdb) + bytes(payload)


def encode_rxinfo(payload: bytes, rssi: int, snr_qdb: int) -> bytes:
    """A whole RXINFO link frame (SLIP) as a receiver sends it to the gateway."""
    return encode_link(LinkType.RXINFO, _rxinfo_data(payload, rssi, snr_qdb))


def encode_rxinfo_datagram(payload: bytes, rssi: int, snr_qdb: int) -> bytes:
    return encode_link_datagram(LinkType.RXINFO, _rxinfo_data(payload, rssi, snr_qdb))


def parse_link_content(content: bytes) -> LinkFrame:
    """Check an unescaped link frame (type || data || CRC) and split it."""
    size = len(content)
    if size < MIN_LINK_FRAME:
        raise Truncated(f"link frame of {size} bytes is shorter than {MIN_LINK_FRAME}")
    if size > MAX_LINK_FRAME:
        raise Oversized(f"link frame of {size} bytes exceeds {MAX_LINK_FRAME}")
    expected = crc16(content[:-2])
    received = int.from_bytes(content[-2:], "big")
    if expected != received:
        raise BadCrc(
            f"link frame CRC 0x{received:04x} != computed 0x{expected:04x}: corrupted on the line"
        )
    type_byte, data = content[0], content[1:-2]
    if type_byte not in LinkType._value2member_map_:
        raise BadLinkType(f"link type 0x{type_byte:02x} is unknown (1 DATA, 2 RXINFO)")
    link_type = LinkType(type_byte)
    if link_type is LinkType.RXINFO:
        if len(data) < 2:
            raise Truncated(f"RXINFO link data of {len(data)} bytes lacks rssi and snr")
        rssi, snr = struct.unpack_from(">bb", data)
        return LinkFrame(link_type, bytes(data[2:]), rssi, snr)
    return LinkFrame(link_type, bytes(data))


def decode_link_datagram(datagram: bytes) -> LinkFrame:
    """Decode the UDP form of a link frame (no SLIP); raises only ProtocolError subclasses."""
    return parse_link_content(bytes(datagram))
