"""The `meterlink` command: one dispatcher, subcommands contributed by the parts.

The dispatcher belongs to no part. Each subcommand is an entry point in the group
`meterlink.commands` (pyproject.toml; the HIL harness's own distribution adds `demo`):
its name is the subcommand, its value the part's `register(subparsers)`, and every
parser that adds sets `func(args) -> int`.

Only the subcommand being run is loaded, so `meterlink gateway run` imports the gateway
and nothing of provisioning or the harness. A subcommand whose part lacks a dependency
here (`provision` on a gateway installed with only the `[gateway]` extra) is not
offered; `--help` names it and the extra that brings it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points

COMMAND_GROUP = "meterlink.commands"

# Which extra of the meterlink distribution brings a subcommand's dependencies.
_EXTRA_FOR = {"gateway": "gateway", "provision": "installer", "devices": "installer"}
# Listed in this order in --help; others (the harness's demo) after them.
_ORDER = ("frame", "gateway", "provision", "devices")


def command_entry_points() -> list[EntryPoint]:
    found = {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}
    rank = {name: i for i, name in enumerate(_ORDER)}
    return [found[n] for n in sorted(found, key=lambda n: (rank.get(n, len(rank)), n))]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every installed subcommand, or with `only` that one."""
    parser = argparse.ArgumentParser(
        prog="meterlink",
        description="Remote water-meter reading: firmware tools, edge gateway, provisioning.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    missing: list[str] = []
    for ep in command_entry_points():
        if only is not None and ep.name != only:
            continue
        try:
            ep.load()(subparsers)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] == "meterlink":
                raise  # our own code is broken, not a missing extra
            extra = _EXTRA_FOR.get(ep.name)
            hint = f"pip install 'meterlink[{extra}]'" if extra else "install its part"
            missing.append(f"{ep.name} (needs {exc.name}: {hint})")
    if missing:
        parser.epilog = "not available here: " + "; ".join(missing)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    names = {ep.name for ep in command_entry_points()}
    command = args_in[0] if args_in and args_in[0] in names else None
    parser = build_parser(only=command)
    if command is not None and parser.epilog:
        print(f"meterlink: {parser.epilog}", file=sys.stderr)
        return 2
    args = parser.parse_args(args_in)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
