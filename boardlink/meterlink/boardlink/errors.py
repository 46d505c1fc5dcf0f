"""Exceptions of the HIL harness."""

from __future__ import annotations


class BoardError(Exception):
    """The board did something other than what was asked: a traceback in the REPL, a file
    that does not verify, a board that does not boot or is powered off. The message says
    what happened and, where it helps, what to do."""
