"""`meterlink provision` against an emulated nRF51 board (QEMU, MicroPython 1.9.2):
end to end with the radio channel, the real gateway and Mosquitto, and the error cases
that can be produced on an emulated board."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterlink.bundler import FIRMWARE_VERSION, bundle_features
from meterlink.provisioning import registry as reg
from meterlink.provisioning.errors import NotEnoughFlash, PortBusy, UnsupportedBoard
from meterlink.provisioning.provision import (
    ProvisionRequest,
    flash_and_restart,
)
from meterlink.provisioning.values import PulseWeight

pytestmark = pytest.mark.hil


def request(tmp_path: Path, emulated: Any, **kw: Any) -> ProvisionRequest:
    values: dict[str, Any] = dict(
        meter_serial="WM-HIL-001",
        reading_m3=Decimal("123.456"),
        pulse_weight=PulseWeight(1, 1),
        registry_path=tmp_path / "registry.db",
        port=emulated.pty_path,
        interval_s=30,
        installer="hil",
        cable=emulated.cable,  # the maintenance input through qtest, reset through QMP
    )
    values.update(kw)
    return ProvisionRequest(**values)


def test_blank_board_provisioned_heard_and_first_reading_has_the_dial_register(
    tmp_path: Path,
    board: Any,
    channel: Any,
    broker: Any,
    central: Any,
    provisioning_gateway: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    channel.attach_board(board, rssi=-97)
    keys = provisioning_gateway.keys
    req = request(
        tmp_path, board, keys_out=keys, mqtt=(broker.host, broker.port), selftest_timeout=120
    )
    result = provisioning_gateway.provision(board, req, show_progress=True)
    lines = provisioning_gateway.lines

    assert result.selftest is not None and result.selftest.passed, lines
    assert result.device.state == reg.STATE_TESTED and result.device.rssi == -97
    assert result.device.initial_register == 123456
    did = result.device.device_id
    first = central.wait_for(lambda m: m.topic == f"meterlink/v1/readings/{did}", timeout=180)
    assert first.json()["register"] == 123456  # what the installer read off the dial
    assert first.json()["device_id"] == did
    out, err = capsys.readouterr()
    key_hex = result.device.key_hex
    assert key_hex not in out + err + "\n".join(lines)  # the key is never shown
    assert "flashing [" in err  # the progress bar
    entry = json.loads(keys.read_text())["devices"][0]
    assert entry["key"] == key_hex
    # what the module's firmware can take is recorded, and the gateway goes by it: the
    # nRF51 build has no config downlink, so a config command is refused, not sent
    assert (entry["board"], entry["firmware_version"], entry["features"]) == (
        "nrf51", FIRMWARE_VERSION, sorted(bundle_features("nrf51")))
    shipped = ", ".join(sorted(bundle_features("nrf51"))) or "none of the optional ones"
    assert any(line.startswith(f"features: {shipped}") for line in lines), lines
    import paho.mqtt.publish as publish

    publish.single(f"meterlink/v1/commands/{did}", '{"type": "config", "interval_s": 600}',
                   qos=1, hostname=broker.host, port=broker.port)
    reply = central.wait_for(lambda m: m.topic == f"meterlink/v1/commands/{did}/reply",
                             timeout=30)
    assert reply.json()["outcome"] == "refused_unsupported", reply.json()
    assert reply.json()["missing_features"] == ["config_downlink"]


def test_interrupted_flash_is_completed_by_a_rerun(tmp_path: Path, board: Any) -> None:
    """Power cut in the middle of flashing; after power-on the same command finishes, and
    files that verified before the cut are not written again."""
    import threading

    req = request(tmp_path, board)
    cut = threading.Event()

    def say(_line: str) -> None:
        pass

    errors: list[BaseException] = []

    def provision_until_cut() -> None:
        try:
            with board.released():
                flash_and_restart(req, say, show_progress=False)
        except BaseException as exc:  # the tool sees the board go away mid-flash
            errors.append(exc)

    from meterlink.boardlink import files as board_files

    real_write = board_files.write_file
    written: list[str] = []

    def write_then_maybe_cut(t: Any, name: str, data: bytes, **kw: Any) -> None:
        real_write(t, name, data, **kw)
        written.append(name)
        if len(written) == 3 and not cut.is_set():
            cut.set()
            board.power_cut()

    board_files.write_file = write_then_maybe_cut  # type: ignore[assignment]
    try:
        provision_until_cut()
    finally:
        board_files.write_file = real_write  # type: ignore[assignment]
    assert cut.is_set() and errors, "the power cut did not interrupt flashing"
    with reg.Registry(req.registry_path) as r:
        dev = r.by_serial("WM-HIL-001")
        assert dev is not None and dev.state == reg.STATE_FLASHING
    board.power_on(wait_for_repl=True)
    lines: list[str] = []
    with board.released():
        flashed = flash_and_restart(req, lines.append, show_progress=False)
    assert any("interrupted: continuing" in ln for ln in lines)
    assert flashed.device.key_hex == dev.key_hex  # same key after the interruption
    from meterlink.bundler import bundle

    files = bundle("nrf51")
    checks = board.verify(files)
    assert all(c.ok for c in checks.values()), [c.describe() for c in checks.values()]
    cfg = board.read_file("config.txt").decode()
    assert "register=123456" in cfg and f"id={dev.device_id}" in cfg


def test_port_busy_when_another_program_holds_the_board(tmp_path: Path, board: Any) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,serial,time; p=serial.Serial(sys.argv[1], exclusive=True); "
            "print('open', flush=True); time.sleep(60)",
            board.pty_path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with board.released(), pytest.raises(PortBusy) as err:
            flash_and_restart(request(tmp_path, board), print, show_progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert f"pid {holder.pid}" in err.value.problem
    assert (
        not (tmp_path / "registry.db").exists()
        or reg.Registry(tmp_path / "registry.db").all() == []
    )


def test_wrong_board_is_refused_before_anything_is_written(tmp_path: Path, board: Any) -> None:
    """The installer's job is rp2 modules (--board rp2); the emulated module is an nRF51."""
    with board.released(), pytest.raises(UnsupportedBoard) as err:
        flash_and_restart(request(tmp_path, board, board="rp2"), print, show_progress=False)
    assert "expected a rp2 module, found nrf51" in err.value.problem
    assert "--board nrf51" in err.value.remedy
    assert board.list_files() == {}


def test_not_enough_flash_names_the_files_taking_space(tmp_path: Path, board: Any) -> None:
    board.exec(
        "f=open('logger_data.csv','wb')\nb=bytes(100)\nfor i in range(110):\n f.write(b)\n"
        "f.close()\n",
        timeout=60,
    )
    with board.released(), pytest.raises(NotEnoughFlash) as err:
        flash_and_restart(request(tmp_path, board), print, show_progress=False)
    assert "logger_data.csv (11000 B)" in err.value.problem
    assert "--erase-other-files" in err.value.remedy
    assert "main.py" not in board.list_files()  # nothing half-written
