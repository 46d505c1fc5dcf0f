"""Board glue (meterlink.bundler.glue): the shared sources of mp/lean/ name no board;
the nRF51 bundle has its glue inlined (no `glue` module, the micro:bit's own calls), and
the inliner refuses glue it cannot lower."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meterlink.bundler import MP_DIR, bundle
from meterlink.bundler.glue import GlueError, glue_for, inline

BOARD_NAMES = re.compile(r"\b(microbit|micropython\.kbd_intr|machine\.Pin|UART|lightsleep)\b")


def test_the_shared_sources_name_no_board() -> None:
    for path in sorted((MP_DIR / "lean").glob("*.py")):
        if path.name.startswith("glue_"):
            continue
        code = "\n".join(line.split("#")[0] for line in path.read_text().splitlines())
        assert not BOARD_NAMES.search(code), (path.name, BOARD_NAMES.search(code))


def test_the_nrf51_bundle_has_the_glue_inlined() -> None:
    files = bundle("nrf51")
    assert not any(name.startswith("glue") for name in files)
    text = b"".join(files.values())
    assert b"glue" not in text and b"ctrl_c_off" not in text and b"held" not in text
    assert text.count(b"microbit.pin8.read_digital()") == 4  # phases 1, 2, loop, safe mode
    assert text.count(b"micropython.kbd_intr(-1)") == 3  # the first file of each phase
    assert b"except BaseException as e" in files["main.py"]


def _glue(tmp_path: Path, text: str) -> object:
    path = tmp_path / "glue_x.py"
    path.write_text(text)
    return glue_for(path)


def test_inline_puts_bodies_arguments_and_imports_in(tmp_path: Path) -> None:
    glue = _glue(tmp_path, "import m\nE = KeyError\n\ndef f(a):\n    return a + m.k\n\n"
                           "def s():\n    m.go(1)\n")  # fmt: skip
    src = ("import os\nfrom glue import f, s, E\nx = 2 * f(y)\ns()\ntry:\n    pass\n"
           "except E:\n    pass\n")
    out, bound = inline(src, glue, set(), "t.py")  # type: ignore[arg-type]
    assert out == ("import os\nimport m\nx = 2 * (y + m.k)\nm.go(1)\ntry:\n    pass\n"
                   "except KeyError:\n    pass\n")  # fmt: skip
    assert bound == {"os", "m"}
    again, _ = inline(src, glue, {"m"}, "t.py")  # type: ignore[arg-type]
    assert again.splitlines()[1] == ""  # m is in the namespace already


def test_inline_refuses_what_it_cannot_lower(tmp_path: Path) -> None:
    glue = _glue(tmp_path, "def f(a):\n    return a + a\n")
    with pytest.raises(GlueError, match=r"t\.py:2: f\(\) takes names or constants"):
        inline("from glue import f\nx = f(g())\n", glue, set(), "t.py")  # type: ignore[arg-type]
    with pytest.raises(GlueError, match="has no nope"):
        inline("from glue import nope\n", glue, set(), "t.py")  # type: ignore[arg-type]
    with pytest.raises(GlueError, match="must be one line"):
        _glue(tmp_path, "def f():\n    a = 1\n    return a\n")
