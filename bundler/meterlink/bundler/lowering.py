"""Per-board feature lowering: the on-board sources test each optional feature as a whole
statement, `if HAS_X:` (optionally with `else:`), with the flags of `mp/fields.py`; code
that two or more features share tests them joined by `or` only, `if HAS_X or HAS_Y:` (kept
if any of them is on). For a bundle, the branch its feature set leaves out is dropped and
the other kept, dedented, in place of the `if`, so that a board pays no flash or heap byte
for a feature it leaves out (a `const` flag alone would still cost the test's bytecode and
the dead block's source).

Line numbers are kept (removed lines become blank lines), so that the symbol map
(meterlink.bundler.symbols) still names the source line of each on-board statement.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection

from meterlink.protocol.features import FEATURES

__all__ = ["FLAGS", "FeatureSourceError", "flag_name", "lower_features"]


def flag_name(feature: str) -> str:
    """The flag in mp/fields.py that tests `feature`: HAS_ and the name in capitals."""
    return "HAS_" + feature.upper()


FLAGS: dict[str, str] = {flag_name(f.name): f.name for f in FEATURES}  # flag -> feature
_FLAG_USE = re.compile(r"\bHAS_[A-Z0-9_]+\b")


class FeatureSourceError(ValueError):
    """A source uses a feature flag in a way the lowering cannot take."""


def _flags(node: ast.stmt) -> frozenset[str] | None:
    """The features an `if HAS_X:` or `if HAS_X or HAS_Y ...:` statement tests (its body
    is kept if any of them is on); None for any other statement, so that a flag in it is
    refused (with `and`, `not`, or beside anything but another flag)."""
    if not isinstance(node, ast.If):
        return None
    test = node.test
    terms = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or) else [test]
    names = [t.id for t in terms if isinstance(t, ast.Name) and t.id in FLAGS]
    if len(names) < len(terms):
        return None
    return frozenset(FLAGS[n] for n in names)


def lower_features(source: str, on: Collection[str], path: str = "<source>") -> str:
    """`source` with each `if HAS_X:` statement replaced by its body (feature X in `on`)
    or by its `else:` body (or nothing), dedented to the `if`'s level; likewise for
    `if HAS_X or HAS_Y:` (its body kept if X or Y is in `on`); the same number of lines.
    Raises FeatureSourceError (naming `path` and the line) for a flag used any other way:
    in an expression, with `and` or `not`, with `elif`, or with a body on the header's
    line."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    blank: set[int] = set()  # 1-based line numbers
    dedent: dict[int, int] = {}
    passes: dict[int, int] = {}  # line -> column of a `pass` that keeps a block

    def fail(line: int, why: str) -> FeatureSourceError:
        return FeatureSourceError(f"{path}:{line}: {why}; write `if HAS_X:` as a whole "
                                  "statement (flags joined by `or` only), its body on "
                                  "the lines below (optionally with `else:`)")

    def first_word(node: ast.stmt) -> str:
        return lines[node.lineno - 1][node.col_offset :].split(None, 1)[0].rstrip(":")

    def block(stmts: list[ast.stmt]) -> bool:
        """Lowers the statements of one block; whether any of them is kept."""
        kept = False
        for node in stmts:
            features = _flags(node)
            if features is None or not isinstance(node, ast.If):
                kept = True
                for field in ("body", "orelse", "finalbody"):
                    sub = getattr(node, field, None)
                    if sub and isinstance(sub[0], ast.stmt):
                        whole(sub)
                for handler in getattr(node, "handlers", []):
                    whole(handler.body)
                continue
            if node.body[0].lineno <= (node.test.end_lineno or node.lineno):
                raise fail(node.lineno, "a body on the `if` line")
            if node.orelse and first_word(node.orelse[0]) == "elif":
                raise fail(node.orelse[0].lineno, "`elif` after a feature test")
            if node.orelse and lines[node.orelse[0].lineno - 1].lstrip().startswith("else"):
                raise fail(node.orelse[0].lineno, "a body on the `else` line")
            live = node.orelse if features.isdisjoint(on) else node.body
            first = live[0].lineno if live else 0
            last = (live[-1].end_lineno or live[-1].lineno) if live else -1
            end = node.end_lineno or node.lineno
            for n in range(node.lineno, end + 1):
                if first <= n <= last:
                    dedent[n] = dedent.get(n, 0) + live[0].col_offset - node.col_offset
                else:
                    blank.add(n)
            if live and block(live):
                kept = True
        return kept

    def whole(stmts: list[ast.stmt]) -> None:
        """A block that must keep a statement (a body of def, for, try, ...)."""
        if not block(stmts):
            passes[stmts[0].lineno] = stmts[0].col_offset

    block(tree.body)
    out = []
    for n, text in enumerate(lines, 1):
        if n in passes:
            out.append(" " * (passes[n] - dedent.get(n, 0)) + "pass\n")
        elif n in blank:
            out.append("\n")
        elif dedent.get(n):
            cut = min(dedent[n], len(text) - len(text.lstrip(" ")))
            out.append(text[cut:])
        else:
            out.append(text)
    lowered = "".join(out)
    for n, text in enumerate(lowered.splitlines(), 1):
        code = text.split("#", 1)[0]
        m = _FLAG_USE.search(code)
        if m and not code.lstrip().startswith(("from ", "import ")):
            raise fail(n, f"{m.group(0)} used inside a statement")
    try:
        ast.parse(lowered)
    except SyntaxError as exc:  # e.g. a multi-line string in a block that moved
        raise fail(exc.lineno or 0, f"the lowered source does not parse ({exc.msg})") from None
    return lowered
