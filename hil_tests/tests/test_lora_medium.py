"""The LoRa medium in simulated time: airtime, collisions and capture, sensitivity, half
duplex, and seeded path loss."""

from __future__ import annotations

import pytest

from meterlink.hil.lora_medium import LoRaMedium, RadioParams, Reception
from meterlink.protocol.lora import airtime_s


def medium_with(*senders: str, seed: int = 1) -> tuple[LoRaMedium, list[Reception]]:
    m = LoRaMedium(seed=seed)
    got: list[Reception] = []
    m.add_radio("gw", listening=lambda tx: True, on_reception=got.append)
    for s in senders:
        m.add_radio(s)
    return m, got


def outcomes(got: list[Reception]) -> dict[str, str]:
    return {r.tx.source: r.outcome for r in got}


def test_a_frame_lasts_its_airtime_and_is_handed_out_when_it_ends():
    m, got = medium_with("a")
    m.set_path_loss("a", "gw", 100)
    tx = m.transmit("a", bytes(51), RadioParams(sf=12), start=10.0)
    assert tx.end - tx.start == pytest.approx(airtime_s(51, 12)) == pytest.approx(2.465792)
    assert m.resolve(12.0) == [] and got == []
    [r] = m.resolve(12.5)
    assert r.outcome == "received" and r.rssi == 14 - 100 and r.snr == pytest.approx(20.0)


@pytest.mark.parametrize(("delta_db", "a", "b"), [
    (0, "collision", "collision"),
    (5, "collision", "collision"),  # below the 6 dB capture margin
    (6, "received", "collision"),  # the stronger is captured, the weaker lost
    (15, "received", "collision"),
])
def test_overlapping_frames_on_one_channel_and_sf_collide_unless_one_is_6_db_stronger(
        delta_db, a, b):
    m, got = medium_with("a", "b")
    m.set_path_loss("a", "gw", 110)
    m.set_path_loss("b", "gw", 110 + delta_db)
    p = RadioParams(sf=9)
    m.transmit("a", bytes(30), p, start=0.0)
    m.transmit("b", bytes(30), p, start=0.1)  # overlaps the end of a
    m.resolve(5)
    assert outcomes(got) == {"a": a, "b": b}


def test_other_sf_other_channel_and_back_to_back_frames_do_not_collide():
    m, got = medium_with("a", "b", "c", "d")
    for s in "abcd":
        m.set_path_loss(s, "gw", 110)
    m.transmit("a", bytes(30), RadioParams(sf=9), start=0.0)
    m.transmit("b", bytes(30), RadioParams(sf=10), start=0.0)
    t = m.transmit("c", bytes(30), RadioParams(sf=9, freq_mhz=868.3), start=0.0)
    m.transmit("d", bytes(30), RadioParams(sf=9), start=t.end)  # starts as a ends
    m.resolve(10)
    assert set(outcomes(got).values()) == {"received"}


def test_frames_below_the_sf_sensitivity_are_lost():
    m, got = medium_with("far")
    m.set_path_loss("far", "gw", 14 + 130)  # -130 dBm: SF10 and up only
    for i, sf in enumerate(range(7, 13)):
        m.transmit("far", bytes(20), RadioParams(sf=sf), start=10.0 * i)
    m.resolve(100)
    assert [r.outcome for r in got] == ["below_sensitivity"] * 3 + ["received"] * 3
    assert all(r.snr < 0 for r in got)


def test_a_radio_does_not_hear_while_it_transmits_and_only_when_listening():
    m = LoRaMedium()
    got: list[Reception] = []
    # listening() is asked about the frame's start: here the window opens at 0.5 s
    m.add_radio("mod", listening=lambda tx: tx.start >= 0.5, on_reception=got.append)
    m.add_radio("gw")
    m.set_path_loss("mod", "gw", 80)
    m.transmit("gw", bytes(13), RadioParams(sf=7), start=0.0)  # window closed
    m.transmit("mod", bytes(13), RadioParams(sf=7, freq_mhz=868.3), start=1.0)
    m.transmit("gw", bytes(13), RadioParams(sf=7), start=1.01)  # the module is on the air
    m.transmit("gw", bytes(13), RadioParams(sf=7), start=2.0)
    m.resolve(3)
    assert [r.outcome for r in got] == ["half_duplex", "received"]


def test_path_loss_is_seeded_per_pair():
    def losses(seed: int) -> list[float]:
        m = LoRaMedium(seed=seed)
        m.add_radio("gw", position=(0, 0), listening=lambda tx: True)
        for i in range(5):
            m.add_radio(f"m{i}", position=(100.0 * (i + 1), 0))
        return [m.path_loss_db(f"m{i}", "gw") for i in range(5)]

    assert losses(3) == losses(3)
    assert losses(3) != losses(4)
    far = LoRaMedium(seed=3, shadowing_db=0)
    far.add_radio("gw", listening=lambda tx: True)
    far.add_radio("x", position=(1000, 0))
    assert far.path_loss_db("x", "gw") == pytest.approx(40 + 27 * 3)
