"""The config and time downlinks of the one on-board source (mp/lean/: ack.py's receive
window, downlink.py), under CPython with the fake micro:bit, in both forms (the sources
and the bundle made from them). The downlinks are made by the gateway's own encoder
(meterlink.protocol, as meterlink.edge.downlink sends them) and the module's answers are
read by its decoder: a config applied and reported, a rejected one answered, stale
counters and wrong MICs dropped, a time kept, the ack still taken, the limits of the one
config table; random bytes in the window change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import microbit  # the fake, from tests/nrf51
import pytest
import utime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lean_board import FORMS, LeanBoard
from test_lean import DEV, KEY, frames, write_config

from meterlink.bundler import FIELDS
from meterlink.protocol import (
    Ack,
    Config,
    FrameType,
    LinkDecoder,
    LinkType,
    Status,
    TimeSync,
    decode_frame,
    encode_frame,
    encode_link,
)
from meterlink.protocol.crypto import as_device_keys
from meterlink.protocol.frame import seal as _seal
from meterlink.protocol.link import crc16
from meterlink.protocol.module_config import COMMAND_FIELDS

F = {name: int(value) for name, value in FIELDS.items()}
# the Config body's field names, in the order of the overrides S_OV + i
OVERRIDES = ("interval_s", "leak_intervals", "burst_pulses", "burst_intervals", "backflow_pulses")
DOWNLINKS = frozenset({"config_downlink", "time_downlink"})  # the bundle's features
OV_V = ("V_INTERVAL", "V_LEAK", "V_BURST", "V_BURSTN", "V_BACKFLOW")


@pytest.fixture(params=FORMS)
def lean(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[LeanBoard]:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    microbit.reset_all()
    yield LeanBoard(request.param, DOWNLINKS)
    microbit.reset_all()


def seal(kind: FrameType, device: int, counter: int, body: bytes, key: bytes) -> bytes:
    """A downlink sealed as the gateway's encoder seals it, with any body bytes."""
    return _seal(kind, device, counter, body, as_device_keys(key))


def heard(ns: dict[str, Any], *payloads: bytes, ms: int = 30) -> None:
    """The radio payloads, as DATA link frames from the modem, in one receive window."""
    for p in payloads:
        microbit.rx.append(encode_link(LinkType.DATA, p))
    ns["listen"](ms)


def config(counter: int, key: bytes = KEY, **fields: Any) -> bytes:
    return encode_frame(FrameType.CONFIG, DEV, counter, Config(**fields), key)


def statuses() -> list[Status]:
    return [f.body for f in frames() if f.frame_type == FrameType.STATUS]


def state(ns: dict[str, Any]) -> tuple[list[int], list[int]]:
    return list(ns["S"]), list(ns["V"])


def test_a_config_is_applied_persisted_and_reported(lean: LeanBoard) -> None:
    write_config(interval=2, leak_intervals=96, backflow_pulses=10)
    ns = lean.boot()
    t0 = utime.clock[0]
    lean.run_until(t0 + 300)  # the boot status
    heard(ns, config(7, interval_s=5, leak_intervals=3, backflow_pulses=4))
    s, v = ns["S"], ns["V"]
    assert s[F["S_DLC"]] == 7
    assert [s[F["S_OV"] + i] for i in range(5)] == [5, 3, 0, 0, 4]
    assert (v[F["V_INTERVAL"]], v[F["V_LEAK"]], v[F["V_BACKFLOW"]]) == (5, 3, 4)
    lean.run_until(utime.clock[0] + 12_000)
    boot, answer = statuses()[:2]
    assert boot.reason == 1 and boot.interval_s == 2 and boot.leak_intervals == 96
    assert answer.reason == 0  # the answer to the config, with the values applied
    assert (answer.interval_s, answer.leak_intervals, answer.backflow_pulses) == (5, 3, 4)
    readings = [f.body for f in frames() if f.frame_type == FrameType.READING]
    assert readings and all(r.interval_s == 5 for r in readings)
    # after a reset the overrides replace config.txt's values
    ns = lean.boot()
    assert ns["V"][F["V_INTERVAL"]] == 5 and ns["S"][F["S_DLC"]] == 7


@pytest.mark.parametrize("fields", [
    {"interval_s": 70_000},  # within the spec's 1..86400, not the module's 1..65535
    {"interval_s": 5, "leak_intervals": 0},  # one value out of range: none applied
    {"backflow_pulses": 0},
], ids=["interval-70000", "one-of-two-bad", "zero"])  # fmt: skip
def test_a_rejected_config_is_answered_with_the_values_applied(
        lean: LeanBoard, fields: dict[str, int]) -> None:  # fmt: skip
    write_config(interval=2)
    ns = lean.boot()
    lean.run_until(utime.clock[0] + 300)
    heard(ns, config(1, **fields))
    s, v = ns["S"], ns["V"]
    assert s[F["S_DLC"]] == 1  # answered: the counter is used up
    assert [s[F["S_OV"] + i] for i in range(5)] == [0] * 5
    assert v[F["V_INTERVAL"]] == 2 and v[F["V_WANT"]] == 2
    lean.run_until(utime.clock[0] + 500)
    answer = statuses()[-1]
    assert len(statuses()) == 2 and answer.reason == 0
    assert answer.interval_s == 2 and answer.backflow_pulses == 10  # unchanged


def test_a_config_with_only_unknown_keys_is_answered(lean: LeanBoard) -> None:
    write_config()
    ns = lean.boot()
    lean.run_until(utime.clock[0] + 300)
    heard(ns, config(3, extra={25: 1, 40: b"xy"}))  # ignored keys (protocol 4.1)
    assert ns["S"][F["S_DLC"]] == 3 and ns["V"][F["V_WANT"]] == 2
    assert [ns["S"][F["S_OV"] + i] for i in range(5)] == [0] * 5


def test_stale_counters_and_wrong_mics_are_dropped_unseen(lean: LeanBoard) -> None:
    write_config()
    ns = lean.boot()
    lean.run_until(utime.clock[0] + 300)
    heard(ns, config(40, interval_s=9))
    assert ns["S"][F["S_DLC"]] == 40
    lean.run_until(utime.clock[0] + 300)  # its answer
    n = len(frames())
    before = state(ns)
    heard(ns,
          config(40, interval_s=4),  # the same counter again: stale
          config(12, interval_s=4),  # older
          config(40 + 65536, interval_s=4),  # 16 bits on air equal 40's: stale
          config(41, key=bytes(16), interval_s=4),  # not sealed with the module's key
          encode_frame(FrameType.CONFIG, DEV + 1, 42, Config(interval_s=4),
                       bytes(range(1, 17))))  # another module, its own key  # fmt: skip
    assert state(ns) == before
    lean.run_until(utime.clock[0] + 500)
    assert len(frames()) == n  # nothing answered
    heard(ns, config(41, interval_s=4))  # the next one is taken
    assert ns["S"][F["S_DLC"]] == 41 and ns["V"][F["V_INTERVAL"]] == 4


def test_a_time_downlink_is_kept_with_its_ticks(lean: LeanBoard) -> None:
    write_config()
    ns = lean.boot()
    lean.run_until(utime.clock[0] + 300)
    n = len(frames())
    t = utime.clock[0]
    heard(ns, encode_frame(FrameType.TIME, DEV, 2, TimeSync(unix_time=1_764_600_000), KEY))
    v = ns["V"]
    assert v[F["V_TIME"]] == 1_764_600_000 and t <= v[F["V_TTICKS"]] <= utime.clock[0]
    assert ns["S"][F["S_DLC"]] == 2 and not v[F["V_WANT"]]
    lean.run_until(utime.clock[0] + 300)
    assert len(frames()) == n  # a time is not answered


def test_an_ack_then_a_config_in_one_window(lean: LeanBoard) -> None:
    """As the gateway answers an alarm frame (protocol 6.3): the ack, then a command."""
    write_config(backflow_pulses=3, interval=600, rx_window_ms=300)
    lean.boot()
    t0 = utime.clock[0]
    microbit.levels["pin1"] = 1
    microbit.levels["pin0"] = lambda t: 1 if t > t0 + 100 and (t - t0) % 60 < 30 else 0
    sends: list[int] = []

    def gateway(b: bytes) -> None:
        for link in LinkDecoder().feed(b):
            frame = decode_frame(link.payload, KEY)  # type: ignore[union-attr]
            if frame.frame_type == FrameType.ALARM:
                sends.append(frame.counter)
                ack = encode_frame(FrameType.ACK, DEV, frame.counter, Ack(), KEY)
                microbit.rx.append(encode_link(LinkType.DATA, ack))
                microbit.rx.append(encode_link(LinkType.DATA, config(1, backflow_pulses=50)))

    microbit.on_write[0] = gateway
    lean.run_until(t0 + 6_000)
    assert len(sends) == 1  # acked at its first send
    assert lean.ns["V"][F["V_ALEN"]] == 0
    assert lean.ns["V"][F["V_BACKFLOW"]] == 50 and lean.ns["S"][F["S_DLC"]] == 1
    assert statuses()[-1].backflow_pulses == 50


def test_reprovisioning_keeps_the_downlink_counter(lean: LeanBoard) -> None:
    write_config(gen=1)
    ns = lean.boot()
    heard(ns, config(9, interval_s=30))
    assert ns["S"][F["S_OV"]] == 30
    write_config(gen=2)  # a new provisioning: overrides cleared, the counter kept
    ns = lean.boot()
    assert ns["S"][F["S_DLC"]] == 9 and ns["S"][F["S_OV"]] == 0
    assert ns["V"][F["V_INTERVAL"]] == 2
    heard(ns, config(9, interval_s=31))  # an old downlink stays stale
    assert ns["S"][F["S_OV"]] == 0


def test_downlink_limits_are_the_one_config_table(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Each override at its lowest and highest value (meterlink.protocol.module_config)
    is taken, one past either end is refused."""
    monkeypatch.chdir(tmp_path)
    microbit.reset_all()
    write_config()
    ns = LeanBoard("source").boot()
    counter = 0
    for i, name in enumerate(OVERRIDES):
        spec = COMMAND_FIELDS[name]
        for value, taken in ((spec.low - 1, False), (spec.low, True), (spec.high, True),
                             (spec.high + 1, False)):  # fmt: skip
            if not 0 <= value < 2**32:
                continue  # no CBOR unsigned integer says it
            counter += 1
            ns["S"][F["S_OV"] + i] = 0
            # sealed as the gateway does, the body written directly: the gateway's
            # encoder refuses some of these values itself
            body = _cbor_map({(4, 20, 21, 22, 23)[i]: value})
            heard(ns, seal(FrameType.CONFIG, DEV, counter, body, KEY))
            assert ns["S"][F["S_DLC"]] == counter
            assert ns["S"][F["S_OV"] + i] == (value if taken else 0), (name, value)
            if taken:
                assert ns["V"][F[OV_V[i]]] == value


def _cbor_map(m: dict[int, int]) -> bytes:
    from meterlink.protocol import cbor_body

    return cbor_body.encode_body_map(m)


def _link(payload: bytes, link_type: int = 1) -> bytes:
    raw = bytes((link_type,)) + payload
    raw += crc16(raw).to_bytes(2, "big")
    return b"\xc0" + raw.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def test_random_bytes_in_the_window_never_raise_nor_change_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    microbit.reset_all()
    write_config()
    ns = LeanBoard("source").boot()
    ns["V"][F["V_ALEN"]], ns["V"][F["V_AFC"]] = 20, 5  # an alarm frame waits for an ack
    head = bytes((0x28,)) + DEV.to_bytes(4, "big")
    before = state(ns)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(
        st.binary(max_size=200),  # noise
        st.binary(max_size=80).map(_link),  # DATA frames with a good CRC
        st.tuples(st.sampled_from((0x28, 0x29, 0x2A)), st.binary(min_size=6, max_size=59))
        .map(lambda t: _link(bytes((t[0],)) + head[1:] + t[1])),  # for this module
        st.binary(max_size=70).map(lambda b: _link(b, 2)),  # another link type
    ))  # fmt: skip
    def window(data: bytes) -> None:
        microbit.rx.append(data)
        ns["listen"](5)
        after = state(ns)
        # poll() moves only the debouncer's clock; nothing else may change
        assert after[0] == before[0]
        assert [x for i, x in enumerate(after[1]) if i != F["V_TCAND"]] == \
            [x for i, x in enumerate(before[1]) if i != F["V_TCAND"]]

    window()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(
    st.binary(max_size=53),
    st.dictionaries(st.sampled_from((4, 20, 21, 22, 23, 25, 30)),
                    st.integers(0, 2**32 - 1) | st.binary(max_size=4), max_size=6).map(_cbor_map),
), kind=st.sampled_from((FrameType.CONFIG, FrameType.TIME)))  # fmt: skip
def test_any_sealed_body_is_taken_or_answered_never_raises(
        body: bytes, kind: FrameType, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A fresh downlink sealed with the right key but whatever its body: a config is
    applied only if its body is a v2 map (protocol 4.1, the codec's decode_body_map) with
    its values in range, and answered either way; a time is kept only if its body is a
    map with key 30. (Keys a frame type does not use are ignored, whatever their value.)"""
    import os

    from meterlink.protocol import MalformedError, cbor_body

    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("w"))
    try:
        microbit.reset_all()
        write_config()
        ns = LeanBoard("source").boot()
        heard(ns, seal(kind, DEV, 1, body, KEY))
    finally:
        os.chdir(cwd)
    try:
        m: dict[int, Any] | None = cbor_body.decode_body_map(body)
    except MalformedError:
        m = None
    s, v = ns["S"], ns["V"]
    if kind == FrameType.CONFIG:
        assert s[F["S_DLC"]] == 1 and v[F["V_WANT"]] == 2  # answered
        values = [m.get(k) for k in (4, 20, 21, 22, 23)] if m is not None else [None] * 5
        limits = [(COMMAND_FIELDS[n].low, COMMAND_FIELDS[n].high) for n in OVERRIDES]
        ok = m is not None and all(
            x is None or (isinstance(x, int) and lo <= x <= hi)
            for (lo, hi), x in zip(limits, values, strict=True))
        assert [s[F["S_OV"] + i] for i in range(5)] == (
            [x or 0 for x in values] if ok else [0] * 5)
    else:
        kept = m is not None and isinstance(m.get(30), int)
        assert s[F["S_DLC"]] == (1 if kept else 0)
        assert v[F["V_TIME"]] == (m[30] if kept and m is not None else 0)
