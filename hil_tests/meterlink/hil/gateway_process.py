"""The real gateway as a child process: `meterlink gateway run --config PATH`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        """The gateway's `ready` log line (its http_port and udp_ports) once it is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_text().splitlines():
                if '"event": "ready"' in line:
                    return dict(json.loads(line))
            if not self.running:
                raise RuntimeError(f"the gateway exited: {self.log_text()[-2000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"the gateway was not ready in {timeout} s; see {self.log_path}")
