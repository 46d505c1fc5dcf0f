"""Shrinks MicroPython source for boards with a small filesystem (the micro:bit's holds
about 15 KB).

`minify` keeps the syntax tree: it drops comments, docstrings and blank lines, indents by
one space per level and keeps a space only where two tokens would otherwise merge.
`shrink` also renames `self` to a one-letter name the file does not use and replaces each
private constant `_NAME = const(N)` by N (what MicroPython's compiler does anyway, so the
program is the same). Other names are kept: tracebacks still name the functions (line
numbers differ from the source)."""

from __future__ import annotations

import io
import re
import tokenize

_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}


def _wordish(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _needs_space(prev: tokenize.TokenInfo | None, tok: tokenize.TokenInfo) -> bool:
    if prev is None:
        return False
    if prev.type == tokenize.STRING and tok.type == tokenize.STRING:
        return True
    return _wordish(prev.string[-1]) and (_wordish(tok.string[0]) or tok.string[0] in "'\"")


def _render(tokens: list[tokenize.TokenInfo], rename: dict[str, str]) -> str:
    out: list[str] = []
    depth = 0
    line: list[str] = []
    first: tokenize.TokenInfo | None = None  # first token of the logical line
    prev: tokenize.TokenInfo | None = None
    count = 0  # tokens in the logical line
    emitted = [0]  # statements written per open block
    for tok in tokens:
        kind = tok.type
        if kind == tokenize.INDENT:
            depth += 1
            emitted.append(0)
        elif kind == tokenize.DEDENT:
            if not emitted.pop():
                out.append(" " * depth + "pass")
            depth -= 1
        elif kind == tokenize.NEWLINE:
            docstring = count == 1 and first is not None and first.type == tokenize.STRING
            if line and not docstring:
                out.append(" " * depth + "".join(line))
                emitted[-1] += 1
            line, first, prev, count = [], None, None, 0
        elif kind not in _SKIP:
            text = rename.get(tok.string, tok.string) if kind == tokenize.NAME else tok.string
            if _needs_space(prev, tok):
                line.append(" ")
            line.append(text)
            first = first or tok
            prev = tok
            count += 1
    return "\n".join(out) + "\n"


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(source).readline))


def minify(source: str) -> str:
    """The same syntax tree in fewer bytes. Raises tokenize.TokenError or SyntaxError for
    source that does not tokenize."""
    return _render(_tokens(source), {})


def shrink(source: str) -> str:
    """minify, plus `self` renamed and private `const()` names replaced by their values."""
    tokens = _tokens(source)
    names = {t.string for t in tokens if t.type == tokenize.NAME}
    rename = _private_consts(tokens)
    short = next((c for c in "ZQXJ" if c not in names), None)
    if short:
        rename["self"] = short
    out = _render(tokens, rename)
    # the definitions themselves now read `5=const(5)`: drop those lines
    kept = [ln for ln in out.splitlines() if not _is_inlined_definition(ln, rename)]
    return "".join(line + "\n" for line in join_statements(kept))


_COMPOUND = re.compile(r"(if|elif|else|for|while|try|except|finally|with|def|class|async)\b|@")


def join_statements(lines: list[str]) -> list[str]:
    """Minified lines (one space of indent per level) with simple statements joined:
    consecutive ones at one level by `;`, and a block made only of simple statements
    folded onto its header (`if x:a=1;b=2`). Fewer lines is less flash and, on the
    board, a shorter line-number table in every function's bytecode."""
    parsed = [(len(ln) - len(ln.lstrip(" ")), ln.lstrip(" ")) for ln in lines]
    out: list[tuple[int, str, bool]] = []  # depth, text, a simple statement line
    i = 0
    while i < len(parsed):
        depth, text = parsed[i]
        if _COMPOUND.match(text):
            j = i + 1
            while j < len(parsed) and parsed[j][0] == depth + 1 and not _COMPOUND.match(parsed[j][1]):
                j += 1
            block_ends = j == len(parsed) or parsed[j][0] <= depth
            if j > i + 1 and block_ends:
                out.append((depth, text + ";".join(t for _, t in parsed[i + 1 : j]), False))
                i = j
                continue
            out.append((depth, text, False))
        elif out and out[-1][2] and out[-1][0] == depth:
            out[-1] = (depth, out[-1][1] + ";" + text, True)
        else:
            out.append((depth, text, True))
        i += 1
    return [" " * depth + text for depth, text, _ in out]


def _is_inlined_definition(line: str, rename: dict[str, str]) -> bool:
    head, _, tail = line.partition("=const(")
    return bool(tail) and head in rename.values() and tail.rstrip().rstrip(")") == head


def _private_consts(tokens: list[tokenize.TokenInfo]) -> dict[str, str]:
    """Module-level `_NAME = const(<int>)` definitions: name -> the int's text."""
    found: dict[str, str] = {}
    for i in range(len(tokens) - 5):
        t = tokens[i : i + 6]
        if (
            t[0].type == tokenize.NAME
            and t[0].start[1] == 0
            and t[0].string.startswith("_")
            and [x.string for x in (t[1], t[2], t[3], t[5])] == ["=", "const", "(", ")"]
            and t[4].type == tokenize.NUMBER
        ):
            found[t[0].string] = t[4].string
    return found
