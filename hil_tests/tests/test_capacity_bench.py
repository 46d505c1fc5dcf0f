"""Capacity of one concentrator for 15-minute readings, on the LoRa medium in simulated
time (no QEMU): the share of frames lost to collisions and the share of interval deltas
that still reach the broker thanks to the back-fill, for N modules at the SF mix their
distances give. Prints a table; writes artifacts/bench/lora-capacity.png.
Run with `pytest -s -m bench hil_tests/tests/test_capacity_bench.py`."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from meterlink.hil.capacity import CapacityResult, simulate

EU868 = (868.1, 868.3, 868.5)
SCENARIOS = {
    "firmware today (fixed grid, 1 channel)": {},
    "grid + 0-60 s random delay, 1 channel": {"jitter_s": 60.0},
    "random delay + 3 channels": {"jitter_s": 60.0, "hop": True, "channels": EU868},
}
COUNTS = (250, 500, 1000, 2000, 4000, 8000)
ARTIFACT = Path(__file__).resolve().parents[2] / "artifacts" / "bench" / "lora-capacity.png"


def test_simulation_is_deterministic_and_back_fill_only_adds():
    a = simulate(300, intervals=30, jitter_s=60)
    b = simulate(300, intervals=30, jitter_s=60)
    assert (a.received, a.collided, a.intervals_backfill) == (b.received, b.collided,
                                                             b.intervals_backfill)
    assert a.frames == 300 * (30 - 12) and a.intervals == 300 * (30 - 12 - 12 + 1)
    assert a.intervals_direct <= a.intervals_backfill <= a.intervals
    assert a.intervals_direct / a.intervals == pytest.approx(a.frame_delivery, abs=0.02)
    no_history = simulate(300, intervals=30, jitter_s=60, history=1)
    assert no_history.intervals_backfill == no_history.intervals_direct
    alone = simulate(1, intervals=30, radius_m=100)
    assert alone.collided == 0 and alone.backfill_share == 1.0


def test_a_fixed_grid_keeps_colliding_where_a_random_delay_lets_back_fill_work():
    # 300 modules all at SF12 (2.4 s per reading): most frames collide either way, but
    # on a fixed grid the same pairs collide every interval, so the next readings that
    # carry the lost deltas collide too
    grid = simulate(300, intervals=30, fixed_sf=12, radius_m=500)
    jitter = simulate(300, intervals=30, fixed_sf=12, radius_m=500, jitter_s=60)
    assert grid.collision_loss > 0.5 and jitter.collision_loss > 0.5
    assert grid.backfill_share < grid.direct_share + 0.05
    assert jitter.backfill_share > grid.backfill_share + 0.3


@pytest.mark.bench
def test_bench_capacity_table_and_plot():
    results: dict[str, list[CapacityResult]] = {}
    for name, kw in SCENARIOS.items():
        results[name] = [simulate(n, intervals=48, scenario=name, **kw) for n in COUNTS]
    first = results[next(iter(SCENARIOS))][0]
    mix = ", ".join(f"SF{sf} {100 * c / first.modules:.0f}%"
                    for sf, c in sorted(first.sf_count.items()))
    print(f"\nLoRa capacity of one concentrator: 15-min readings of {50} bytes, 14 dBm, "
          f"modules within 3 km (SF by path loss + 10 dB margin: {mix}), 24 counted "
          "intervals per module, history 12, seed 15")
    head = f"{'scenario':42} {'modules':>7} {'frames':>7} {'lost to coll.':>13} " \
           f"{'own reading':>11} {'with back-fill':>14}"
    print(head)
    print("-" * len(head))
    for name, rows in results.items():
        for r in rows:
            print(f"{name:42} {r.modules:7d} {r.frames:7d} {100 * r.collision_loss:12.1f}% "
                  f"{100 * r.direct_share:10.1f}% {100 * r.backfill_share:13.1f}%")
    worst = max(r.max_duty_cycle for rows in results.values() for r in rows)
    print(f"highest duty cycle of a module (SF12): {100 * worst:.2f}% of the 1% budget")
    # the figures hold what the model implies
    for rows in results.values():
        assert all(a.collision_loss <= b.collision_loss + 0.01
                   for a, b in itertools.pairwise(rows))
        assert all(r.backfill_share >= r.direct_share for r in rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for (name, rows), colour in zip(results.items(), ("C0", "C1", "C2"), strict=True):
        xs = [r.modules for r in rows]
        ax.plot(xs, [100 * r.backfill_share for r in rows], "-o", color=colour,
                label=f"{name}: intervals at the broker")
        ax.plot(xs, [100 * r.collision_loss for r in rows], "--x", color=colour,
                label=f"{name}: frames lost to collisions")
    ax.set_xscale("log")
    ax.set_xlabel("modules per concentrator (15-minute readings)")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left")
    ax.set_title("meterlink on one LoRa concentrator (simulated LoRa medium)")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(ARTIFACT, dpi=120)
    plt.close(fig)
    print(f"plot: {ARTIFACT}")
    assert ARTIFACT.stat().st_size > 10_000
