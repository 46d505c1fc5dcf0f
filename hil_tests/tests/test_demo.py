"""`meterlink demo` as a new user runs it: the whole chain reaches its goals, the status
page shows it in a real browser, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from meterlink.hil.gateway_process import meterlink_command

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "demo"


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline[:160]}")
    return found


def _chromium(url: str, shot: Path, profile: Path) -> str:
    """The page as headless Chromium renders it (DOM after scripts ran); a screenshot
    is kept as an artefact."""
    flags = [
        "/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--window-size=1280,900",
        "--virtual-time-budget=4000",
    ]  # fmt: skip
    subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, timeout=90)
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=90)
    return dom.stdout


@pytest.mark.xdist_group("cpu-heavy")  # see docs/hil.md, "Parallel runs"
@pytest.mark.hil
def test_demo_reaches_its_goals_shows_them_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    workdir = tmp_path / "demo-run"
    argv = [
        *meterlink_command(), "demo", "--interval", "12", "--http-port", "0",
        "--workdir", str(workdir), "--seed", "3",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    lines: list[str] = []
    goals = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "DEMO GOALS REACHED" in line:
                goals.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        reached = goals.wait(timeout=420)
        transcript = "\n".join(lines)
        assert reached, f"the demo did not reach its goals in 7 minutes:\n{transcript}"

        url = next(m.group(1) for line in lines
                   if (m := re.search(r"status page (http://\S+)", line)))  # fmt: skip
        with urllib.request.urlopen(url + "api/status", timeout=5) as r:
            status = json.loads(r.read())
        heard = {m["device_id"] for m in status["modules"]}
        provisioned = {int(m.group(1)) for line in lines
                       if (m := re.search(r"device (\d+), dial", line))}  # fmt: skip
        assert len(provisioned) == 3 and provisioned <= heard, (provisioned, heard)
        # the LoRa path: both concentrators forward frames, alarms were acked by PULL_RESP
        # (TX_ACK without error), and each module shows the SF and signal it was heard with
        concs = status["concentrators"]
        assert len(concs) == 2 and all(c["frames"] > 0 and c["connected"] for c in concs)
        assert sum(c["downlinks"] for c in concs) >= 2, concs
        assert all(not c["tx_ack_errors"] for c in concs), concs
        for m in status["modules"]:
            if m["device_id"] in provisioned:
                assert {r["datr"] for r in m["lora"]} == {"SF7BW125"}, m

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        dom = _chromium(url, ARTIFACTS / "status-page.png", tmp_path / "chromium")
        for device_id in provisioned:
            assert str(device_id) in dom
        assert "leak" in dom and "backflow" in dom
        assert all(c["eui"] in dom for c in concs)
        assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        code = proc.wait(timeout=60)
        reader.join(timeout=10)
        assert code == 130, "\n".join(lines[-20:])
        assert "stopped" in "\n".join(lines[-5:])
        time.sleep(0.5)
        assert _processes_mentioning(str(workdir)) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        (ARTIFACTS / "transcript.txt").parent.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "transcript.txt").write_text("\n".join(lines) + "\n")


def test_demo_help_names_its_options() -> None:
    out = subprocess.run(
        [*meterlink_command(), "demo", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--modules", "--interval", "--duration"):
        assert option in out
