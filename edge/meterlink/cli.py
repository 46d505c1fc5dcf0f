"""The `meterlink` command: one entry point, one group of subcommands per part.

Each part owns its subcommands in its own `cli.py`, which exposes
`register(subparsers)`; every parser it adds sets `func(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# The parts that contribute subcommands, in the order `--help` lists them.
PART_CLIS = (
    "meterlink.protocol.cli",  # frame
    "meterlink.edge.gateway_cli",  # gateway
    "meterlink.provisioning.cli",  # provision, devices
    "meterlink.hil.cli",  # demo, boards
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meterlink",
        description="Remote water-meter reading: firmware tools, edge gateway, provisioning.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in PART_CLIS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # that part is not built yet
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
