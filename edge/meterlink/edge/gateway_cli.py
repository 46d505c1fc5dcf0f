"""`meterlink gateway run | check-config | example-config`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from meterlink.edge.config import EXAMPLE_CONFIG, ConfigError, load_config
from meterlink.edge.outbox import OutboxError, space_check
from meterlink.edge.registry import DeviceRegistry, RegistryError


def _run(args: argparse.Namespace) -> int:
    from meterlink.edge.app import Gateway
    from meterlink.edge.logs import configure_logging

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    configure_logging(cfg.log.level)
    try:
        return asyncio.run(Gateway(cfg, drain_s=args.drain_s).run())
    except (RegistryError, OutboxError) as exc:
        print(f"gateway cannot start: {exc}", file=sys.stderr)
        return 1


def _check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        registry = DeviceRegistry(cfg.keys_file)
        n = registry.load()
    except (ConfigError, RegistryError) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    for w in registry.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if registry.unrecorded:
        print(f"warning: {cfg.keys_file}: {len(registry.unrecorded)} device(s) without "
              "recorded features (the file was exported before they were recorded, e.g. "
              f"{registry.unrecorded[0]}); the gateway will refuse config and time commands "
              "for them: export the key file again from the device registry (meterlink "
              "devices export-keys)", file=sys.stderr)
    errors, warnings = space_check(cfg.outbox.path, cfg.outbox.max_bytes,
                                   cfg.outbox.min_free_bytes)
    for w in warnings:
        print(f"warning: {args.config}: {w}", file=sys.stderr)
    if errors:
        for e in errors:
            print(f"config error: {args.config}: {e}", file=sys.stderr)
        return 2
    receivers = [f"serial {r.name} {r.port}" for r in cfg.serial] + [
        f"udp {r.name} {r.host}:{r.port}" for r in cfg.udp]
    print(f"ok: gateway {cfg.gateway_id}, {n} devices, receivers: {', '.join(receivers)}; "
          f"broker {cfg.mqtt.host}:{cfg.mqtt.port} (MQTT {cfg.mqtt.protocol}"
          f"{', TLS' if cfg.mqtt.tls else ''}); outbox {cfg.outbox.path}")
    return 0


def _example(args: argparse.Namespace) -> int:
    sys.stdout.write(EXAMPLE_CONFIG)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("gateway", help="the edge gateway: receivers -> MQTT",
                              description="Run or check the edge gateway.")
    sub = p.add_subparsers(dest="gateway_command", metavar="SUBCOMMAND")
    sub.required = True
    run = sub.add_parser("run", help="run the gateway until SIGTERM")
    run.add_argument("--config", required=True, help="path of gateway.toml")
    run.add_argument("--drain-s", type=float, default=5.0,
                     help="on SIGTERM, seconds to let the backlog reach the broker")
    run.set_defaults(func=_run)
    check = sub.add_parser("check-config", help="validate a configuration and its key file")
    check.add_argument("--config", required=True, help="path of gateway.toml")
    check.set_defaults(func=_check)
    ex = sub.add_parser("example-config", help="print a commented example configuration")
    ex.set_defaults(func=_example)
