"""make test's `-n 2 --dist loadgroup` keeps an xdist_group on one worker, one test at a
time (docs/hil.md, "Parallel runs"). It stopped doing so, silently, with pytest 9.2 (the
group's tests ran side by side): this runs a small suite the way make test does."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

GROUPED = '''
import os, time
import pytest

pytestmark = pytest.mark.xdist_group("cpu-heavy")


@pytest.mark.parametrize("i", range(4))
def test_grouped(i):
    start = time.monotonic()
    time.sleep(0.3)
    with open(os.environ["RUNS"], "a") as f:
        f.write(f"{os.environ['PYTEST_XDIST_WORKER']} {start} {time.monotonic()}\\n")


@pytest.mark.parametrize("i", range(4))
def test_free(i):
    pass
'''


def test_a_group_runs_on_one_worker_one_test_at_a_time(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    runs = tmp_path / "runs.txt"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q",
         "-p", "no:cacheprovider", "-c", "/dev/null", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={"RUNS": str(runs), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split() for line in runs.read_text().splitlines()]
    assert len(rows) == 4
    assert len({worker for worker, _, _ in rows}) == 1, rows
    spans = sorted((float(a), float(b)) for _, a, b in rows)
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans)), spans
