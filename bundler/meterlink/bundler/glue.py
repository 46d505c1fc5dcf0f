"""Board glue: the few on-board spots that differ between boards (the maintenance input,
the UART, pin names and readers, Ctrl-C, the idle wait), written once per board in
`mp/lean/glue_<board>.py` and used by the shared sources of `mp/lean/` as
`from glue import name, ...` and plain calls `name(args)`.

Run as written (CPython, the WebAssembly port, rp2) the sources import a real module
`glue` (the board's glue file). For a board whose heap has no room for a module and
calls (nrf51), `inline()` lowers the sources instead: each call of a glue function is
replaced by its one-line body, arguments put in for its parameters, an alias by its
value, and each `from glue import ...` line by the board imports the inlined code needs
(where the line stood), so the on-board file reads as if written for that board.

A statement `x = name(x)` whose glue gives `x` back on the board disappears. A glue
file for inlining holds only: imports (the board modules; an imported name can
be glued itself, as the micro:bit's `uart`), `NAME = EXPR` aliases, and functions whose
body is one `return EXPR` or one simple statement. Arguments must be names or constants
(a parameter used twice must not run its argument twice).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Glue", "GlueError", "glue_for", "inline"]


class GlueError(ValueError):
    """A glue file or a use of glue the bundler cannot lower."""


@dataclass
class _Entry:
    params: tuple[str, ...]
    body: str  # source text, one line
    node: ast.AST  # its syntax tree (an expression, or a statement for statement glue)
    statement: bool  # a call used as a statement; the body is a statement
    alias: bool = False  # NAME = EXPR: the name itself is replaced


@dataclass
class Glue:
    """One board's glue file, parsed."""

    path: str
    imports: list[tuple[frozenset[str], str]] = field(default_factory=list)  # names, text
    entries: dict[str, _Entry] = field(default_factory=dict)

    def needs(self, names: set[str]) -> set[str]:
        """The import-bound names the entries `names` use (or are)."""
        bound = {n for names_, _ in self.imports for n in names_}
        used: set[str] = set()
        for name in names:
            if name in bound:
                used.add(name)
            elif name in self.entries:
                used |= {n.id for n in ast.walk(self.entries[name].node)
                         if isinstance(n, ast.Name)} & bound  # fmt: skip
        return used


def glue_for(path: Path) -> Glue:
    """The glue file at `path`, checked to be inlinable."""
    text = path.read_text()
    glue = Glue(str(path))
    for node in ast.parse(text).body:
        segment = ast.get_source_segment(text, node) or ""
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = frozenset((a.asname or a.name).split(".")[0] for a in node.names)
            glue.imports.append((names, segment))
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], ast.Name)):  # fmt: skip
            value = ast.get_source_segment(text, node.value) or ""
            glue.entries[node.targets[0].id] = _Entry((), value, node.value, False, True)
        elif isinstance(node, ast.FunctionDef):
            body = [b for b in node.body if not _is_docstring(b)]
            if len(body) != 1 or body[0].lineno != body[0].end_lineno:
                raise GlueError(f"{path}:{node.lineno}: {node.name}() must be one line")
            params = tuple(a.arg for a in node.args.args)
            stmt = body[0]
            if isinstance(stmt, ast.Return) and stmt.value is not None:
                expr = ast.get_source_segment(text, stmt.value) or ""
                glue.entries[node.name] = _Entry(params, expr, stmt.value, False)
            elif isinstance(stmt, ast.Expr | ast.Pass | ast.Assign | ast.AugAssign):
                line = ast.get_source_segment(text, stmt) or ""
                glue.entries[node.name] = _Entry(params, line, stmt, True)
            else:
                raise GlueError(f"{path}:{node.lineno}: {node.name}() cannot be inlined")
        elif not _is_docstring(node):
            raise GlueError(f"{path}:{node.lineno}: only imports, NAME = EXPR and one-line "
                            "functions can be inlined")  # fmt: skip
    return glue


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)


_ATOMS = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant)
_WHOLE = (ast.If, ast.While, ast.Assign, ast.Return, ast.Expr)  # no parentheses needed


def _substitute(entry: _Entry, args: list[str]) -> str:
    """The entry's body with its parameters replaced by the argument texts."""
    if len(args) != len(entry.params):
        raise GlueError(f"{entry.body!r}: {len(entry.params)} arguments expected")
    sub = dict(zip(entry.params, args, strict=True))
    tree = ast.parse(entry.body)
    sites = [(n.col_offset, n.end_col_offset or 0, sub[n.id]) for n in ast.walk(tree)
             if isinstance(n, ast.Name) and n.id in sub]  # fmt: skip
    out = entry.body
    for start, end, text in sorted(sites, reverse=True):
        out = out[:start] + text + out[end:]
    return out


def inline(source: str, glue: Glue, bound: set[str], where: str) -> tuple[str, set[str]]:
    """`source` with glue inlined (line numbers kept); also the board-import names it
    now binds. `bound`: names the file's namespace already has from board imports
    (files loaded before it into one namespace), whose imports are not written again
    unless the source names that import itself."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def pos(lineno: int, col: int) -> int:
        return offsets[lineno - 1] + len(lines[lineno - 1].encode()[:col].decode())

    edits: list[tuple[int, int, str]] = []
    glued: set[str] = set()
    statements = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
    parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "glue":
            glued |= {a.name for a in node.names}
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in glue.entries and not glue.entries[node.func.id].alias):
            name = node.func.id
            entry = glue.entries[name]
            args = []
            for a in node.args:
                if not isinstance(a, ast.Name | ast.Constant | ast.UnaryOp) or node.keywords:
                    raise GlueError(f"{where}:{node.lineno}: {name}() takes names or "
                                    "constants as arguments")  # fmt: skip
                args.append(ast.get_source_segment(source, a) or "")
            text = _substitute(entry, args)
            parent = parents.get(id(node))
            if (isinstance(parent, ast.Assign) and len(parent.targets) == 1
                    and isinstance(parent.targets[0], ast.Name)
                    and parent.targets[0].id == text):  # fmt: skip
                # `x = g(x)` where g gives x back on this board: no statement at all
                edits.append((pos(parent.lineno, parent.col_offset),
                              pos(parent.end_lineno or parent.lineno,
                                  parent.end_col_offset or 0), ""))  # fmt: skip
                continue
            whole = isinstance(parent, _WHOLE)
            if entry.statement and id(node) not in statements:
                raise GlueError(f"{where}:{node.lineno}: {name}() is a statement")
            if not entry.statement and not isinstance(entry.node, _ATOMS) and not whole:
                text = f"({text})"
            edits.append((pos(node.lineno, node.col_offset),
                          pos(node.end_lineno or node.lineno, node.end_col_offset or 0), text))
        elif isinstance(node, ast.Name) and node.id in glue.entries:
            entry = glue.entries[node.id]
            call = parents.get(id(node))
            if entry.alias:
                edits.append((pos(node.lineno, node.col_offset),
                              pos(node.lineno, node.end_col_offset or 0), entry.body))
            elif not (isinstance(call, ast.Call) and call.func is node):
                raise GlueError(f"{where}:{node.lineno}: glue function {node.id} not called")
    # the imports: where each `from glue import` stood, the board imports it needs
    now = set(bound)
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom) and getattr(node, "module", "") != "glue":
            now |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == "glue":
            names = {a.name for a in node.names}
            unknown = names - set(glue.entries) - {n for ns, _ in glue.imports for n in ns}
            if unknown:
                raise GlueError(f"{where}:{node.lineno}: {glue.path} has no "
                                f"{', '.join(sorted(unknown))}")  # fmt: skip
            direct = {n for n in names if n not in glue.entries}  # imported names glued
            need = glue.needs(names)
            wanted = []
            for bound_names, text in glue.imports:
                if bound_names & direct or (bound_names & need and not bound_names <= now):
                    wanted.append(text)
                    now |= bound_names
            edits.append((pos(node.lineno, node.col_offset),
                          pos(node.end_lineno or node.lineno, node.end_col_offset or 0),
                          "; ".join(wanted)))
        elif any(isinstance(n, ast.ImportFrom) and n.module == "glue" for n in ast.walk(node)):
            raise GlueError(f"{where}:{node.lineno}: `from glue import` only at the top level")
    out = source
    for start, end, text in sorted(edits, reverse=True):
        out = out[:start] + text + out[end:]
    ast.parse(out)
    return out, now
