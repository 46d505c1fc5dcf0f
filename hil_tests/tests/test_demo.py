"""`meterlink demo` as a new user runs it: the whole chain reaches its goals, the status
page shows it in a real browser, and Ctrl-C leaves no process behind. Its modules: two
emulated nRF51 boards behind transparent UART modems and an emulated Pico driving an
emulated AT modem, all on the LoRa medium to two emulated concentrators."""

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
        # the module set: two nRF51 boards behind transparent modems, the backflow module
        # an emulated Pico whose firmware drives an AT modem (RAK3172, RUI3 P2P); its
        # frames went out by AT+PSEND and it heard downlinks (acks) in its windows
        assert any("provision module 2 (backflow, rp2, AT modem)" in ln for ln in lines)
        assert sum("(household, nRF51)" in ln or "(leak, nRF51)" in ln for ln in lines) == 2
        deadline = time.monotonic() + 30  # the next summary after the goals
        while time.monotonic() < deadline and not any(
                "AT modem:" in ln for ln in lines[transcript.count("\n") + 1:]):
            time.sleep(0.5)
        at = [m for ln in lines if (m := re.search(
            r"module 2 AT modem: (\d+) frames sent by AT\+PSEND \((\d+) resent\), "
            r"downlinks heard in its receive windows: (\d+)", ln))]  # fmt: skip
        assert at and int(at[-1].group(1)) >= 2 and int(at[-1].group(3)) >= 1, at[-1:]

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


def test_demo_without_the_pico_emulator_runs_nrf51_boards_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from meterlink.hil import demo

    why = "rp2 firmware not found: run `make setup`"
    monkeypatch.setattr(demo, "runner_missing", lambda: why)
    said: list[str] = []
    d = demo.Demo(demo.DemoOptions(workdir=tmp_path, at_modules=2), said.append)
    assert d._picos() == 0 and d._picos() == 0
    assert [ln for ln in said if why in ln and "every module is an nRF51" in ln] == said[:1]
    assert len(said) == 1
    monkeypatch.setattr(demo, "runner_missing", lambda: None)
    assert demo.Demo(demo.DemoOptions(workdir=tmp_path, at_modules=5), said.append)._picos() == 3
    channel = demo.DemoOptions(workdir=tmp_path, radio="channel", at_modules=1)
    assert demo.Demo(channel, said.append)._picos() == 0


@pytest.mark.parametrize(("args", "says"), [
    (["--radio", "channel", "--at-modules", "1"], "--at-modules 1 needs --radio lora"),
    (["--modules", "2", "--at-modules", "3"], "--at-modules 3 is more than --modules 2"),
])
def test_demo_refuses_at_modules_it_cannot_run(args: list[str], says: str,
                                               tmp_path: Path) -> None:
    run = subprocess.run([*meterlink_command(), "demo", *args, "--workdir", str(tmp_path / "w")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and says in run.stderr, run.stderr
    assert not (tmp_path / "w").exists()  # nothing started
