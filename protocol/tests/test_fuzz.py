"""Decoders raise nothing but ProtocolError on any input, including authenticated junk."""

from __future__ import annotations

import struct

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from meterlink.protocol import (
    DeviceKeys,
    LinkDecoder,
    LinkFrame,
    ProtocolError,
    decode_frame,
    decode_link_datagram,
)
from meterlink.protocol.crypto import compute_mic, ctr_xor

KEY = bytes(range(16))
KEYS = DeviceKeys.derive(KEY)
CODES = {"truncated", "oversized", "bad_version", "bad_type", "bad_mic", "malformed"}


def sealed(vt: int, device: int, counter: int, ciphertext: bytes) -> bytes:
    """A v2 payload with a valid MIC: 16 counter bits on air, 32 under the MIC."""
    auth = struct.pack(">BII", vt, device, counter)
    header = struct.pack(">BIH", vt, device, counter & 0xFFFF)
    return header + ciphertext + compute_mic(KEYS.mic, auth + ciphertext)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_decode_frame_on_arbitrary_bytes(data: bytes) -> None:
    try:
        frame = decode_frame(data, KEYS)
    except ProtocolError as exc:
        assert exc.code in CODES
        return
    assert frame.payload == data  # pragma: no cover - a random MIC matching is 2^-32


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decode_link_datagram_on_arbitrary_bytes(data: bytes) -> None:
    try:
        frame = decode_link_datagram(data)
    except ProtocolError:
        return
    assert isinstance(frame, LinkFrame)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.binary(max_size=120) | st.sampled_from([b"\xc0", b"\xdb", b"\xdb\xdc"]), max_size=12
    )
)
def test_link_decoder_feed_never_raises(chunks: list[bytes]) -> None:
    decoder = LinkDecoder()
    for chunk in chunks:
        for result in decoder.feed(chunk):
            assert isinstance(result, LinkFrame | ProtocolError)
    assert len(decoder._buffer) <= 300


@settings(max_examples=600, deadline=None)
@given(
    vt_type=st.sampled_from([0, 1, 2, 8, 9, 10]),
    device=st.integers(0, 2**32 - 1),
    counter=st.integers(0, 2**32 - 1),
    ciphertext=st.binary(max_size=51),
)
def test_valid_mic_over_arbitrary_body(
    vt_type: int, device: int, counter: int, ciphertext: bytes
) -> None:
    """The MIC is computed here, so the body decoder sees arbitrary decrypted bytes."""
    payload = sealed(0x20 | vt_type, device, counter, ciphertext)
    try:
        frame = decode_frame(payload, KEYS, counter=counter)
    except ProtocolError as exc:
        assert exc.code in {"oversized", "malformed"}
        return
    assert frame.device_id == device


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=38).map(lambda b: b"\xa1" + b[:1] + b[1:]))
def test_valid_mic_over_map_prefixed_junk(body: bytes) -> None:
    """Bodies starting like a one-entry map reach deeper into the CBOR scanner."""
    payload = sealed(0x29, 5, 6, ctr_xor(KEYS.enc, 1, 5, 6, body))
    try:
        decode_frame(payload, KEYS)
    except ProtocolError as exc:
        assert exc.code == "malformed"


cbor_leaf = (
    st.integers(-(2**40), 2**40)
    | st.binary(max_size=70)
    | st.text(max_size=8)
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False)
)
cbor_value = st.recursive(
    cbor_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.integers(0, 40), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=500, deadline=None)
@given(
    frame_type=st.sampled_from([0, 1, 2, 9, 10]),
    body=st.dictionaries(st.integers(0, 40), cbor_value, max_size=9),
)
def test_valid_mic_over_arbitrary_cbor_maps(frame_type: int, body: dict[int, object]) -> None:
    """Well-formed CBOR with any key/value mix: a body, or `malformed`, nothing else."""
    plaintext = cbor2.dumps(body)
    direction = frame_type >> 3 & 1
    ciphertext = ctr_xor(KEYS.enc, direction, 5, 6, plaintext[:51])
    payload = sealed(0x20 | frame_type, 5, 6, ciphertext)
    try:
        frame = decode_frame(payload, KEYS)
    except ProtocolError as exc:
        assert exc.code in {"oversized", "malformed"}
        return
    assert int(frame.frame_type) == frame_type
