"""The symbol map of a bundle: what the bundler renamed for the nRF51, and a helper
that turns an nRF51 traceback (or any text naming its on-board files) back into
source names.

On the nRF51 the files are `ml_n` and a letter, each loaded file is compiled a chunk at
a time (so a traceback says `File "<string>", line N` with N counted from the chunk's
first line), statements are joined onto fewer lines and each function's locals are
a, b, c, ... (meterlink.bundler.minify). The map is made by the same pass that makes
the bundle (meterlink.bundler.symbol_map). Run

    python -m meterlink.bundler.symbols map nrf51 > nrf51-symbols.json
    python -m meterlink.bundler.symbols translate < traceback.txt
"""

from __future__ import annotations

import ast
import json
import re
import sys
from typing import Any, TypedDict

__all__ = ["FileSymbols", "FunctionSymbols", "map_file", "translate"]


class FunctionSymbols(TypedDict):
    line: int  # of its `def` in the source
    minified_line: int  # of its `def` in the on-board file, before chunking
    locals: dict[str, str]  # on-board name -> source name


class FileSymbols(TypedDict):
    source: str  # path under firmware/meterlink/firmware/mp/
    loaded: bool  # stored as chunks and compiled a chunk at a time (not imported)
    chunks: list[int]  # the on-board file's line each chunk starts at
    lines: list[int]  # source line of each on-board line's first statement (0: none)
    last: list[int]  # and of its last (statements are joined on the board)
    functions: dict[str, FunctionSymbols]


def _statements(body: list[ast.stmt]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        for field in ("body", "orelse", "finalbody"):
            out += _statements(getattr(node, field, []))
        for handler in getattr(node, "handlers", []):
            out += _statements(handler.body)
    return out


def _kept(node: ast.stmt) -> bool:
    # what minify drops: docstrings (a lone string) and inlined `_NAME = const(N)`
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return not isinstance(node.value.value, str)
    if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
        func = node.value.func
        target = node.targets[0]
        return not (
            isinstance(func, ast.Name)
            and func.id == "const"
            and isinstance(target, ast.Name)
            and target.id.startswith("_")
        )
    return True


def map_file(
    source_path: str,
    source: str,
    onboard: str,
    renamed: dict[str, dict[str, str]],
    *,
    loaded: bool,
) -> FileSymbols:
    """The symbols of one on-board file made from `source` (the file at `source_path`)."""
    from meterlink.bundler import chunk_texts

    src = [n for n in _statements(ast.parse(source).body) if _kept(n)]
    out = _statements(ast.parse(onboard).body)
    count = onboard.count("\n") + 1
    lines = [0] * count
    last = [0] * count
    if len(src) == len(out):  # the same statements, in the same order
        for a, b in zip(src, out, strict=True):
            i = b.lineno - 1
            lines[i] = min(lines[i] or a.lineno, a.lineno)
            last[i] = max(last[i], a.end_lineno or a.lineno)
    functions: dict[str, FunctionSymbols] = {}
    src_defs = {n.name: n.lineno for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
    for node in ast.parse(onboard).body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = {
                "line": src_defs.get(node.name, 0),
                "minified_line": node.lineno,
                "locals": renamed.get(node.name, {}),
            }
    chunks = [1]
    if loaded:
        for text in chunk_texts(onboard)[:-1]:
            chunks.append(chunks[-1] + text.count("\n"))
    return {
        "source": source_path,
        "loaded": loaded,
        "chunks": chunks,
        "lines": lines,
        "last": last,
        "functions": functions,
    }


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
_QUOTED = re.compile(r"'([a-z])'")


def _source_line(f: FileSymbols, line: int) -> str:
    if not 0 < line <= len(f["lines"]) or not f["lines"][line - 1]:
        return "?"
    first, last = f["lines"][line - 1], f["last"][line - 1]
    if last > first:  # joined on the board: one of these
        return f"{first} (one of source lines {first}-{last}, joined on the board)"
    return str(first)


def _frame(files: dict[str, FileSymbols], name: str, line: int, func: str) -> tuple[str, str]:
    """(the frame's line in source names, the on-board file) or the line as it was."""
    stem = name.removesuffix(".py")
    for onboard, f in files.items():
        if name == "<string>" and func in f["functions"] and f["loaded"]:
            start = f["functions"][func]["minified_line"]
            chunk = max(c for c in f["chunks"] if c <= start)
            src = _source_line(f, chunk + line - 1)
        elif onboard.removesuffix(".py") == stem and not f["loaded"]:
            src = _source_line(f, line)
        else:
            continue
        return f'File "{f["source"]}", line {src}, in {func}', onboard
    return f'File "{name}", line {line}, in {func}', ""


def translate(text: str, symbols: dict[str, Any]) -> str:
    """`text` (a traceback from the board, a heap report, a log) with on-board file
    names, chunk line numbers and the innermost frame's local names put back as in the
    source. What the map does not know is left as it is."""
    files: dict[str, FileSymbols] = symbols.get("files", {})
    last: tuple[str, str] | None = None  # (on-board file, function) of the last frame

    def frame(m: re.Match[str]) -> str:
        nonlocal last
        out, onboard = _frame(files, m.group(1), int(m.group(2)), m.group(3))
        last = (onboard, m.group(3)) if onboard else None
        return out

    lines = [_FRAME.sub(frame, line) for line in text.splitlines()]
    if last is not None and lines:
        names = files[last[0]]["functions"].get(last[1], {"locals": {}})["locals"]
        i = max(i for i, line in enumerate(lines) if line.strip())
        lines[i] = _QUOTED.sub(lambda m: f"'{names.get(m.group(1), m.group(1))}'", lines[i])
    out = "\n".join(lines)
    for onboard, f in files.items():
        if f["loaded"]:  # a heap report or log naming a loaded file
            out = re.sub(rf"(?<![/\w]){re.escape(onboard)}\b", f"{onboard} ({f['source']})", out)
    return out + ("\n" if text.endswith("\n") else "")


def main(argv: list[str]) -> int:
    from meterlink.bundler import SUPPORTED_BOARDS, symbol_map

    if len(argv) >= 1 and argv[0] == "map":
        board = argv[1] if len(argv) > 1 else "nrf51"
        if board not in SUPPORTED_BOARDS:
            print(f"unknown board {board!r}; supported: {', '.join(SUPPORTED_BOARDS)}",
                  file=sys.stderr)  # fmt: skip
            return 2
        json.dump(symbol_map(board), sys.stdout, indent=1)
        print()
        return 0
    if len(argv) >= 1 and argv[0] == "translate":
        board = argv[1] if len(argv) > 1 else "nrf51"
        sys.stdout.write(translate(sys.stdin.read(), symbol_map(board)))
        return 0
    print("usage: python -m meterlink.bundler.symbols map [BOARD] | translate [BOARD] < text",
          file=sys.stderr)  # fmt: skip
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
