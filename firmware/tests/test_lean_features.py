"""The optional features of the nRF51 build (mp/lean/, `if HAS_X:` blocks) under CPython,
with the fakes of tests/nrf51: each in the plain source (every feature on), in a bundle
made with that feature alone, and absent from a bundle made without it. Frames are
decoded with the gateway's codec (meterlink.protocol)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import microbit  # the fake, from tests/nrf51
import pytest
import utime
from lean_board import LeanBoard
from test_lean import DEV, KEY, frames, pulses, write_config

from meterlink.bundler.features import POSSIBLE_FEATURES
from meterlink.protocol import AlarmFlags, FrameType, Status

# (form, features): the source (all on), the bundle with the feature alone, without it
VARIANTS = ("source", "alone", "without")


@pytest.fixture
def fs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    microbit.reset_all()
    yield tmp_path
    microbit.reset_all()


def board(variant: str, feature: str) -> LeanBoard:
    if variant == "source":
        return LeanBoard("source")
    if variant == "alone":
        return LeanBoard("bundle", {feature})
    return LeanBoard("bundle", POSSIBLE_FEATURES["nrf51"] - {feature})


def alarms(flag: AlarmFlags) -> list[Any]:
    return [f.body for f in frames()
            if f.frame_type == FrameType.ALARM and f.body.raised & flag]  # fmt: skip


def statuses() -> list[Status]:
    return [f.body for f in frames() if f.frame_type == FrameType.STATUS]


@pytest.mark.parametrize("variant", VARIANTS)
def test_burst_alarm_after_burst_intervals_at_burst_pulses(fs: Path, variant: str) -> None:
    write_config(interval=2, burst_pulses=8, burst_intervals=2, leak_intervals=50)
    lean = board(variant, "burst_alarm")
    lean.boot()
    t0 = utime.clock[0]
    # 10 pulses in each of three intervals: a burst once two are behind
    microbit.levels["pin0"] = pulses(t0 + 100, 180, 60, 30)
    lean.run_until(t0 + 2 * 2000 + 600)
    early = alarms(AlarmFlags.BURST)
    lean.run_until(t0 + 3 * 2000 + 600)
    raised = alarms(AlarmFlags.BURST)
    if variant == "without":
        assert not raised and lean.ns["V"][20] == 0  # V_NBURST never moves
        return
    assert not early or len(early) == 1  # not before the second interval at burst flow
    assert len(raised) == 1 and raised[0].alarms & AlarmFlags.BURST
    assert not raised[0].raised & AlarmFlags.LEAK


@pytest.mark.parametrize("variant", VARIANTS)
def test_tamper_alarm_within_a_check_of_the_loop_opening(fs: Path, variant: str) -> None:
    write_config(interval=600, pin_tamper="pin2")
    lean = board(variant, "tamper_alarm")
    lean.boot()
    t0 = utime.clock[0]
    lean.run_until(t0 + 1000)
    assert not alarms(AlarmFlags.TAMPER)
    microbit.levels["pin2"] = 1  # the tamper loop opens
    lean.run_until(t0 + 1300)
    raised = alarms(AlarmFlags.TAMPER)
    if variant == "without":
        assert not raised
        return
    assert len(raised) == 1 and raised[0].alarms & AlarmFlags.TAMPER
    microbit.levels["pin2"] = 0  # closed again: the flag clears, no new alarm
    lean.run_until(t0 + 1600)
    assert not lean.ns["V"][10] & AlarmFlags.TAMPER  # V_ACT
    assert len(alarms(AlarmFlags.TAMPER)) == 1


@pytest.mark.parametrize("variant", VARIANTS)
def test_low_battery_alarm_from_the_supervisor_input(fs: Path, variant: str) -> None:
    write_config(interval=2)
    microbit.levels["pin16"] = 1  # the supply supervisor: below 10 %
    lean = board(variant, "low_battery_alarm")
    lean.boot()
    t0 = utime.clock[0]
    lean.run_until(t0 + 2000 + 600)
    raised = alarms(AlarmFlags.LOW_BATTERY)
    boot_status = statuses()[0]
    if variant == "without":
        assert not raised and boot_status.battery_pct == 100
        return
    assert boot_status.battery_pct == 9  # below the alarm's 10 %
    assert len(raised) == 1
    microbit.levels["pin16"] = 0
    lean.run_until(t0 + 2 * 2000 + 600)
    assert not lean.ns["V"][10] & AlarmFlags.LOW_BATTERY  # cleared at the next interval end


def test_pin16_is_not_a_meter_input_with_the_low_battery_alarm(fs: Path) -> None:
    write_config(pin_dir="pin16")
    ns = LeanBoard("bundle", {"low_battery_alarm"}).boot()
    assert ns["V"][23] == 3  # V_ERR: an invalid value (safe mode)
    microbit.reset_all()
    write_config(pin_dir="pin16")
    assert LeanBoard("bundle", set()).boot()["V"][23] == 0


def jump(lean: LeanBoard, t: int, then: int = 400) -> None:
    """The fake clock moved on to `t` (nothing to count meanwhile), then `then` ms run."""
    utime.clock[0] = max(utime.clock[0], t)
    lean.run_until(t + then)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_status_frame_once_a_day_of_intervals(fs: Path, variant: str) -> None:
    write_config(interval=3600)
    lean = board(variant, "daily_status")
    lean.boot()
    t0 = utime.clock[0]
    lean.run_until(t0 + 500)
    for k in range(1, 24):
        jump(lean, t0 + k * 3_600_000)
    assert [s.reason for s in statuses()] == [1]  # only the boot status, in 23 hours
    jump(lean, t0 + 24 * 3_600_000)
    jump(lean, t0 + 25 * 3_600_000)
    got = [s.reason for s in statuses()]
    readings = [f for f in frames() if f.frame_type == FrameType.READING]
    assert len(readings) == 25
    if variant == "without":
        assert got == [1]
        return
    assert got == [1, 0]  # the boot status, then one periodic status after 24 intervals
    assert statuses()[1].fw_version == statuses()[0].fw_version


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_safe_mode_status_is_repeated_every_300_s(fs: Path, variant: str) -> None:
    Path("config.txt").write_bytes(b"id=1\n")  # no key: safe mode, code 3
    lean = board(variant, "safe_mode_repeat")
    ns = lean.boot()
    start = utime.clock[0]
    microbit.levels["pin8"] = lambda t: 1 if t > start + 700_000 else 0
    ns["run"]()  # until the maintenance input
    got = frames(bytes(16))  # no key was read: sealed with zeros (protocol 4.7)
    assert all(isinstance(f.body, Status) and f.body.error == 3 and f.body.reason == 2
               for f in got)  # fmt: skip
    assert len({f.counter for f in got}) == len(got)
    assert len(got) == (1 if variant == "without" else 3)  # at 0, 300 and 600 s


def test_the_frames_of_a_bundle_with_every_feature_decode(fs: Path) -> None:
    write_config(interval=2, pin_tamper="pin2", burst_pulses=3, burst_intervals=1)
    lean = LeanBoard("bundle", POSSIBLE_FEATURES["nrf51"])
    lean.boot()
    t0 = utime.clock[0]
    microbit.levels["pin0"] = pulses(t0 + 100, 100, 50, 15)
    lean.run_until(t0 + 2 * 2000 + 600)
    got = frames()
    assert got[0].device_id == DEV and got[0].frame_type == FrameType.STATUS
    assert alarms(AlarmFlags.BURST)
    assert KEY  # the frames were unsealed with the configured key
