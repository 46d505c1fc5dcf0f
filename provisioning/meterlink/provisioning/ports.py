"""Finding the module's serial port and telling why it cannot be opened."""

from __future__ import annotations

import errno
import grp
import os
from dataclasses import dataclass
from pathlib import Path

import serial
import serial.tools.list_ports

from meterlink.provisioning.errors import NoBoardFound, PortBusy, PortPermissionDenied

# USB serial chips seen on module programming cables and boards (micro:bit DAPLink, Pico).
_LIKELY_VIDS = {0x0D28, 0x2E8A, 0x10C4, 0x0403, 0x1A86, 0x067B}


@dataclass(frozen=True)
class PortCandidate:
    device: str
    description: str
    likely: bool


def candidate_ports() -> list[PortCandidate]:
    """Serial ports that could be a module, the likely ones (known USB ids) first."""
    found = []
    for p in serial.tools.list_ports.comports():
        likely = p.vid in _LIKELY_VIDS if p.vid is not None else False
        found.append(PortCandidate(p.device, p.description or "", likely))
    return sorted(found, key=lambda c: (not c.likely, c.device))


def choose_port(requested: str | None) -> str:
    """The port to use: the one given, else the only likely candidate."""
    if requested:
        return requested
    candidates = candidate_ports()
    likely = [c for c in candidates if c.likely]
    if len(likely) == 1:
        return likely[0].device
    listing = ", ".join(f"{c.device} ({c.description})" for c in candidates) or "none"
    if not likely:
        raise NoBoardFound(
            f"no module found on any serial port (serial ports present: {listing})",
            "plug the programming cable into the module and the laptop, check the module "
            "has power, then run again; or name the port with --port",
        )
    raise NoBoardFound(
        f"several possible modules are connected: {listing}",
        "unplug the others, or name the port with --port",
    )


def holders_of(device: str) -> list[tuple[int, str]]:
    """Processes (pid, name) of this user that have `device` open, as `fuser` finds them."""
    try:
        target = os.stat(device)
    except OSError:
        return []
    holders = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                try:
                    st = fd.stat()
                except OSError:
                    continue
                if st.st_rdev == target.st_rdev and st.st_ino == target.st_ino:
                    name = (proc / "comm").read_text().strip()
                    holders.append((int(proc.name), name))
                    break
        except OSError:
            continue
    return holders


def check_port(device: str) -> None:
    """Raises the error an installer can act on if `device` cannot be used right now."""
    path = Path(device)
    if not path.exists():
        listing = ", ".join(c.device for c in candidate_ports()) or "none"
        raise NoBoardFound(
            f"no serial port {device} (serial ports present: {listing})",
            "check the cable and that the module has power; run without --port to search",
        )
    if not os.access(device, os.R_OK | os.W_OK):
        raise _permission_denied(device)
    holders = holders_of(device)
    if holders:
        who = ", ".join(f"{name} (pid {pid})" for pid, name in holders)
        raise PortBusy(
            f"serial port {device} is in use by {who}",
            "close that program (a terminal such as screen/minicom, another meterlink, "
            "an IDE) and run again",
        )
    try:
        probe = serial.Serial(device, 115200, exclusive=True, timeout=0)
    except serial.SerialException as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise _permission_denied(device) from exc
        if exc.errno == errno.ENOENT:
            raise NoBoardFound(f"serial port {device} disappeared", "check the cable") from exc
        raise PortBusy(
            f"serial port {device} is in use by another program ({exc})",
            "close the other program that has the port open and run again",
        ) from exc
    probe.close()


def _permission_denied(device: str) -> PortPermissionDenied:
    try:
        group = grp.getgrgid(os.stat(device).st_gid).gr_name
    except (OSError, KeyError):
        group = "dialout"
    return PortPermissionDenied(
        f"permission denied on serial port {device} (owned by group {group!r})",
        f"add yourself to that group: `sudo usermod -aG {group} $USER`, then log out and in again",
    )
