"""Child processes that never outlive the test or tool that started them.

On Linux each child gets PR_SET_PDEATHSIG, so the kernel kills it when its parent dies
(even on kill -9 of the parent); children still running at interpreter exit are killed
by an atexit hook.
"""

from __future__ import annotations

import atexit
import ctypes
import signal
import subprocess
import sys
import weakref
from collections.abc import Sequence
from typing import IO, Any

_PR_SET_PDEATHSIG = 1
_children: weakref.WeakSet[subprocess.Popen[Any]] = weakref.WeakSet()


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn_child(
    argv: Sequence[str],
    *,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Starts argv as a child that dies with this process."""
    proc = subprocess.Popen(
        list(argv),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=env,
        preexec_fn=_die_with_parent,
    )
    _children.add(proc)
    return proc


@atexit.register
def _kill_children() -> None:
    for proc in list(_children):
        if proc.poll() is None:
            proc.kill()
