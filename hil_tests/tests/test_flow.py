"""The demo's flow profiles (no board needed)."""

from __future__ import annotations

from meterlink.hil import flow


def test_backflow_events_at_start_and_then_every_n_intervals() -> None:
    base = flow.leak(2)
    once = flow.backflow(3, 8, base)
    assert [once(i).reverse for i in range(12)] == [0, 0, 0, 8] + [0] * 8
    repeated = flow.backflow(3, 8, base, every=4)
    assert [i for i in range(20) if repeated(i).reverse] == [3, 7, 11, 15, 19]
    assert all(repeated(i).forward == 2 for i in range(20))  # the base flow goes on


def test_household_day_has_quiet_nights_and_peaks() -> None:
    day = flow.household(seed=1, intervals_per_day=24)
    assert all(day(h).forward == 0 for h in range(6))  # 00:00-06:00
    assert all(day(h).forward >= 3 for h in (6, 7, 18, 19, 20))
    assert day(30).forward == day(30).forward  # the same interval gives the same flow
