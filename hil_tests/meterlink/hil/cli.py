"""`meterlink demo`: the whole chain on emulated modules (see meterlink.hil.demo)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be above 0")
    return value


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the whole chain on emulated modules",
        description=(
            "Starts a local Mosquitto, boots emulated meter modules (QEMU microbit with "
            "MicroPython 1.9.2 behind a transparent UART modem; the last one an emulated "
            "Raspberry Pi Pico with MicroPython 1.27.0 driving an emulated RAK3172 AT "
            "modem), provisions them through the real installer path, starts "
            "the gateway behind emulated LoRa concentrators and drives water flow on their pins: "
            "a household day, a leak that never stops, backflow events; midway a power "
            "cut on one module and a broker outage. Ctrl-C stops everything."
        ),
    )
    p.add_argument("--modules", type=int, default=3, choices=range(1, 9), metavar="N",
                   help="number of emulated modules, 1..8 (default 3)")
    p.add_argument("--interval", type=int, default=20, metavar="S",
                   help="length of one metering interval in seconds: the speed-up; 15 "
                        "minutes in the field (default 20)")
    p.add_argument("--duration", type=_positive, default=None, metavar="S",
                   help="stop after S seconds; exit 0 only if readings from every module "
                        "and the leak and backflow alarms reached the broker "
                        "(default: run until Ctrl-C)")
    p.add_argument("--radio", choices=("lora", "channel"), default="lora",
                   help="lora (default): UART modems on a LoRa medium, two emulated "
                        "concentrators, the packet-forwarder protocol to the gateway; "
                        "channel: the ideal serial channel to receiver ptys, lossy by --loss")
    p.add_argument("--at-modules", type=int, default=None, choices=range(0, 9), metavar="N",
                   help="how many of the modules (the last ones) are emulated Picos with an "
                        "AT modem, 0..8 (default 1; --radio lora only). A Pico costs more: "
                        "measured here about 0.23-0.34 of a host core each against 0.05-0.07 "
                        "for an nRF51, and about 17 s more to boot and provision")
    p.add_argument("--loss", type=float, default=0.05, metavar="P",
                   help="frame loss probability of --radio channel (default 0.05)")
    p.add_argument("--seed", type=int, default=1, help="seed for flow and radio (default 1)")
    p.add_argument("--http-port", type=int, default=8080, metavar="PORT",
                   help="status page port on 127.0.0.1 (default 8080; 0 picks a free one)")
    p.add_argument("--workdir", type=Path, default=Path("demo-run"),
                   help="logs, registry, gateway database (default ./demo-run; replaced)")
    p.set_defaults(func=_run)


def _usage_error(message: str) -> NoReturn:
    print(f"meterlink demo: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _at_modules(args: argparse.Namespace) -> int:
    """--at-modules as given, checked against --modules and --radio; 1 (0 on the serial
    channel) when not given."""
    n = args.at_modules
    if n is None:
        return 1 if args.radio == "lora" else 0
    if n and args.radio != "lora":
        _usage_error(f"--at-modules {n} needs --radio lora: the serial channel carries "
                     "only a transparent modem's SLIP frames; leave --at-modules out or "
                     "give 0")
    if n > args.modules:
        _usage_error(f"--at-modules {n} is more than --modules {args.modules}; give at "
                     f"most {args.modules}")
    return int(n)


def _run(args: argparse.Namespace) -> int:
    from meterlink.hil.broker import free_port
    from meterlink.hil.demo import DemoOptions, run_demo

    at_modules = _at_modules(args)

    port = args.http_port
    if port:
        import socket

        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                port = free_port()
                print(f"port {args.http_port} is taken: the status page uses {port}")
    options = DemoOptions(
        modules=args.modules,
        interval_s=args.interval,
        duration_s=args.duration,
        seed=args.seed,
        loss=args.loss,
        radio=args.radio,
        at_modules=at_modules,
        http_port=port,
        workdir=args.workdir,
        power_cut_at_s=4.5 * args.interval,
        outage_at_s=6.5 * args.interval,
    )
    return run_demo(options)
