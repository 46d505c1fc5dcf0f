"""The fake clock of the nRF51 sources under CPython: ticks_ms() advances 1 ms per call
(time passes as the firmware works, as in tests/fake/board.py), sleep_ms(n) by n."""

clock = [1000]


def ticks_ms() -> int:
    clock[0] += 1
    return clock[0]


def ticks_diff(a: int, b: int) -> int:
    return a - b


def ticks_add(a: int, d: int) -> int:
    return a + d


def sleep_ms(n: int) -> None:
    clock[0] += n
