"""`meterlink provision` and `meterlink devices ...`."""

from __future__ import annotations

import argparse
import getpass
import importlib
import os
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from meterlink.bundler import SUPPORTED_BOARDS
from meterlink.protocol import Unit
from meterlink.protocol.module_config import config_field
from meterlink.provisioning import registry as reg
from meterlink.provisioning.errors import BadValue, ProvisioningError
from meterlink.provisioning.exports import (
    central_csv,
    central_json,
    device_features,
    export_key_file,
)
from meterlink.provisioning.ports import candidate_ports
from meterlink.provisioning.values import (
    normalise_meter_serial,
    parse_device_id,
    parse_gps,
    parse_pulse_weight,
    parse_reading,
)

T = TypeVar("T")

# config.txt fields an installer may set on the command line (limits and defaults from
# meterlink.protocol.module_config, the module's own table).
_TUNABLE = ("interval", "leak_intervals", "burst_pulses", "burst_intervals", "backflow_pulses")


def register_provision(subparsers: Any) -> None:
    """`meterlink provision` (entry point in pyproject.toml). Talking to a board needs
    the `[installer]` extra; without it this raises ModuleNotFoundError and the
    dispatcher offers no `provision`."""
    for module in ("mpremote", "serial"):
        importlib.import_module(module)
    p = subparsers.add_parser(
        "provision",
        help="put a meter module in service: flash, configure, register, self-test",
        description="Finds the module, flashes the firmware, writes its configuration with "
        "a fresh key, records it in the device registry and checks that a gateway hears it. "
        "Missing values are asked for when run in a terminal. Safe to run again.",
    )
    p.add_argument("--port", help="the module's serial port (default: search)")
    p.add_argument("--list-ports", action="store_true", help="list serial ports and exit")
    p.add_argument("--board", choices=SUPPORTED_BOARDS, help="refuse any other board")
    p.add_argument("--meter-serial", help="serial number printed on the meter")
    p.add_argument("--device-id", help="device id (default: derived from the meter serial)")
    p.add_argument("--reading", help="the dial reading in m³, e.g. 123.456")
    p.add_argument("--pulse-weight", help="volume per pulse, e.g. 1L, 10L, 100mL")
    for name in _TUNABLE:
        f = config_field(name)
        p.add_argument("--" + name.replace("_", "-"), type=int, default=f.default,
                       help=f"{f.meaning} ({f.low}..{f.high}, default {f.default})")
    p.add_argument("--pin-pulse", default="pin0", help="pulse input pin (pin0)")
    p.add_argument("--pin-dir", default="", help="flow-direction input pin, for meters with "
                   "a second reed contact (none by default)")
    p.add_argument("--pin-tamper", default="", help="tamper loop input pin (none by default)")
    p.add_argument("--modem", choices=["uart", "at"], default="uart",
                   help="radio modem: uart (transparent, SLIP) or at (RAK3172-class, RUI3 "
                        "LoRa P2P AT commands); default uart")
    for name, metavar in (("lora_freq", "HZ"), ("lora_sf", "SF"), ("lora_power", "DBM")):
        f = config_field(name)
        p.add_argument("--" + name.replace("_", "-"), type=int, default=f.default,
                       metavar=metavar, help=f"{f.meaning}, {f.low}..{f.high} ({f.default})")
    p.add_argument("--address", default="", help="installation address")
    p.add_argument("--gps", help="latitude,longitude, e.g. 52.3702,4.8952")
    p.add_argument("--installer", help="installer name (default: login name)")
    p.add_argument(
        "--rekey",
        action="store_true",
        help="give a known meter a new key (the gateway restarts its counter window)",
    )
    p.add_argument(
        "--erase-other-files",
        action="store_true",
        help="remove files that are not part of the firmware to make room",
    )
    p.add_argument("--keys-out", type=Path, help="update this gateway key file (mode 0600)")
    p.add_argument("--receiver", help="self-test: serial port of a local receiver")
    p.add_argument("--mqtt", help="self-test: gateway broker HOST:PORT")
    p.add_argument("--selftest-timeout", type=float, default=60.0)
    p.add_argument(
        "--wait-reading",
        action="store_true",
        help="self-test passes only on a reading frame (waits one interval)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--yes", "-y", action="store_true", help="do not ask; fail if a value is missing"
    )
    _registry_arg(p)
    p.set_defaults(func=_cmd_provision)


def register_devices(subparsers: Any) -> None:
    """`meterlink devices` (entry point in pyproject.toml)."""
    d = subparsers.add_parser("devices", help="the device registry: list, show, export, remove")
    _registry_arg(d)
    ds = d.add_subparsers(dest="devices_command", metavar="ACTION")
    ds.required = True
    x = ds.add_parser("list", help="all registered modules")
    x.set_defaults(func=_cmd_list)
    x = ds.add_parser("show", help="one module (by meter serial or device id), with history")
    x.add_argument("ref")
    x.set_defaults(func=_cmd_show)
    x = ds.add_parser("export-keys", help="write the gateway key file (meterlink-keys/1, 0600)")
    x.add_argument("--out", type=Path, required=True)
    x.set_defaults(func=_cmd_export_keys)
    x = ds.add_parser("export", help="device list for the central system (no keys)")
    x.add_argument("--format", choices=["csv", "json"], default="csv")
    x.add_argument("--out", type=Path, help="file to write (default: stdout)")
    x.set_defaults(func=_cmd_export)
    x = ds.add_parser("remove", help="remove a module from the registry")
    x.add_argument("ref")
    x.add_argument("--yes", "-y", action="store_true")
    x.set_defaults(func=_cmd_remove)
    for sub in (d, *ds.choices.values()):
        if sub is not d:
            _registry_arg(sub, default=argparse.SUPPRESS)


def _registry_arg(p: argparse.ArgumentParser, default: Any = None) -> None:
    p.add_argument(
        "--registry",
        type=Path,
        default=default,
        help=f"registry file (default: ${reg.ENV_REGISTRY} or "
        "~/.local/share/meterlink/registry.db)",
    )


def _registry_path(args: argparse.Namespace) -> Path:
    return Path(args.registry) if getattr(args, "registry", None) else reg.default_registry_path()


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except ProvisioningError as exc:
            print(f"error: {exc.problem}\n  -> {exc.remedy}", file=sys.stderr)
            return exc.exit_code

    return run


def _interactive(args: argparse.Namespace) -> bool:
    return not getattr(args, "yes", False) and sys.stdin.isatty()


def _value(
    args: argparse.Namespace,
    flag: str,
    prompt: str,
    parse: Callable[[str], T],
    default: str | None = None,
) -> T:
    given = getattr(args, flag.replace("-", "_"))
    if given is not None:
        return parse(given)
    if default is not None and not _interactive(args):
        return parse(default)
    if not _interactive(args):
        raise BadValue(
            f"--{flag} is missing", f"give --{flag} (or run in a terminal without --yes)"
        )
    while True:
        suffix = f" [{default}]" if default else ""
        text = input(f"{prompt}{suffix}: ").strip() or (default or "")
        try:
            return parse(text)
        except BadValue as exc:
            print(f"  {exc.problem}; {exc.remedy}", file=sys.stderr)


def _reading(args: argparse.Namespace) -> Decimal:
    if args.reading is not None or not _interactive(args):
        return _value(args, "reading", "", parse_reading)
    while True:  # typed twice: a typo in the register is costly to fix later
        first = _value(args, "reading", "Dial reading in m³ (e.g. 123.456)", parse_reading)
        second = _value(args, "reading", "Same reading again to confirm", parse_reading)
        if first == second:
            return first
        print(f"  the two readings differ ({first} and {second}); enter it again", file=sys.stderr)


@_guarded
def _cmd_provision(args: argparse.Namespace) -> int:
    from meterlink.provisioning.provision import Alarms, ProvisionRequest, provision

    if args.list_ports:
        for c in candidate_ports():
            print(f"{c.device}\t{c.description}{'  (likely a module)' if c.likely else ''}")
        return 0
    serial_no = _value(args, "meter-serial", "Meter serial", normalise_meter_serial)
    weight = _value(args, "pulse-weight", "Pulse weight", parse_pulse_weight, default="1L")
    reading = _reading(args)
    mqtt = None
    if args.mqtt:
        host, _, port = args.mqtt.rpartition(":")
        if not host or not port.isdigit():
            raise BadValue(
                f"--mqtt {args.mqtt!r} is not HOST:PORT", "e.g. --mqtt 192.168.1.20:1883"
            )
        mqtt = (host, int(port))
    for name in _TUNABLE:
        f = config_field(name)
        if not f.low <= getattr(args, name) <= f.high:
            flag = "--" + name.replace("_", "-")
            raise BadValue(
                f"{flag} {getattr(args, name)} is out of range", f"use {f.low}..{f.high} for {flag}"
            )
    request = ProvisionRequest(
        meter_serial=serial_no,
        reading_m3=reading,
        pulse_weight=weight,
        registry_path=_registry_path(args),
        port=args.port,
        board=args.board,
        device_id=parse_device_id(args.device_id) if args.device_id else None,
        interval_s=args.interval,
        alarms=Alarms(
            args.leak_intervals, args.burst_pulses, args.burst_intervals, args.backflow_pulses
        ),
        pin_pulse=args.pin_pulse,
        pin_dir=args.pin_dir,
        pin_tamper=args.pin_tamper,
        modem=1 if args.modem == "at" else 0,
        lora_freq=args.lora_freq,
        lora_sf=args.lora_sf,
        lora_power=args.lora_power,
        address=args.address,
        gps=parse_gps(args.gps) if args.gps else None,
        installer=args.installer or os.environ.get("USER") or getpass.getuser(),
        rekey=args.rekey,
        erase_other_files=args.erase_other_files,
        keys_out=args.keys_out,
        receiver=args.receiver,
        mqtt=mqtt,
        selftest_timeout=args.selftest_timeout,
        wait_reading=args.wait_reading,
    )
    result = provision(request, print, show_progress=not args.no_progress)
    dev = result.device
    print(f"registered: device {dev.device_id} meter {dev.meter_serial} state {dev.state}")
    return 0


@_guarded
def _cmd_list(args: argparse.Namespace) -> int:
    with reg.Registry(_registry_path(args)) as r:
        devices = r.all()
    print(
        f"{'device_id':>10}  {'meter_serial':<16} {'state':<10} {'selftest':<8} "
        f"{'rssi':>5}  provisioned_at        address"
    )
    for d in devices:
        rssi = "" if d.rssi is None else str(d.rssi)
        print(
            f"{d.device_id:>10}  {d.meter_serial:<16} {d.state:<10} {d.selftest:<8} "
            f"{rssi:>5}  {d.provisioned_at:<21} {d.address}"
        )
    print(f"{len(devices)} device(s)", file=sys.stderr)
    return 0


def _find(r: reg.Registry, ref: str) -> reg.Device:
    dev = r.find(ref)
    if dev is None:
        raise BadValue(
            f"no module {ref!r} in the registry {r.path}",
            "give a meter serial or device id from `meterlink devices list`",
        )
    return dev


@_guarded
def _cmd_show(args: argparse.Namespace) -> int:
    with reg.Registry(_registry_path(args)) as r:
        d = _find(r, args.ref)
        events = r.events(d.device_id)
    for name, value in (
        ("device_id", f"{d.device_id} (0x{d.device_id:08x})"),
        ("meter_serial", d.meter_serial),
        ("state", d.state),
        ("selftest", f"{d.selftest} rssi {d.rssi}" if d.selftest else "-"),
        ("reading_m3", d.reading_m3),
        ("initial_register", f"{d.initial_register} pulses"),
        ("pulse_weight", f"{d.pulse_weight} {Unit(d.unit).symbol}"),
        ("interval_s", d.interval_s),
        ("address", d.address),
        ("gps", "" if d.latitude is None else f"{d.latitude},{d.longitude}"),
        ("installer", d.installer),
        ("provisioned_at", d.provisioned_at),
        ("firmware_version", d.firmware_version),
        ("board", d.board),
        ("features", _features_line(d)),
        ("key", f"(generation {d.key_gen}; never shown, see export-keys)"),
    ):
        print(f"{name:>17}: {value}")
    for at, event, detail in events:
        print(f"  {at} {event} {detail}")
    return 0


def _features_line(d: reg.Device) -> str:
    recorded = d.feature_set
    if recorded is not None:
        return ", ".join(sorted(recorded)) or "none of the optional ones"
    known = device_features(d)
    if known is None:
        return "not recorded (the gateway assumes none of the optional ones)"
    return (f"{', '.join(sorted(known)) or 'none of the optional ones'} (not recorded; "
            f"what firmware {d.firmware_version >> 8}.{d.firmware_version & 0xFF} for "
            f"{d.board} shipped)")


@_guarded
def _cmd_export_keys(args: argparse.Namespace) -> int:
    with reg.Registry(_registry_path(args)) as r:
        n = export_key_file(r.all(), args.out)
    print(
        f"wrote {n} device key(s) to {args.out} (mode 0600); copy it to the gateway and "
        f"send the gateway SIGHUP to load it",
        file=sys.stderr,
    )
    return 0


@_guarded
def _cmd_export(args: argparse.Namespace) -> int:
    with reg.Registry(_registry_path(args)) as r:
        devices = r.all()
    text = central_csv(devices) if args.format == "csv" else central_json(devices)
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


@_guarded
def _cmd_remove(args: argparse.Namespace) -> int:
    with reg.Registry(_registry_path(args)) as r:
        d = _find(r, args.ref)
        if not args.yes:
            if not sys.stdin.isatty():
                raise BadValue("removing needs confirmation", "add --yes")
            answer = input(
                f"remove device {d.device_id} (meter {d.meter_serial}) and its key? [y/N] "
            )
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing removed", file=sys.stderr)
                return 1
        r.remove(d.device_id)
    print(
        f"removed device {d.device_id} (meter {d.meter_serial}); re-export the gateway key file",
        file=sys.stderr,
    )
    return 0
