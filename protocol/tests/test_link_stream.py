"""LinkDecoder on a serial byte stream: splits, lost bytes, garbage, limits."""

from __future__ import annotations

import pytest

from meterlink.protocol import (
    BadCrc,
    LinkDecoder,
    LinkFrame,
    LinkType,
    Oversized,
    ProtocolError,
    Truncated,
    decode_link_datagram,
    encode_link,
    encode_link_datagram,
    encode_rxinfo,
)

# payloads chosen to need escaping (0xC0 and 0xDB inside)
PAYLOADS = [
    bytes([0x10, 0xC0, 0x01, 0xDB, 0x02]) + bytes(range(20)),
    bytes(range(0xB0, 0xE0)),
    b"\x11" + b"\xdb" * 10,
]
STREAM = b"".join(encode_link(LinkType.DATA, p) for p in PAYLOADS)


def frames(results: list[LinkFrame | ProtocolError]) -> list[bytes]:
    return [r.payload for r in results if isinstance(r, LinkFrame)]


def errors(results: list[LinkFrame | ProtocolError]) -> list[str]:
    return [r.code for r in results if isinstance(r, ProtocolError)]


def test_whole_stream_in_one_feed() -> None:
    decoder = LinkDecoder()
    results = decoder.feed(STREAM)
    assert frames(results) == PAYLOADS and not errors(results)
    assert decoder.stats["ok"] == 3
    assert decoder.stats["empty"] == 2  # END END between frames
    assert decoder.stats["bytes"] == len(STREAM)


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_split_at_every_byte_boundary(cut: int) -> None:
    decoder = LinkDecoder()
    results = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
    assert frames(results) == PAYLOADS and not errors(results)


def test_one_byte_at_a_time() -> None:
    decoder = LinkDecoder()
    results = [r for b in STREAM for r in decoder.feed(bytes([b]))]
    assert frames(results) == PAYLOADS


def frame_spans() -> list[tuple[int, int]]:
    spans, start = [], 0
    for p in PAYLOADS:
        n = len(encode_link(LinkType.DATA, p))
        spans.append((start, start + n))
        start += n
    return spans


@pytest.mark.parametrize("lost", range(len(STREAM)))
def test_a_lost_byte_costs_at_most_one_frame(lost: int) -> None:
    """Losing any single byte loses at most the frame it was in; all others decode."""
    damaged = STREAM[:lost] + STREAM[lost + 1 :]
    got = frames(LinkDecoder().feed(damaged))
    hit = next(i for i, (a, b) in enumerate(frame_spans()) if a <= lost < b)
    others = [p for i, p in enumerate(PAYLOADS) if i != hit]
    assert [p for p in got if p != PAYLOADS[hit]] == others
    assert len(got) >= len(PAYLOADS) - 1


def test_lost_byte_inside_a_frame_gives_bad_crc_then_resyncs() -> None:
    first = encode_link(LinkType.DATA, PAYLOADS[0])
    damaged = first[:5] + first[6:] + STREAM[len(first) :]
    results = LinkDecoder().feed(damaged)
    assert errors(results) == ["bad_crc"]
    assert frames(results) == PAYLOADS[1:]


def test_lost_escape_second_byte() -> None:
    frame = encode_link(LinkType.DATA, b"\x10\xc0\x20")
    index = frame.index(0xDB)
    damaged = frame[: index + 1] + frame[index + 2 :]
    results = LinkDecoder().feed(damaged + STREAM)
    assert errors(results) == ["bad_crc"] and frames(results) == PAYLOADS


def test_frame_ending_inside_an_escape() -> None:
    results = LinkDecoder().feed(b"\xc0\x01\x02\xdb\xc0" + STREAM)
    assert isinstance(results[0], BadCrc)
    assert "escape" in str(results[0])
    assert frames(results) == PAYLOADS


def test_garbage_between_frames_is_not_a_frame() -> None:
    garbage = bytes((i * 97 + 13) % 256 for i in range(200) if (i * 97 + 13) % 256 != 0xC0)
    first, rest = encode_link(LinkType.DATA, PAYLOADS[0]), STREAM
    results = LinkDecoder().feed(first + garbage + rest)
    assert frames(results) == [PAYLOADS[0], *PAYLOADS]
    assert errors(results) == ["bad_crc"]


def test_bytes_before_the_first_end_are_skipped() -> None:
    decoder = LinkDecoder()
    tail_of_a_frame = b"\x01\x02\x03\x04\x05"
    results = decoder.feed(tail_of_a_frame + STREAM)
    assert frames(results) == PAYLOADS and not errors(results)
    assert decoder.stats["skipped_bytes"] == len(tail_of_a_frame)


def test_overlong_run_is_reported_once_and_memory_stays_bounded() -> None:
    decoder = LinkDecoder()
    results = decoder.feed(b"\xc0" + b"\x55" * 5000)
    assert results == []
    assert len(decoder._buffer) <= 300
    results = decoder.feed(b"\xc0" + STREAM)
    assert isinstance(results[0], Oversized)
    assert frames(results) == PAYLOADS
    assert decoder.stats["oversized"] == 1


def test_300_escaped_bytes_are_accepted_301_are_not() -> None:
    data = b"\x10" * 297  # + type + CRC = 300
    frame = encode_link(LinkType.DATA, data)
    assert len(frame) == 302
    assert frames(LinkDecoder().feed(frame)) == [data]
    with pytest.raises(Oversized):
        encode_link(LinkType.DATA, data + b"\x10")


def test_short_frame_is_truncated() -> None:
    results = LinkDecoder().feed(b"\xc0\x01\xaa\xc0")
    assert len(results) == 1 and isinstance(results[0], Truncated)


def test_unknown_link_type_is_counted() -> None:
    decoder = LinkDecoder()
    results = decoder.feed(encode_link(7, b"\x10\x20") + STREAM)
    assert errors(results) == ["bad_link_type"]
    assert frames(results) == PAYLOADS
    assert decoder.stats["bad_link_type"] == 1


def test_rxinfo_carries_signed_rssi_and_snr() -> None:
    (result,) = LinkDecoder().feed(encode_rxinfo(PAYLOADS[0], -120, -40))
    assert result == LinkFrame(LinkType.RXINFO, PAYLOADS[0], -120, -40)
    with pytest.raises(ValueError, match="rssi"):
        encode_rxinfo(b"", -129, 0)


def test_rxinfo_without_signal_bytes_is_truncated() -> None:
    with pytest.raises(Truncated):
        decode_link_datagram(encode_link_datagram(LinkType.RXINFO, b"\x01"))


def test_datagram_form_has_no_slip() -> None:
    datagram = encode_link_datagram(LinkType.DATA, PAYLOADS[0])
    assert datagram[0] == 1 and 0xDB in datagram  # bytes stay unescaped
    assert decode_link_datagram(datagram) == LinkFrame(LinkType.DATA, PAYLOADS[0])
    with pytest.raises(Truncated):
        decode_link_datagram(b"\x01\x00")
    with pytest.raises(Oversized):
        decode_link_datagram(b"\x01" * 301)


def test_reset_drops_a_partial_frame() -> None:
    decoder = LinkDecoder()
    first = encode_link(LinkType.DATA, PAYLOADS[0])
    decoder.feed(first[:10])
    decoder.reset()
    assert frames(decoder.feed(first[10:] + STREAM)) == PAYLOADS
