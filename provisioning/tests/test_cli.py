"""The commands as an installer runs them: exit codes, messages, files."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import pytest

from meterlink.cli import main
from meterlink.provisioning import registry as reg

BASE = ["--meter-serial", "WM-1", "--reading", "12.5", "--yes", "--no-progress"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_typo_in_reading_exits_2_and_names_the_form(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        capsys,
        "provision",
        "--registry",
        str(tmp_path / "r.db"),
        "--port",
        "/dev/null",
        "--meter-serial",
        "WM-1",
        "--reading",
        "12O.5",
        "--yes",
    )
    assert code == 2
    assert "letter 'O' at position 3" in err and "123.456" in err
    assert not (tmp_path / "r.db").exists()  # nothing recorded for a refused value


def test_missing_value_without_terminal_names_the_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "provision", "--registry", str(tmp_path / "r.db"), "--yes")
    assert code == 2 and "--meter-serial is missing" in err


def test_no_board_at_the_given_port(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(
        capsys,
        "provision",
        "--registry",
        str(tmp_path / "r.db"),
        "--port",
        str(tmp_path / "ttyACM9"),
        *BASE,
    )
    assert code == 3
    assert f"no serial port {tmp_path / 'ttyACM9'}" in err
    assert "check the cable" in err


def test_no_board_anywhere_lists_candidates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # This machine has no USB serial adapter: the search must say so, not guess a port.
    code, _, err = run(capsys, "provision", "--registry", str(tmp_path / "r.db"), *BASE)
    assert code == 3
    assert "no module found" in err and "plug the programming cable" in err


@pytest.fixture
def pty_pair() -> Any:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    yield path
    os.close(master)


def test_port_busy_names_the_other_program(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pty_pair: str
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,serial,time; p=serial.Serial(sys.argv[1]); print('open', flush=True); "
            "time.sleep(60)",
            pty_pair,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        code, _, err = run(
            capsys, "provision", "--registry", str(tmp_path / "r.db"), "--port", pty_pair, *BASE
        )
    finally:
        holder.kill()
        holder.wait()
    assert code == 4
    assert f"serial port {pty_pair} is in use by python" in err and f"pid {holder.pid}" in err
    assert "close that program" in err


def test_port_locked_by_an_exclusive_opener_in_this_process(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pty_pair: str
) -> None:
    import serial

    lock = serial.Serial(pty_pair, exclusive=True)
    try:
        code, _, err = run(
            capsys, "provision", "--registry", str(tmp_path / "r.db"), "--port", pty_pair, *BASE
        )
    finally:
        lock.close()
    assert code == 4 and "in use by another program" in err


def test_permission_denied_names_the_group(tmp_path: Path, pty_pair: str) -> None:
    args = ["provision", "--registry", str(tmp_path / "r.db"), "--port", pty_pair, *BASE]
    if os.getuid() == 0:
        # root opens anything: run the command as an ordinary user, with the system
        # Python (the same 3.11) reading this environment's packages.
        if not Path("/usr/bin/python3").exists():
            pytest.skip("running as root and no /usr/bin/python3 to run as another user")
        os.chmod(pty_pair, 0o600)
        home = Path(tempfile.mkdtemp(prefix="meterlink-perm-"))  # tmp_path's parents are 0700
        os.chmod(home, 0o777)
        args[2] = str(home / "r.db")
        boot = (
            "import site,sys; site.addsitedir(sys.argv.pop(1)); "
            "from meterlink.cli import main; sys.exit(main(sys.argv[1:]))"
        )
        argv = ["/usr/bin/python3", "-c", boot, sysconfig.get_paths()["purelib"], *args]
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, user="nobody", cwd=home
        )
        shutil.rmtree(home)
    else:
        os.chmod(pty_pair, 0)
        argv = [sys.executable, "-m", "meterlink.cli", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 5, proc.stderr
    assert f"permission denied on serial port {pty_pair}" in proc.stderr
    assert "sudo usermod -aG" in proc.stderr


def _seed(path: Path, make_device: Any) -> None:
    with reg.Registry(path) as r:
        r.save(make_device(1, "WM-1", key_hex="aa" * 16), "flashing")
        r.save(make_device(2, "WM-2", key_hex="bb" * 16), "flashing")


def test_devices_list_show_export_remove(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_device: Any
) -> None:
    db = tmp_path / "r.db"
    _seed(db, make_device)
    code, out, _ = run(capsys, "devices", "--registry", str(db), "list")
    assert code == 0 and "WM-1" in out and "WM-2" in out
    code, out, _ = run(capsys, "devices", "show", "wm-2", "--registry", str(db))
    assert code == 0 and "meter_serial: WM-2" in out and "bb" * 16 not in out
    keys = tmp_path / "keys.json"
    code, _, err = run(capsys, "devices", "--registry", str(db), "export-keys", "--out", str(keys))
    assert code == 0 and "SIGHUP" in err
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert {d["key"] for d in json.loads(keys.read_text())["devices"]} == {"aa" * 16, "bb" * 16}
    code, out, _ = run(capsys, "devices", "--registry", str(db), "export", "--format", "json")
    assert code == 0 and [d["meter_serial"] for d in json.loads(out)["devices"]] == ["WM-1", "WM-2"]
    code, out, _ = run(capsys, "devices", "--registry", str(db), "export", "--format", "csv")
    assert out.splitlines()[0].startswith("device_id,meter_serial") and "aa" * 16 not in out
    code, _, err = run(capsys, "devices", "--registry", str(db), "remove", "WM-9", "--yes")
    assert code == 2 and "no module 'WM-9'" in err
    code, _, _ = run(capsys, "devices", "--registry", str(db), "remove", "WM-1", "--yes")
    assert code == 0
    with reg.Registry(db) as r:
        assert [d.meter_serial for d in r.all()] == ["WM-2"]
        assert r.events(1)[-1][1] == "removed"


def test_registry_from_environment(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    make_device: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "env.db"
    _seed(db, make_device)
    monkeypatch.setenv(reg.ENV_REGISTRY, str(db))
    code, out, _ = run(capsys, "devices", "list")
    assert code == 0 and "WM-2" in out
