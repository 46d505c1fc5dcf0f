"""A file read survives a byte lost on the line that leaves code which still compiles and
runs: the board side here runs what it is sent as the raw REPL does (stdout, and the
traceback on stderr), in a directory that stands for its filesystem."""

from __future__ import annotations

import contextlib
import io
import os
import traceback
from pathlib import Path

import pytest

from meterlink.boardlink.errors import BoardError
from meterlink.boardlink.files import read_file


class RawRepl:
    """exec_raw as a board's raw REPL answers it: the code runs in one namespace kept
    between calls; (stdout, stderr) with the traceback. The first `garbled` calls of
    read_file's chunk loop lose "\n pri" on the way: `break` and the next line's
    `print` join into `breaknt`, which compiles, reads and raises a NameError."""

    def __init__(self, garbled: int) -> None:
        self.ns: dict[str, object] = {}
        self.garbled = garbled
        self.calls: list[str] = []

    def exec_raw(self, code: str, timeout: float = 10.0) -> tuple[bytes, bytes]:
        self.calls.append(code)
        if "_f.read(64)\n if not _c" in code and self.garbled:
            self.garbled -= 1
            code = code.replace("\n pri", "", 1)
        out, err = io.StringIO(), b""
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(code, "<stdin>", "exec"), self.ns)
            except Exception:
                err = traceback.format_exc().encode()
        return out.getvalue().encode(), err


@pytest.fixture
def board_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_chunk_loop_garbled_into_other_code_is_read_again_from_the_start(
        board_dir: Path) -> None:
    data = bytes(range(256)) * 5  # 1,280 bytes: more than one call of 8 chunks
    (board_dir / "rt").write_bytes(data)
    repl = RawRepl(garbled=1)
    assert read_file(repl, "rt") == data  # type: ignore[arg-type]
    opens = [c for c in repl.calls if c.startswith("_f=open(")]
    assert len(opens) == 2  # read again from the start


def test_a_read_garbled_every_time_says_so(board_dir: Path) -> None:
    (board_dir / "rt").write_bytes(b"x" * 100)
    with pytest.raises(BoardError, match="breaknt"):
        read_file(RawRepl(garbled=100), "rt")  # type: ignore[arg-type]


def test_a_missing_file_is_not_read_again(board_dir: Path) -> None:
    repl = RawRepl(garbled=0)
    with pytest.raises(BoardError, match="no such file"):
        read_file(repl, "cf")  # type: ignore[arg-type]
    assert len(repl.calls) == 1 and os.listdir(board_dir) == []
