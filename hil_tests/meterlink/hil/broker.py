"""A real Mosquitto broker on a free loopback port, for tests and the demo."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from meterlink.hil.processes import spawn_child


class BrokerError(RuntimeError):
    """The broker could not be started (not installed, or it did not come up)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Mosquitto:
    """Runs `mosquitto -c CONF` on 127.0.0.1; can be stopped and started again on the
    same port to simulate a broker outage."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        port: int | None = None,
        persistence: bool = False,
    ) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise BrokerError(
                "mosquitto is not installed: run `make setup` (Debian package mosquitto)"
            )
        self.executable = exe
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.persistence = persistence
        self.log_path = self.workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def _write_conf(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            # Started as root, mosquitto switches to its own user, which cannot write
            # the persistence file in a private working folder.
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        return conf

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        conf = self._write_conf()
        log = self.log_path.open("ab")
        self._proc = spawn_child([self.executable, "-c", str(conf)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"mosquitto exited with code {self._proc.returncode}; see {self.log_path}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not accept connections on port {self.port} in {timeout}s")

    def stop(self) -> None:
        """Stops the broker (an outage); `start()` brings it back on the same port."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    close = stop

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
