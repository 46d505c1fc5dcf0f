"""Child processes that never outlive the test or tool that started them.

On Linux each child gets PR_SET_PDEATHSIG, so the kernel kills it when its parent dies
(even on kill -9 of the parent); children still running at interpreter exit are killed
by an atexit hook.

PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process.
Children are therefore always forked from one long-lived spawner thread (or the main
thread), never from a short-lived worker thread such as the ones that start boards in
parallel: otherwise a board would be killed the moment its starter thread finished.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import IO, Any

_PR_SET_PDEATHSIG = 1
_children: weakref.WeakSet[subprocess.Popen[Any]] = weakref.WeakSet()
_group_leaders: weakref.WeakSet[subprocess.Popen[Any]] = weakref.WeakSet()
_requests: queue.Queue[tuple[Callable[[], subprocess.Popen[bytes]], Future[Any]]] = (
    queue.Queue()
)
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _spawner_loop() -> None:
    while True:
        make, fut = _requests.get()
        try:
            fut.set_result(make())
        except BaseException as exc:  # handed to the caller's thread
            fut.set_exception(exc)


def _run_in_spawner(make: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    global _spawner
    if threading.current_thread() is threading.main_thread():
        return make()
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_spawner_loop, name="child-spawner", daemon=True)
            _spawner.start()
    fut: Future[subprocess.Popen[bytes]] = Future()
    _requests.put((make, fut))
    return fut.result()


def spawn_child(
    argv: Sequence[str],
    *,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    own_process_group: bool = False,
) -> subprocess.Popen[bytes]:
    """Starts argv as a child that dies with this process.

    With own_process_group the child leads a new process group, and `kill_child` and the
    exit hook kill the whole group.
    """

    def make() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            env=env,
            preexec_fn=_die_with_parent,
            process_group=0 if own_process_group else None,
        )

    proc = _run_in_spawner(make)
    _children.add(proc)
    if own_process_group:
        _group_leaders.add(proc)
    return proc


def kill_child(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """Kills proc (and its process group if it leads one) and reaps it."""
    if proc.poll() is None:
        try:
            if proc in _group_leaders:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@atexit.register
def _kill_children() -> None:
    for proc in list(_children):
        if proc.poll() is None:
            try:
                if proc in _group_leaders:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
            except ProcessLookupError:
                pass
