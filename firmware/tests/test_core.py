"""The firmware core under CPython with the fake board: every check in mp_checks.py (the
same checks run under current MicroPython in test_wasm.py), the protocol vectors, and
frames the firmware sends decoded by the CPython codec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mp_checks
import pytest
import vector_checks
from conftest import VECTORS

from meterlink.protocol import FrameType, LinkDecoder, Reading, decode_frame

CHECKS = sorted(n for n in vars(mp_checks) if n.startswith("check_"))


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Any]:
    mp_checks.setup(str(tmp_path) + "/")
    yield mp_checks
    mp_checks.setup(str(tmp_path) + "/")


@pytest.mark.parametrize("name", CHECKS)
def test_check(name: str, fresh: Any) -> None:
    getattr(fresh, name)()


def test_protocol_vectors(fresh: Any) -> None:
    assert vector_checks.run_all(json.loads(VECTORS.read_text())) == 137


def test_uplinks_decode_with_the_cpython_codec(fresh: Any) -> None:
    import board

    fresh.config(register=500, interval=2, pin_tamper="pin2")
    board.pins["pin0"] = fresh.pulses_wave(1100, 80, 40, 40)
    board.pins["pin2"] = lambda t: 1 if t > 3000 else 0
    c = fresh.boot()
    fresh.run_until(c, 1000 + 3 * 2000 + 300)
    decoder = LinkDecoder()
    links = decoder.feed(b"".join(board.tx))
    frames = [decode_frame(link.payload, fresh.KEY) for link in links]  # type: ignore[union-attr]
    kinds = [f.frame_type for f in frames]
    assert kinds[0] == FrameType.STATUS and FrameType.ALARM in kinds
    readings = [f for f in frames if f.frame_type == FrameType.READING]
    assert len(readings) == 3
    last = readings[-1].body
    assert isinstance(last, Reading)
    assert last.register == 540 == c.s[2]
    assert sum(last.deltas) == 40 and last.interval_seq == 2
    assert all(len(f.payload) <= 51 for f in frames)
    assert all(f.device_id == fresh.DEV for f in frames)
