"""LoRa time on air against figures published for Semtech's formula (LoRa calculator,
LoRaWAN regional-parameter airtime tables) and the data-rate names of the packet forwarder."""

from __future__ import annotations

import pytest

from meterlink.protocol.lora import DataRate, LoRaParamError, airtime_s, sub_band


@pytest.mark.parametrize(("size", "sf", "bw", "codr", "ms"), [
    (51, 12, 125_000, "4/5", 2465.792),  # the protocol's uplink limit at SF12
    (13, 12, 125_000, "4/5", 1155.072),  # an ack at SF12
    (13, 7, 125_000, "4/5", 46.336),
    (51, 7, 125_000, "4/5", 102.656),
    (51, 10, 125_000, "4/5", 616.448),
    (51, 11, 125_000, "4/5", 1314.816),  # low data rate optimisation on from SF11
    (20, 9, 125_000, "4/8", 246.784),
    (51, 7, 250_000, "4/5", 51.328),
])
def test_airtime_matches_published_figures(size, sf, bw, codr, ms):
    assert airtime_s(size, sf, bw, codr) * 1000 == pytest.approx(ms, abs=0.001)


def test_longer_payloads_never_take_less_time():
    for sf in range(7, 13):
        times = [airtime_s(n, sf) for n in range(0, 256)]
        assert times == sorted(times)


def test_data_rates_and_sub_bands():
    assert DataRate.parse("SF12BW125") == DataRate(12, 125_000)
    assert DataRate(9, 500_000).name == "SF9BW500"
    for bad in ("SF6BW125", "SF12BW200", "sf7bw125", 7):
        with pytest.raises(LoRaParamError):
            DataRate.parse(bad)  # type: ignore[arg-type]
    assert sub_band(868.1).duty_cycle == 0.01 and sub_band(869.525).duty_cycle == 0.10
    with pytest.raises(LoRaParamError):
        sub_band(868.65)
