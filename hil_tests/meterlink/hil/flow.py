"""Water flow on a module's GPIO: profiles of pulses per interval, and a driver thread.

A profile says, for each interval, how many pulses the meter gives forward and in reverse.
The driver turns that into pin activity on an emulated board: the flow-direction input
is held high while reverse pulses are given.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class IntervalFlow:
    forward: int = 0
    reverse: int = 0


Profile = Callable[[int], IntervalFlow]


def household(seed: int, intervals_per_day: int = 24) -> Profile:
    """A household day: quiet nights (zero-flow intervals), a morning and an evening peak."""
    rng = random.Random(seed)
    table: dict[int, IntervalFlow] = {}

    def profile(i: int) -> IntervalFlow:
        if i not in table:
            hour = (i % intervals_per_day) * 24 // intervals_per_day
            if hour < 6:
                base = 0
            elif hour in (6, 7, 18, 19, 20):
                base = rng.randint(3, 8)
            else:
                base = rng.choice((0, 0, 1, 2, 3))
            table[i] = IntervalFlow(forward=base)
        return table[i]

    return profile


def leak(pulses_per_interval: int = 1) -> Profile:
    """A leak that never stops: flow in every interval, never a zero-flow one."""

    def profile(i: int) -> IntervalFlow:
        return IntervalFlow(forward=pulses_per_interval)

    return profile


def backflow(start: int, reverse_pulses: int, base: Profile, every: int = 0) -> Profile:
    """`base` flow, and at interval `start` (then every `every` intervals, if given) water
    flowing back into the network."""

    def profile(i: int) -> IntervalFlow:
        flow = base(i)
        if i == start or (every and i > start and (i - start) % every == 0):
            return IntervalFlow(forward=flow.forward, reverse=reverse_pulses)
        return flow

    return profile


class PulseTarget(Protocol):
    def pulse(self, pin: str, count: int, high_ms: float = ..., low_ms: float = ...) -> None: ...

    def set_pin(self, pin: str, level: int) -> None: ...


class FlowDriver:
    """Drives one board's pins from a profile in a background thread.

    `paused` (an Event) holds the driver while the board is powered off; pulses a paused
    board did not get are not counted in `given`, so `given` is the true meter count.
    """

    def __init__(
        self,
        board: PulseTarget,
        profile: Profile,
        *,
        interval_s: float,
        pulse_pin: str = "pin0",
        dir_pin: str | None = "pin1",
        high_ms: float = 40,
        low_ms: float = 40,
        name: str = "flow",
    ) -> None:
        self.board = board
        self.profile = profile
        self.interval_s = interval_s
        self.pulse_pin = pulse_pin
        self.dir_pin = dir_pin
        self.high_ms = high_ms
        self.low_ms = low_ms
        self.given_forward = 0
        self.given_reverse = 0
        self.errors: list[str] = []
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _give(self, count: int, reverse: bool) -> None:
        if count <= 0:
            return
        if reverse and self.dir_pin is None:
            return
        if reverse and self.dir_pin:
            self.board.set_pin(self.dir_pin, 1)
        try:
            for _ in range(count):
                if self._stop.is_set() or self.paused.is_set():
                    return
                self.board.pulse(self.pulse_pin, 1, self.high_ms, self.low_ms)
                if reverse:
                    self.given_reverse += 1
                else:
                    self.given_forward += 1
        finally:
            if reverse and self.dir_pin:
                self.board.set_pin(self.dir_pin, 0)

    def _run(self) -> None:
        interval = 0
        next_start = time.monotonic()
        while not self._stop.is_set():
            if self.paused.is_set():
                self._stop.wait(0.2)
                next_start = time.monotonic()
                continue
            flow = self.profile(interval)
            try:
                self._give(flow.forward, reverse=False)
                self._give(flow.reverse, reverse=True)
            except Exception as exc:  # a board that went away mid-pulse
                if not self.paused.is_set():
                    self.errors.append(f"interval {interval}: {exc}")
            interval += 1
            next_start += self.interval_s
            self._stop.wait(max(0.0, next_start - time.monotonic()))
