"""Codec speed figures (printed, not asserted): run with `-m bench -s`."""

from __future__ import annotations

import time

import pytest

from meterlink.protocol import (
    AlarmFlags,
    DeviceKeys,
    FrameType,
    LinkDecoder,
    LinkFrame,
    LinkType,
    Reading,
    Unit,
    decode_frame,
    encode_frame,
    encode_link,
)

KEYS = DeviceKeys.derive(bytes(range(16)))
BODY = Reading(
    register=123456,
    pulse_weight=1,
    unit=Unit.L,
    interval_s=900,
    deltas=tuple(range(12)),
    age_s=5,
    interval_seq=1000,
    alarms=AlarmFlags(0),
)


@pytest.mark.bench
def test_codec_throughput() -> None:
    n = 5000
    start = time.perf_counter()
    payloads = [encode_frame(FrameType.READING, 1, i, BODY, KEYS) for i in range(n)]
    encoded = time.perf_counter()
    frames = [decode_frame(p, KEYS) for p in payloads]
    decoded = time.perf_counter()
    stream = b"".join(encode_link(LinkType.DATA, p) for p in payloads)
    linked = time.perf_counter()
    results = LinkDecoder().feed(stream)
    fed = time.perf_counter()
    assert len(frames) == n and sum(isinstance(r, LinkFrame) for r in results) == n
    print(
        f"\nencode_frame {n / (encoded - start):,.0f}/s, decode_frame "
        f"{n / (decoded - encoded):,.0f}/s, LinkDecoder "
        f"{len(stream) / (fed - linked) / 1e6:.2f} MB/s ({n / (fed - linked):,.0f} frames/s)"
    )
