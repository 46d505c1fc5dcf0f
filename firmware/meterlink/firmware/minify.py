"""Shrinks MicroPython source for boards with a small filesystem (the micro:bit's holds
about 15 KB): drops comments and blank lines, indents by one space per level, and keeps
a space only between two name or number tokens, renames `self` to a one-letter name
the file does not use, and replaces each private constant `_NAME = const(N)` by N. Other names are kept, so tracebacks still name the functions (line
numbers differ from the source)."""

from __future__ import annotations

import io
import tokenize

_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}


def _wordish(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def minify(source: str) -> str:
    """The same program in fewer bytes. Raises SyntaxError/tokenize.TokenError for
    source that does not tokenize."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    names = {t.string for t in tokens if t.type == tokenize.NAME}
    short = next((c for c in "ZQXJ" if c not in names), "self")
    consts = _private_consts(tokens)
    out: list[str] = []
    depth = 0
    line: list[str] = []
    prev = ""
    skip_line = False
    for tok in tokens:
        kind, text = tok.type, tok.string
        if kind == tokenize.NAME and text == "self":
            text = short
        if kind == tokenize.NAME and text in consts:
            if line == [] and depth == 0:  # the definition itself
                skip_line = True
            text = consts[text]
        if kind == tokenize.INDENT:
            depth += 1
        elif kind == tokenize.DEDENT:
            depth -= 1
        elif kind == tokenize.NEWLINE:
            if line and not skip_line:
                out.append(" " * depth + "".join(line))
            line, prev, skip_line = [], "", False
        elif kind not in _SKIP:
            if prev and _wordish(prev[-1]) and (_wordish(text[0]) or text[0] in "'\""):
                line.append(" ")
            line.append(text)
            prev = text
    return "\n".join(out) + "\n"


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
