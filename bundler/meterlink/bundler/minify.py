"""Shrinks MicroPython source for boards with a small filesystem (the micro:bit's holds
about 15 KB).

`minify` keeps the syntax tree: it drops comments, docstrings and blank lines, indents by
one space per level and keeps a space only where two tokens would otherwise merge.
`shrink` also renames `self` to a one-letter name the file does not use and replaces each
private constant `_NAME = const(N)` by N (what MicroPython's compiler does anyway, so the
program is the same). Other names are kept: tracebacks still name the functions (line
numbers differ from the source)."""

from __future__ import annotations

import ast
import io
import re
import symtable
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


def shrink(source: str, names_to_fill: dict[str, str] | None = None) -> str:
    """minify, plus `self` renamed and private `const()` names replaced by their values;
    `names_to_fill` maps other names to the source text that replaces them."""
    tokens = _tokens(source)
    names = {t.string for t in tokens if t.type == tokenize.NAME}
    rename = _private_consts(tokens) | (names_to_fill or {})
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
            while (
                j < len(parsed) and parsed[j][0] == depth + 1 and not _COMPOUND.match(parsed[j][1])
            ):
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


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def rename_locals(source: str, renamed: dict[str, dict[str, str]] | None = None) -> str:
    """Each function's parameters and local variables renamed to a, b, c, ... in order
    of first use. On MicroPython every distinct identifier the compiler sees stays in
    RAM for good (an interned string); this makes all functions share a dozen names.
    Only plain functions at module level are renamed, and only names bound by
    assignment, `for` or as parameters; the caller must not pass them by keyword.
    `renamed`, if given, receives function name -> {new name: source name}."""
    tree = ast.parse(source)
    table = symtable.symtable(source, "<firmware>", "exec")
    scopes = {t.get_name(): t for t in table.get_children() if t.get_type() == "function"}
    moves: dict[tuple[int, int], str] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.name not in scopes:
            continue
        scope = scopes[node.name]
        if scope.get_children():
            continue  # a nested function or lambda: left alone
        bound_otherwise = {
            n.name if isinstance(n, ast.ExceptHandler) else None
            for n in ast.walk(node)
            if isinstance(n, ast.ExceptHandler)
        } | {
            a.asname or a.name
            for n in ast.walk(node)
            if isinstance(n, ast.Import | ast.ImportFrom)
            for a in n.names
        }
        local = {
            s.get_name()
            for s in scope.get_symbols()
            if (s.is_local() or s.is_parameter())
            and not s.is_global()
            and s.get_name() not in bound_otherwise
        }
        used = {s.get_name() for s in scope.get_symbols()} - local
        free = iter(c for c in _LETTERS if c not in used)
        names: dict[str, str] = {}
        sites: list[tuple[int, int, str]] = []
        args = node.args
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            sites.append((a.lineno, a.col_offset, a.arg))
        for v in (args.vararg, args.kwarg):
            if v is not None:
                sites.append((v.lineno, v.col_offset, v.arg))
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and n.id in local:
                sites.append((n.lineno, n.col_offset, n.id))
        for line, col, name in sorted(sites):
            if name not in local:
                continue
            if name not in names:
                names[name] = next(free)
            moves[(line, col)] = names[name]
        if renamed is not None:
            renamed[node.name] = {new: old for old, new in names.items()}
    lines = source.splitlines(keepends=True)
    for (line, col), new in sorted(moves.items(), reverse=True):
        text = lines[line - 1]
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(text, col)
        assert m is not None, (line, col)
        lines[line - 1] = text[:col] + new + text[m.end() :]
    out = "".join(lines)
    ast.parse(out)  # still Python
    return out
