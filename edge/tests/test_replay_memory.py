"""The replay guard's compact per-device state (issue 14): it classifies exactly as a plain
dict of every accepted frame's digest would, survives a restore from the outbox rows, and
its memory per device is measured directly (bench: prints the figure)."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from meterlink.edge.outbox import Batch, Outbox
from meterlink.edge.replay import ReplayGuard
from meterlink.protocol import ReplayWindow, classify, payload_digest
from meterlink.protocol.replay import WINDOW


class _Reference:
    """Every accepted digest kept forever in a dict: slow and big, but plainly right."""

    def __init__(self) -> None:
        self.windows: dict[int, ReplayWindow] = {}
        self.seen: dict[int, dict[int, bytes]] = {}

    def check(self, dev: int, ctr: int, payload: bytes) -> str:
        return classify(self.windows.get(dev), self.seen.get(dev), ctr, payload)

    def accept(self, dev: int, ctr: int, payload: bytes) -> None:
        self.windows.setdefault(dev, ReplayWindow()).accept(ctr)
        self.seen.setdefault(dev, {})[ctr] = payload_digest(payload)


def _payload(dev: int, ctr: int, variant: int = 0) -> bytes:
    return bytes([dev & 0xFF, variant]) + ctr.to_bytes(4, "big")


def test_ring_classifies_as_a_dict_of_every_digest_would():
    rng = random.Random(14)
    guard, ref = ReplayGuard(), _Reference()
    highest = {dev: 0 for dev in range(5)}
    outcomes: dict[str, int] = {"new": 0, "duplicate": 0, "replay": 0}
    for _ in range(20_000):
        dev = rng.randrange(5)
        step = rng.choice([1, 1, 1, 2, 5, 63, 64, 65, 200, -1, -10, -62, -63, -64, -70, 0])
        ctr = max(0, highest[dev] + step)
        payload = _payload(dev, ctr, variant=rng.choice([0, 0, 0, 1]))
        got, want = guard.check(dev, ctr, payload), ref.check(dev, ctr, payload)
        assert got == want, (dev, ctr, step, guard.window(dev))
        outcomes[got] += 1
        if got == "new":
            guard.accept(dev, ctr, payload)
            ref.accept(dev, ctr, payload)
            highest[dev] = max(highest[dev], ctr)
        assert len(guard.digests(dev)) <= WINDOW
    assert all(n > 500 for n in outcomes.values()), outcomes  # every outcome exercised


def test_guard_restored_from_outbox_rows_acks_a_retransmission_again(tmp_path):
    ob = Outbox(tmp_path / "gw.sqlite", max_bytes=1 << 26, min_free_bytes=0,
                policy="reject_new")
    guard = ReplayGuard()
    for ctr in range(300):
        if ctr % 7 == 3:
            continue  # lost on the air: never accepted
        hi, bm, d = guard.accept(9, ctr, _payload(9, ctr))
        ob.commit(Batch(replay={9: (hi, bm)}, seen=[(9, ctr, d)]))
    ob.close()
    ob = Outbox(tmp_path / "gw.sqlite", max_bytes=1 << 26, min_free_bytes=0,
                policy="reject_new")
    restored = ReplayGuard(ob.load_replay(), rows=ob.iter_seen())
    ob.close()
    assert restored.digests(9) == guard.digests(9) and len(restored.digests(9)) == 55
    assert restored.check(9, 299, _payload(9, 299)) == "duplicate"  # re-acked
    assert restored.check(9, 299, _payload(9, 299, 1)) == "replay"  # other bytes
    assert restored.check(9, 297, _payload(9, 297)) == "new"  # 297 % 7 == 3: never heard
    assert restored.check(9, 236, _payload(9, 236)) == "duplicate"  # bottom of the window
    assert restored.check(9, 235, _payload(9, 235)) == "replay"  # just below it


def _guard_bytes_per_device(devices: int, frames: int) -> float:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        guard = ReplayGuard()
        for ctr in range(frames):
            for dev in range(devices):
                guard.accept(dev, ctr, _payload(dev, ctr))
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(guard) == devices and len(guard.digests(0)) == min(frames, WINDOW)
    return (after - before) / devices


@pytest.mark.bench
def test_guard_memory_per_device_is_fixed_once_the_window_is_full():
    devices = 500
    full = _guard_bytes_per_device(devices, WINDOW)
    longer = _guard_bytes_per_device(devices, 3 * WINDOW)
    print(f"\nreplay guard: {full:.0f} B per device with a full window ({WINDOW} frames), "
          f"{longer:.0f} B after {3 * WINDOW} frames ({devices} devices, tracemalloc); "
          f"10,000 devices: {longer * 10_000 / 2**20:.1f} MiB")
    assert longer < 1.05 * full + 16  # no growth with traffic once the window is full
    assert longer < 1536  # the dict of bytes per device it replaces took ~8 KiB
