"""The nRF51 build's own code under CPython (tests/nrf51/: fake micro:bit, utime,
machine), in both forms: the sources of mp/lean/ and the bundle made from them. Boot
phases, counting with the direction input, readings, the boot status first, alarms
acked, safe mode, the maintenance stop; frames decoded by the CPython codec. Property
tests check its AES, CMAC and CRC against `cryptography` and the protocol's CRC, and its
reading bodies against the codec."""

from __future__ import annotations

import binascii
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import lean_checks
import microbit  # the fake, from tests/nrf51
import pytest
import utime
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lean_board import FORMS, LeanBoard

from meterlink.bundler import FIELDS, MP_DIR, render_config
from meterlink.bundler.features import bundle_features
from meterlink.protocol import (
    Ack,
    Alarm,
    FrameType,
    LinkDecoder,
    LinkFrame,
    LinkType,
    Reading,
    Status,
    decode_frame,
    decode_received,
    encode_frame,
    encode_link,
)
from meterlink.protocol.bodies import KEY_NAMES
from meterlink.protocol.cbor_body import decode_body_map
from meterlink.protocol.crypto import as_device_keys, ctr_xor
from meterlink.protocol.frame import seal

KEY = bytes(range(16))
DEV = 0x01020304
V_ERR, V_ALEN, S_FLAGS, S_REG = (int(FIELDS[n]) for n in ("V_ERR", "V_ALEN", "S_FLAGS", "S_REG"))


@pytest.fixture(params=FORMS)
def lean(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[LeanBoard]:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    microbit.reset_all()
    yield LeanBoard(request.param)
    microbit.reset_all()


def gateway_downlink(typ: int, counter: int, body: bytes, key: bytes) -> bytes:
    """lean_checks' downlink(): sealed by the gateway's encoder (meterlink.protocol), as a
    SLIP link frame; only those lean_checks.DOWNLINKS lists (the MicroPython run gets
    that table made here, test_wasm.py)."""
    assert (typ, counter, body, key) in lean_checks.DOWNLINKS, "add it to DOWNLINKS"
    return encode_link(LinkType.DATA, seal(FrameType(typ), lean_checks.DEV, counter, body,
                                           as_device_keys(key)))  # fmt: skip


def codec_reads_the_same(data: bytes, key: bytes, read: list[tuple[Any, ...]]) -> None:
    """What lean_checks.uplinks() read with the sources' own crypto is what the
    protocol's decoder reads: every frame's type, device, counter, body map and size."""
    got = []
    highest = -1
    for link in LinkDecoder().feed(data):
        assert isinstance(link, LinkFrame) and link.link_type == LinkType.DATA, link
        frame = decode_received(link.payload, key, highest=highest, uplink=True)
        highest = max(highest, frame.counter)
        text = ctr_xor(as_device_keys(key).enc, 0, frame.device_id, frame.counter,
                       link.payload[7:-4])  # fmt: skip
        got.append((int(frame.frame_type), frame.device_id, frame.counter,
                    decode_body_map(text), len(link.payload)))  # fmt: skip
    assert got == read


@pytest.mark.parametrize("name", sorted(n for n in vars(lean_checks) if n.startswith("check_")))
def test_lean_check(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lean_checks.py (also run under MicroPython 1.27 by test_wasm.py) under CPython,
    the frames it reads checked by the protocol's decoder."""
    monkeypatch.chdir(tmp_path)
    lean_checks.DOWN[0], lean_checks.SEEN[0] = gateway_downlink, codec_reads_the_same
    lean_checks.setup(str(tmp_path) + "/", str(MP_DIR / "lean") + "/")
    getattr(lean_checks, name)()


def write_config(**kw: Any) -> None:
    values = {"id": DEV, "key": KEY, "gen": 1, "interval": 2, "rx_window_ms": 100,
              "pin_pulse": "pin0", "pin_dir": "pin1", **kw}  # fmt: skip
    Path("config.txt").write_text(render_config(board="nrf51", **values))


def pulses(start: int, period: int, high: int, count: int) -> Any:
    def level(t: int) -> int:
        k = (t - start) // period
        return 1 if t >= start and k < count and (t - start) % period < high else 0

    return level


def frames(key: bytes = KEY) -> list[Any]:
    decoder = LinkDecoder()
    links = decoder.feed(b"".join(microbit.tx))
    return [decode_frame(link.payload, key) for link in links]  # type: ignore[union-attr]


def test_boots_counts_and_sends_the_boot_status_first(lean: LeanBoard) -> None:
    write_config(register=500)
    lean.boot()
    assert Path("st1").exists() and not Path("cf").exists() and not Path("rt").exists()
    t0 = utime.clock[0]
    microbit.levels["pin0"] = pulses(t0 + 100, 60, 30, 40)
    microbit.levels["pin1"] = lambda t: 1 if t0 + 100 + 60 * 30 <= t < t0 + 100 + 60 * 35 else 0
    lean.run_until(t0 + 5 * 2000 + 300)
    got = frames()
    assert got[0].frame_type == FrameType.STATUS and isinstance(got[0].body, Status)
    assert got[0].body.fw_version == 259 and got[0].body.error in (None, 0)
    readings = [f.body for f in got if f.frame_type == FrameType.READING]
    assert len(readings) >= 4 and all(isinstance(r, Reading) for r in readings)
    # 35 forward pulses, 5 reverse (a debt paid back by the next 5 forward ones)
    assert readings[-1].register == 500 + 35 - 5 == lean.ns["S"][S_REG]
    assert sum(sum(r.deltas[:1]) for r in readings) <= 35
    assert [f.counter for f in got] == sorted({f.counter for f in got})  # never reused
    assert all(len(f.payload) <= 51 for f in got)


def test_backflow_alarm_is_resent_until_its_ack(lean: LeanBoard) -> None:
    write_config(backflow_pulses=3, interval=600, rx_window_ms=200)
    lean.boot()
    t0 = utime.clock[0]
    microbit.levels["pin1"] = 1
    microbit.levels["pin0"] = pulses(t0 + 100, 60, 30, 4)
    sends: list[int] = []

    def gateway(b: bytes) -> None:
        for link in LinkDecoder().feed(b):
            frame = decode_frame(link.payload, KEY)  # type: ignore[union-attr]
            if frame.frame_type == FrameType.ALARM:
                sends.append(frame.counter)
                if len(sends) == 2:  # the second send is acked in its window
                    ack = encode_frame(FrameType.ACK, DEV, frame.counter, Ack(), KEY)
                    microbit.rx.append(encode_link(LinkType.DATA, ack))

    microbit.on_write[0] = gateway
    lean.run_until(t0 + 12_000)
    assert len(sends) == 2 and sends[0] == sends[1]  # the same frame, sent again
    assert lean.ns["V"][V_ALEN] == 0  # acked: no more sends
    alarms = [f.body for f in frames() if f.frame_type == FrameType.ALARM]
    assert isinstance(alarms[0], Alarm) and alarms[0].raised & 4  # backflow


@pytest.mark.parametrize(
    ("text", "code"),
    [(None, 1), (b"id=1\n", 3), (b"\xff\xfe garbage", 2), (b"no equals sign\n", 2)],
    ids=["missing", "no-key", "garbage", "syntax"],
)
def test_safe_mode_sends_its_error_code_then_waits_for_maintenance(
    lean: LeanBoard, text: bytes | None, code: int
) -> None:
    if text is not None:
        Path("config.txt").write_bytes(text)
    ns = lean.boot()
    assert ns["V"][V_ERR] == code
    start = utime.clock[0]
    microbit.levels["pin8"] = lambda t: 1 if t > start + 3000 else 0
    ns["run"]()  # the status frame, then a wait for the maintenance input
    got = frames(bytes(16))  # no key was read: the module seals with zeros (protocol 4.7)
    assert len(got) == 1 and isinstance(got[0].body, Status)
    assert got[0].body.error == code
    assert ns["S"][S_FLAGS] == 1  # the maintenance stop committed a clean record


def test_the_maintenance_input_stops_the_run_phase(lean: LeanBoard) -> None:
    write_config()
    ns = lean.boot()
    start = utime.clock[0]
    microbit.levels["pin8"] = lambda t: 1 if t > start + 2500 else 0
    ns["run"]()  # returns: main.py then stops at the REPL
    assert ns["S"][S_FLAGS] == 1
    assert any(f.frame_type == FrameType.READING for f in frames())


def test_a_torn_rt_means_boot_again(lean: LeanBoard) -> None:
    import machine

    write_config()
    assert not lean.phase1()
    assert not lean.phase2()
    Path("rt").write_bytes(Path("rt").read_bytes()[:122])  # a cut while boot.py wrote it
    with pytest.raises(machine.Reset):
        lean.phase3()
    assert not Path("rt").exists()  # removed: the next boot reads config.txt again


# ---- properties of the nRF51 build's crypto and bodies (its source form)


@pytest.fixture(scope="module")
def crypto() -> dict[str, Any]:
    """boot phase 2's files and seal.py in one namespace (no filesystem needed)."""
    import tempfile

    with tempfile.TemporaryDirectory():
        board = LeanBoard("source")
        ns = board._namespace(("crc", "aes", "boot", "seal", "counting"))
    ns["F"] = bytearray(80)
    ns["V"] = [0] * 32
    ns["debounce"] = ns["poll"]  # counting.py's
    ns["poll"] = int  # the AES's pulse poll: nothing to count here
    return ns


def schedules(ns: dict[str, Any], root: bytes) -> list[bytes]:
    out: list[bytes] = []

    class W:
        def write(self, b: bytes) -> None:
            out.append(bytes(b))

    ns["keys"](W(), root)
    return out  # K_enc, K_mic schedules, K1, K2


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), block=st.binary(min_size=16, max_size=16))
def test_aes_matches_cryptography(crypto: dict[str, Any], key: bytes, block: bytes) -> None:
    b = bytearray(block)
    crypto["enc"](crypto["ks"](key), b)
    ref = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(block)
    assert bytes(b) == ref


@settings(max_examples=60, deadline=None)
@given(root=st.binary(min_size=16, max_size=16), msg=st.binary(max_size=70))
def test_cmac_matches_cryptography(crypto: dict[str, Any], root: bytes, msg: bytes) -> None:
    crypto["K"] = [bytearray(k) for k in schedules(crypto, root)]
    m = bytearray(16)
    m[0] = 2
    k_mic = Cipher(algorithms.AES(root), modes.ECB()).encryptor().update(bytes(m))
    mac = CMAC(algorithms.AES(k_mic))
    mac.update(msg)
    assert bytes(crypto["cmac"](bytearray(msg), len(msg))) == mac.finalize()


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=80))
def test_crc_is_crc16_ibm_3740(crypto: dict[str, Any], data: bytes) -> None:
    assert crypto["crc"](data, len(data)) == binascii.crc_hqx(data, 0xFFFF)


@settings(max_examples=60, deadline=None)
@given(
    register=st.integers(0, 2**32 - 1),
    deltas=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=23),
    iseq=st.integers(1, 2**32 - 1),
)
def test_reading_bodies_decode_with_the_codec(
    crypto: dict[str, Any], register: int, deltas: list[int], iseq: int
) -> None:
    from array import array

    from meterlink.protocol import body_from_map, cbor_body

    ns = crypto
    s = array("L", [0] * 15)
    v = array("L", [0] * 32)
    s[S_REG], s[int(FIELDS["S_ISEQ"])] = register, iseq
    v[int(FIELDS["V_HLEN"])], v[int(FIELDS["V_WEIGHT"])], v[int(FIELDS["V_UNIT"])] = (
        len(deltas), 1, 1)  # fmt: skip
    v[int(FIELDS["V_INTERVAL"])] = 900
    v[int(FIELDS["V_T0"])] = utime.clock[0] + 10**6  # the interval has just begun
    ns["S"], ns["V"] = s, v
    ns["B"] = bytearray(62)  # the record as committed: a reading carries its register
    struct.pack_into("<15I", ns["B"], 0, *s)
    ns["Q"] = [None, None, array("L", reversed(deltas))]  # oldest first, HPOS 0
    n = ns["body"](0)
    body = body_from_map(FrameType.READING, cbor_body.decode_body_map(bytes(ns["F"][9 : 9 + n])))
    assert isinstance(body, Reading) and body.register == register
    assert 1 <= len(body.deltas) <= len(deltas) and n <= 40
    assert list(body.deltas) == deltas[: len(body.deltas)]  # newest first
    assert body.interval_seq == iseq - 1


U32 = st.integers(0, 2**32 - 1)


@settings(max_examples=150, deadline=None)
@example(err=0, alarms=63, interval=65535, thresholds=(65535, 2**32 - 1, 65535, 2**32 - 1),
         register=2**32 - 1, reverse=0, weight=65535, unit=2, resets=2**32 - 1)
@given(err=st.sampled_from((0, 1, 2, 3, 4)), alarms=st.integers(0, 63),
       interval=st.integers(1, 65535), thresholds=st.tuples(*[st.one_of(st.just(0), U32)] * 4),
       register=U32, reverse=U32, weight=st.integers(1, 65535), unit=st.integers(0, 2),
       resets=U32)  # fmt: skip
def test_status_bodies_fit_and_keep_the_priority_order(
    crypto: dict[str, Any], err: int, alarms: int, interval: int,
    thresholds: tuple[int, int, int, int], register: int, reverse: int, weight: int,
    unit: int, resets: int,
) -> None:
    """counting.py's status body (status_detail, the sources as written) is what the
    protocol's encoder sends for the same values (protocol 4.4: the optional keys in
    priority order, each only if it still fits, a later smaller one after one that did
    not); never over 51 bytes; in safe mode (codes 1-3) only the error code."""
    from array import array

    from meterlink.protocol import body_from_map, cbor_body
    from meterlink.protocol.bodies import STATUS_PRIORITY

    ns = crypto
    s = array("L", [0] * 15)
    v = array("L", [0] * 40)
    s[S_REG], s[int(FIELDS["S_REV"])], s[int(FIELDS["S_RESETS"])] = register, reverse, resets
    for name, value in (("V_ERR", err), ("V_ACT", alarms), ("V_INTERVAL", interval),
                        ("V_WEIGHT", weight), ("V_UNIT", unit), ("V_LEAK", thresholds[0]),
                        ("V_BURST", thresholds[1]), ("V_BURSTN", thresholds[2]),
                        ("V_BACKFLOW", thresholds[3])):  # fmt: skip
        v[int(FIELDS[name])] = value
    ns["S"], ns["V"] = s, v
    ns["B"] = bytearray(62)  # the record as committed (up() commits before a status)
    ns["Q"] = [None, None, array("L")]
    struct.pack_into("<15I", ns["B"], 0, *s)
    n = ns["body"](2)
    sent = cbor_body.decode_body_map(bytes(ns["F"][9 : 9 + n]))
    assert 11 + n <= 51 and list(sent) == sorted(sent)
    status = body_from_map(FrameType.STATUS, sent)
    assert isinstance(status, Status) and status.reason == (2 if err % 4 else 0)
    if err % 4:
        assert set(sent) == {9, 10, 11, 14, 15} and status.error == err
        return
    had = {8: alarms, 4: interval, 1: register, 13: reverse, 2: weight, 3: unit,
           **{k: x for k, x in zip((20, 21, 22, 23), thresholds, strict=True) if x}}
    if err:
        had[15] = err
    full = Status(battery_pct=status.battery_pct, fw_version=status.fw_version,
                  resets=resets, reason=0, **{KEY_NAMES[k]: x for k, x in had.items()})
    ref = decode_frame(encode_frame(FrameType.STATUS, DEV, 1, full, KEY), KEY)
    assert status == ref.body
    hand = {k: sent[k] for k in (9, 10, 11, 14)}
    for k in STATUS_PRIORITY:  # protocol 4.4 by hand: each key that still fits 51 bytes
        if k in had and 11 + len(cbor2.dumps(dict(sorted({**hand, k: had[k]}.items())))) <= 51:
            hand[k] = had[k]
    assert sent == dict(sorted(hand.items()))


@settings(max_examples=60, deadline=None)
@given(
    root=st.binary(min_size=16, max_size=16),
    dev=st.integers(0, 2**32 - 1),
    fc=st.integers(0, 2**32 - 1),
    body=st.binary(max_size=40),
)
def test_seal_matches_ctr_and_cmac(crypto: dict[str, Any], root: bytes, dev: int, fc: int,
                                   body: bytes) -> None:  # fmt: skip
    """seal.py against `cryptography`: AES-CTR with K_enc over the body, the MIC (CMAC
    with K_mic) over the 9-byte header with the whole counter, 16 counter bits on air."""
    import struct

    def ecb(key: bytes, block: bytes) -> bytes:
        return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(block)

    ns = crypto
    ns["K"] = [bytearray(k) for k in schedules(ns, root)]
    ns["V"] = [0] * 40
    ns["V"][int(FIELDS["V_DEV"])] = dev
    f = ns["F"]
    f[9 : 9 + len(body)] = body
    n = ns["seal"](0x20, fc, len(body))
    k_enc, k_mic = ecb(root, b"\x01" + bytes(15)), ecb(root, b"\x02" + bytes(15))
    stream = b"".join(ecb(k_enc, struct.pack(">BIBIIBB", 1, 0, 0, dev, fc, 0, i + 1))
                      for i in range(3))  # fmt: skip
    ct = bytes(a ^ b for a, b in zip(body, stream, strict=False))
    mac = CMAC(algorithms.AES(k_mic))
    mac.update(struct.pack(">BII", 0x20, dev, fc) + ct)  # the MIC covers all 32 bits
    assert bytes(f[:n]) == struct.pack(">BIH", 0x20, dev, fc & 0xFFFF) + ct + mac.finalize()[:4]


@settings(max_examples=60, deadline=None)
@given(pulses=st.lists(st.tuples(st.integers(15, 60), st.integers(15, 60), st.integers(0, 5)),
                       min_size=1, max_size=25))  # fmt: skip
def test_debounce_counts_pulses_and_ignores_glitches(
    crypto: dict[str, Any], pulses: list[tuple[int, int, int]]
) -> None:
    """counting.py's poll(), run once per millisecond as the main loop does: pulses high
    h ms then low l ms, some with a glitch of 1-5 ms (a level counts once read in two
    samples 5 ms apart) in the middle of the low, count once each."""
    from array import array

    ns = crypto
    highs: list[tuple[int, int]] = []
    t = utime.clock[0] + 100
    for h, low, glitch in pulses:
        highs.append((t, t + h))
        if glitch:
            highs.append((t + h + low // 2, t + h + low // 2 + glitch))
        t += h + low
    ns["S"], ns["V"] = array("L", [0] * 15), array("L", [0] * 40)
    ns["Q"] = [lambda: int(any(a <= utime.clock[0] < b for a, b in highs)), None, None]
    while utime.clock[0] < t + 50:
        ns["debounce"]()
        utime.sleep_ms(1)
    assert ns["S"][S_REG] == len(pulses)


@settings(max_examples=40, deadline=None)
@given(commits=st.integers(1, 12), cut=st.integers(0, 62))
def test_a_cut_anywhere_in_a_write_loses_at_most_that_commit(commits: int, cut: int) -> None:
    """counting.py's commit() writes the record file that does not hold the newest copy:
    a cut after any byte of it, and the next boot (boot.py) starts from that commit if
    it was whole, else from the one before."""
    import os
    import tempfile

    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        try:
            microbit.reset_all()
            write_config(register=7)
            board = LeanBoard("source")
            ns = board.boot()  # its own commit: register 7
            for i in range(commits):
                ns["S"][S_REG] = 100 + i
                ns["commit"]()
            newest = Path(f"st{ns['S'][0] & 1}")
            newest.write_bytes(newest.read_bytes()[:cut])  # the last write, cut short
            s = board.boot()["S"]
        finally:
            os.chdir(cwd)
    before = 100 + commits - 2 if commits > 1 else 7
    assert s[S_REG] == (100 + commits - 1 if cut == 62 else before)


# ---- the alarms that came with the feature blocks (a gap of the lean build until
# then): on the sources as written, and on an nRF51 bundle with the feature


def test_a_tamper_loop_opening_raises_the_tamper_alarm(lean: LeanBoard) -> None:
    write_config(pin_tamper="pin2", interval=600, rx_window_ms=50)
    if lean.form == "bundle":  # not in the nRF51's shipped set: a bundle with it
        lean = LeanBoard("bundle", features=bundle_features("nrf51") | {"tamper_alarm"})
    lean.boot()
    t0 = utime.clock[0]
    microbit.levels["pin2"] = lambda t: 1 if t > t0 + 500 else 0  # the tamper loop opens
    lean.run_until(t0 + 2000)
    alarms = [f.body for f in frames() if f.frame_type == FrameType.ALARM]
    assert alarms and isinstance(alarms[0], Alarm) and alarms[0].raised & 8


def test_a_burst_raises_the_burst_alarm(lean: LeanBoard) -> None:
    write_config(burst_pulses=5, burst_intervals=2, interval=1, rx_window_ms=10)
    if lean.form == "bundle":
        lean = LeanBoard("bundle", features=bundle_features("nrf51") | {"burst_alarm"})
    lean.boot()
    t0 = utime.clock[0]
    microbit.levels["pin0"] = pulses(t0 + 100, 40, 20, 30)  # 30 pulses in 1.2 s
    lean.run_until(t0 + 3500)
    readings = [f.body for f in frames() if f.frame_type == FrameType.READING]
    assert any(isinstance(r, Reading) and r.alarms & 2 for r in readings)


# ---- status_detail: the status frame's optional keys (protocol 4.4)

DETAIL = bundle_features("nrf51") | {"status_detail"}
STATUS_OPTIONAL = ("error", "alarms", "interval_s", "leak_intervals", "burst_pulses",
                   "burst_intervals", "backflow_pulses", "register", "reverse",
                   "pulse_weight", "unit")  # protocol 4.4's priority order


def test_the_status_frame_carries_the_register_and_the_alarms(lean: LeanBoard) -> None:
    write_config(register=1234, weight=10, unit=0, burst_pulses=7, burst_intervals=3)
    if lean.form == "bundle":
        lean = LeanBoard("bundle", features=DETAIL)
    lean.boot()
    lean.run_until(utime.clock[0] + 300)
    status = frames()[0].body
    assert isinstance(status, Status) and status.reason == 1
    assert (status.register, status.alarms, status.interval_s, status.reverse,
            status.pulse_weight, status.unit) == (1234, 0, 2, 0, 10, 0)
    assert (status.leak_intervals, status.burst_pulses, status.burst_intervals,
            status.backflow_pulses) == (96, 7, 3, 10)
    assert status.error is None
    # the gateway's message for it: the module's own weight and unit, not the key file's
    from meterlink.edge.messages import build_body
    from meterlink.edge.registry import Device

    kind, out = build_body(frames()[0], Device(DEV, KEY, "WM-1"), "gw", 1_700_000_000.0)
    assert kind == "status" and out["reason"] == "boot" and out["alarms"] == []
    assert (out["register"], out["volume_l"], out["pulse_weight"], out["unit"],
            out["reverse"]) == (1234, 12.34, 10, "mL", 0)
    assert (out["interval_s"], out["leak_intervals"], out["burst_pulses"]) == (2, 96, 7)


def test_without_status_detail_the_nrf51_status_has_only_the_required_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    microbit.reset_all()
    write_config(register=1234)
    lean = LeanBoard("bundle")  # the nRF51 as shipped
    lean.boot()
    lean.run_until(utime.clock[0] + 300)
    status = frames()[0].body
    assert isinstance(status, Status)
    assert all(getattr(status, name) is None for name in STATUS_OPTIONAL)


def test_a_safe_mode_status_sends_no_value_the_module_does_not_have(lean: LeanBoard
                                                                    ) -> None:  # fmt: skip
    write_config(register=1234)
    if lean.form == "bundle":
        lean = LeanBoard("bundle", features=DETAIL)
    lean.boot()  # a record with register 1234 on file
    good = Path("config.txt").read_text()  # then a pin the board refuses
    Path("config.txt").write_text(good.replace("pin_pulse=pin0", "pin_pulse=pin8"))
    microbit.tx.clear()
    ns = lean.boot()
    assert ns["V"][V_ERR] == 3 and ns["S"][S_REG] == 1234
    start = utime.clock[0]
    microbit.levels["pin8"] = lambda t: 1 if t > start + 500 else 0
    ns["run"]()  # the status frame, then a wait for the maintenance input
    got = frames()
    assert len(got) == 1
    status = got[0].body
    assert isinstance(status, Status) and status.reason == 2 and status.error == 3
    assert [n for n in STATUS_OPTIONAL if getattr(status, n) is not None] == ["error"]


def test_a_corrupt_store_status_has_the_register_from_the_config(lean: LeanBoard) -> None:
    write_config(register=777)
    if lean.form == "bundle":
        lean = LeanBoard("bundle", features=DETAIL)
    Path("st0").write_bytes(b"spoilt")
    lean.boot()
    lean.run_until(utime.clock[0] + 300)
    status = frames()[0].body
    assert isinstance(status, Status) and status.error == 4 and status.register == 777
    assert status.alarms is not None and status.unit is not None


