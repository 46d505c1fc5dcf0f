"""Writing the image to the module, resumable: a file already on the board with the
right size and checksum is kept, so a re-run after an interrupted flash only writes what
is missing or damaged. main.py is removed first and written last, so an interrupted
module never boots a half-written firmware."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from meterlink.boardlink import files as board_files
from meterlink.boardlink.errors import BoardError
from meterlink.provisioning.board import BoardSession
from meterlink.provisioning.errors import BoardNotResponding, FlashVerifyFailed
from meterlink.provisioning.image import ENTRY_NAME, write_order
from meterlink.provisioning.progress import ProgressBar

MAX_TRIES = 3


@dataclass
class FlashReport:
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # already correct on the board
    rewrites: int = 0  # writes that did not verify and were done again


def flash_image(
    session: BoardSession,
    files: Mapping[str, bytes],
    *,
    bar: ProgressBar | None = None,
    tries: int = MAX_TRIES,
) -> FlashReport:
    t = session.transport
    report = FlashReport()
    try:
        checks = {n: board_files.check_file(t, n, files[n]) for n in files}
        stale = [n for n in write_order(dict(files)) if not checks[n].ok]
        if ENTRY_NAME in stale and checks[ENTRY_NAME].size is not None:
            board_files.remove_file(t, ENTRY_NAME)  # the commit point goes back to "no"
        for name in write_order(dict(files)):
            if name not in stale:
                report.kept.append(name)
                if bar is not None:
                    bar.advance(len(files[name]), f"{name} (already there)")
                continue
            _write_verified(session, name, files[name], bar, tries, report)
            report.written.append(name)
    except BoardError as exc:
        raise BoardNotResponding(
            f"flashing stopped: {exc}",
            "check the cable and the module's power, then run the same command again: "
            "files already written and verified are kept",
        ) from exc
    finally:
        if bar is not None:
            bar.finish()
    return report


def _write_verified(
    session: BoardSession,
    name: str,
    data: bytes,
    bar: ProgressBar | None,
    tries: int,
    report: FlashReport,
) -> None:
    t = session.transport
    check = None
    for attempt in range(tries):
        done = 0

        def progress(_name: str, written: int, _total: int) -> None:
            nonlocal done
            if bar is not None:
                bar.advance(written - done, name)
            done = written

        board_files.write_file(t, name, data, progress=progress)
        check = board_files.check_file(t, name, data)
        if check.ok:
            return
        report.rewrites += 1
        if bar is not None and attempt < tries - 1:
            bar.advance(-done, f"{name} rewrite")  # the bytes go again
    assert check is not None
    raise FlashVerifyFailed(
        f"{check.describe()} after {tries} writes",
        "check the cable (a loose contact loses bytes) and run again; if it repeats, "
        "power the module off and on",
    )
