"""Run `meterlink` as on a machine that lacks some modules: a role installed with one
extra only (a gateway without mpremote), or a part that must not be loaded at all.

Every attempt to import an absent module is printed to stderr as `ABSENT IMPORT name`
and then fails as a missing module does, so a test can tell "not needed" from
"needed and caught"."""

from __future__ import annotations

import sys
from collections.abc import Iterable

MARK = "ABSENT IMPORT "

_LAUNCH = """
import sys
ABSENT = {absent!r}

class Absent:
    def find_spec(self, name, path=None, target=None):
        if any(name == a or name.startswith(a + ".") for a in ABSENT):
            print({mark!r} + name, file=sys.stderr, flush=True)
            raise ModuleNotFoundError("No module named " + repr(name), name=name)
        return None

sys.meta_path.insert(0, Absent())
from meterlink.cli import main
sys.exit(main(sys.argv[1:]))
"""


def meterlink_without(absent: Iterable[str]) -> list[str]:
    """argv prefix that runs the `meterlink` command with `absent` unimportable."""
    return [sys.executable, "-c", _LAUNCH.format(absent=tuple(absent), mark=MARK)]
