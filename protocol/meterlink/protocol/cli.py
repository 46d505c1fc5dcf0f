"""`meterlink frame decode|encode`: inspect and build frames by hand."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from .bodies import body_to_map
from .constants import AlarmFlags, FrameType, LinkType, Unit
from .crypto import DeviceKeys
from .errors import ProtocolError, UnknownDevice
from .frame import Frame, Header, decode_frame, decode_received, encode_frame
from .keyfile import KeyFileError, load_key_file
from .link import END, LinkFrame, decode_link_datagram, encode_link, encode_rxinfo
from .link_stream import LinkDecoder
from .named import body_from_fields, body_to_fields, map_to_json

__all__ = ["register"]

TYPE_NAMES = {t.name.lower(): t for t in FrameType}


class UsageError(Exception):
    """A command-line argument is wrong; the message says which and how to fix it."""


def parse_hex(text: str, what: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise UsageError(f"{what} is not hex: {text!r}") from None


def parse_key(text: str) -> bytes:
    key = parse_hex(text, "--key")
    if len(key) != 16:
        raise UsageError(f"--key must be 16 bytes (32 hex digits), got {len(key)} bytes")
    return key


def load_keys(path: str) -> dict[int, bytes]:
    """Keys by device id from a gateway key file (meterlink.protocol.keyfile)."""
    try:
        return {dev: entry.key for dev, entry in load_key_file(path).items()}
    except KeyFileError as exc:
        raise UsageError(f"cannot use key file: {exc}") from None


def _split_input(raw: bytes) -> tuple[str, LinkFrame | None, bytes]:
    """Tell a SLIP link frame, an unescaped link frame and a radio payload apart.

    A radio payload starts with 0x2N (version 2); link types are 0x01 and 0x02.
    """
    if raw[:1] == bytes([END]):
        decoder = LinkDecoder()
        results = decoder.feed(raw if raw.endswith(bytes([END])) else raw + bytes([END]))
        if len(results) != 1:
            raise UsageError(f"input holds {len(results)} link frames; give exactly one")
        result = results[0]
        if isinstance(result, ProtocolError):
            raise result
        return "link frame (SLIP)", result, result.payload
    if raw[:1] in (bytes([LinkType.DATA]), bytes([LinkType.RXINFO])):
        link = decode_link_datagram(raw)
        return "link frame (without SLIP)", link, link.payload
    return "radio payload", None, raw


def _decode_report(form: str, link: LinkFrame | None, frame: Frame) -> dict[str, Any]:
    header = frame.header
    return {
        "form": form,
        "link": None
        if link is None
        else {"link_type": link.link_type.name, "rssi": link.rssi, "snr_qdb": link.snr_qdb},
        "payload": frame.payload.hex(),
        "size": len(frame.payload),
        "header": {
            "version": header.version,
            "frame_type": header.frame_type.name.lower(),
            "frame_type_number": int(header.frame_type),
            "direction": "uplink" if header.frame_type.is_uplink else "downlink",
            "device_id": header.device_id,
            "counter_on_air": header.counter,
        },
        "counter": frame.counter,
        "body": body_to_fields(frame.body),
        "map": map_to_json(body_to_map(frame.body)),
    }


def _print_text(report: dict[str, Any]) -> None:
    print(f"form:      {report['form']}, {report['size']} byte radio payload")
    link = report["link"]
    if link:
        line = f"link:      {link['link_type']}"
        if link["rssi"] is not None:
            line += f", rssi {link['rssi']} dBm, snr {link['snr_qdb'] / 4:g} dB"
        print(line)
    h = report["header"]
    print(f"version:   {h['version']}")
    print(f"type:      {h['frame_type']} ({h['frame_type_number']}, {h['direction']})")
    print(f"device id: {h['device_id']} (0x{h['device_id']:08x})")
    print(f"counter:   {report['counter']} (on air: {h['counter_on_air']})")
    if not report["body"]:
        print("body:      (empty)")
    for name, value in report["body"].items():
        print(f"  {name}: {_readable(name, value)}")


def _readable(name: str, value: Any) -> str:
    if name == "unit":
        return f"{value} ({Unit(value).name})"
    if name in ("alarms", "raised"):
        names = [f.name.lower() for f in AlarmFlags if f.name and value & f]
        return f"{value} ({'|'.join(names) or 'none'})"
    if name == "deltas":
        return f"{len(value)} intervals, newest first: {', '.join(map(str, value))}"
    return str(value)


def _cmd_decode(args: argparse.Namespace) -> int:
    raw = parse_hex(args.frame, "FRAME_HEX")
    if not raw:
        raise UsageError("FRAME_HEX is empty")
    form, link, payload = _split_input(raw)
    if args.key is not None:
        key = parse_key(args.key)
    else:
        keys = load_keys(args.keys)
        device_id = Header.parse(payload).device_id
        if device_id not in keys:
            raise UnknownDevice(f"no key for device {device_id} (0x{device_id:08x}) in {args.keys}")
        key = keys[device_id]
    frame = decode_received(payload, DeviceKeys.derive(key), highest=args.highest)
    report = _decode_report(form, link, frame)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_text(report)
    return 0


def _parse_fields(pairs: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--field {pair!r}: write NAME=VALUE, e.g. register=123")
        fields[name.strip()] = value.strip()
    return fields


def _cmd_encode(args: argparse.Namespace) -> int:
    key = parse_key(args.key)
    frame_type = TYPE_NAMES[args.type]
    if args.json is not None:
        try:
            fields = json.loads(args.json)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--json is not JSON: {exc}") from None
        if not isinstance(fields, dict):
            raise UsageError('--json must be an object of field names, e.g. {"unix_time": 1}')
    else:
        fields = {}
    fields.update(_parse_fields(args.field or []))
    try:
        device_id, counter = int(args.device_id, 0), int(args.counter, 0)
        body = body_from_fields(frame_type, fields)
        payload = encode_frame(frame_type, device_id, counter, body, key)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    sent = decode_frame(payload, key, counter=counter).body
    if sent != body:
        if hasattr(body, "deltas"):
            dropped = len(getattr(body, "deltas", ())) - len(getattr(sent, "deltas", ()))
            print(f"note: dropped the {dropped} oldest deltas to fit the payload",
                  file=sys.stderr)
        else:  # a status: optional keys left out in the order of spec 4.4
            given, kept = body_to_fields(body), body_to_fields(sent)
            left_out = ", ".join(k for k in given if k not in kept)
            print(f"note: left out {left_out} to fit the payload (spec 4.4)", file=sys.stderr)
    if args.rssi is not None or args.snr is not None:
        print(encode_rxinfo(payload, args.rssi or 0, args.snr or 0).hex())
    elif args.link:
        print(encode_link(LinkType.DATA, payload).hex())
    else:
        print(payload.hex())
    return 0


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ProtocolError as exc:
            print(f"error: {exc.code}: {exc}", file=sys.stderr)
        except UsageError as exc:
            print(f"error: usage: {exc}", file=sys.stderr)
        return 2

    return run


def register(subparsers: Any) -> None:
    """Add `frame decode` and `frame encode` to the `meterlink` command."""
    frame = subparsers.add_parser(
        "frame",
        help="decode or build radio payloads and link frames (wire format v2)",
        description="Decode or build radio payloads and link frames (docs/protocol.md).",
    )
    actions = frame.add_subparsers(dest="frame_command", metavar="ACTION")
    actions.required = True

    dec = actions.add_parser(
        "decode",
        help="check and print a frame",
        description="Check and print a radio payload, or a link frame with or without SLIP. "
        "Errors print 'error: <code>: <message>' and exit 2.",
    )
    keys = dec.add_mutually_exclusive_group(required=True)
    keys.add_argument("--key", help="the device's root key, 32 hex digits")
    keys.add_argument("--keys", metavar="FILE", help="a gateway key file (meterlink-keys/1)")
    dec.add_argument(
        "--highest",
        type=int,
        default=-1,
        help="the highest counter accepted from this device, to extend the 16 on-air bits "
        "from (default: none; the counters below 2^20 that end in them are tried)",
    )
    dec.add_argument("--json", action="store_true", help="print JSON")
    dec.add_argument("frame", metavar="FRAME_HEX", help="the bytes, in hex")
    dec.set_defaults(func=_guarded(_cmd_decode))

    enc = actions.add_parser(
        "encode",
        help="build a frame and print it in hex",
        description="Build a radio payload (or with --link, a link frame) and print its hex.",
    )
    enc.add_argument("--key", required=True, help="the device's root key, 32 hex digits")
    enc.add_argument("--type", required=True, choices=sorted(TYPE_NAMES), help="frame type")
    enc.add_argument("--device-id", required=True, help="device id (decimal or 0x hex)")
    enc.add_argument(
        "--counter", required=True, help="frame counter, 32 bits (16 of them go on air)"
    )
    enc.add_argument(
        "--field",
        action="append",
        metavar="NAME=VALUE",
        help="a body field by its spec name, e.g. register=123, deltas=4,0,7, alarms=leak|burst",
    )
    enc.add_argument(
        "--json", metavar="BODY_JSON", help='body fields as JSON, e.g. {"unix_time": 1}'
    )
    enc.add_argument("--link", action="store_true", help="print a DATA link frame (SLIP)")
    enc.add_argument("--rssi", type=int, help="print an RXINFO link frame with this rssi (dBm)")
    enc.add_argument("--snr", type=int, help="RXINFO snr in quarter dB")
    enc.set_defaults(func=_guarded(_cmd_encode))
