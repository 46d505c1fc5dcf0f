"""The real gateway as a child process: `meterlink gateway run --config PATH`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from meterlink.hil.processes import kill_child, spawn_child


def meterlink_command() -> list[str]:
    """The `meterlink` console script next to this interpreter (the project's .venv)."""
    script = Path(sys.executable).with_name("meterlink")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "meterlink.cli"]


class GatewayProcess:
    """Runs the gateway with a config file; output goes to log_path."""

    def __init__(self, config: Path, log_path: Path, *, extra_args: Sequence[str] = ()) -> None:
        self.config = Path(config)
        self.log_path = log_path
        self.argv = [*meterlink_command(), "gateway", "run", "--config", str(config), *extra_args]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = spawn_child(self.argv, stdout=log, stderr=subprocess.STDOUT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after timeout; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_child(self.proc)
        return self.proc.returncode

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
