"""The `meterlink` dispatcher: subcommands come from entry points, only the one run is
loaded, and a subcommand whose extra is missing is named, not crashed into."""

from __future__ import annotations

import subprocess

from meterlink.cli import command_entry_points
from meterlink.hil.absent import MARK, meterlink_without


def run(absent: tuple[str, ...], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*meterlink_without(absent), *argv], capture_output=True,
                          text=True, timeout=60, check=False)


def test_every_part_contributes_its_subcommands() -> None:
    names = [ep.name for ep in command_entry_points()]
    assert names[:4] == ["frame", "gateway", "provision", "devices"]
    assert "demo" in names  # from the harness's own distribution


def test_only_the_subcommand_run_is_loaded() -> None:
    parts = ("meterlink.edge", "meterlink.provisioning", "meterlink.hil", "meterlink.boardlink")
    out = run(parts, "frame", "--help")
    assert out.returncode == 0, out.stderr
    assert "decode" in out.stdout
    assert MARK not in out.stderr


def test_a_missing_extra_removes_its_subcommand_with_a_hint() -> None:
    help_out = run(("mpremote",), "--help")
    assert help_out.returncode == 0, help_out.stderr
    assert "provision (needs mpremote: pip install 'meterlink[installer]')" in " ".join(
        help_out.stdout.split())
    assert "devices" in help_out.stdout  # the registry needs no board tools
    prov = run(("mpremote",), "provision", "--yes")
    assert prov.returncode == 2
    assert "Traceback" not in prov.stderr
    assert "pip install 'meterlink[installer]'" in prov.stderr
