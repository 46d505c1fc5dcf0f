"""The firmware core under CPython, with the fake board: every check in mp_checks.py
(the same checks run under current MicroPython in test_wasm.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
MP = HERE.parent / "meterlink" / "firmware" / "mp"
for p in (str(MP), str(HERE / "fake"), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import mp_checks  # noqa: E402

CHECKS = sorted(n for n in vars(mp_checks) if n.startswith("check_"))


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Any]:
    mp_checks.setup(str(tmp_path) + "/")
    yield mp_checks
    mp_checks.setup(str(tmp_path) + "/")


@pytest.mark.parametrize("name", CHECKS)
def test_check(name: str, fresh: Any) -> None:
    check: Callable[[], None] = getattr(fresh, name)
    check()
