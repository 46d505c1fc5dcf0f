"""MQTT topics and JSON payloads built from verified frames (reference: docs/mqtt.md)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from meterlink.edge.registry import Device
from meterlink.protocol import Alarm, AlarmFlags, Frame, Reading, Status, Unit
from meterlink.protocol.constants import SAFE_MODE_ERRORS, STATUS_REASONS

KIND_BY_TYPE = {0: "reading", 1: "alarm", 2: "status"}
TOPIC_BY_KIND = {"reading": "readings", "alarm": "alarms", "status": "status"}


def iso(ts: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-01-31T12:00:00.000Z."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def alarm_names(flags: int | None) -> list[str]:
    return AlarmFlags(int(flags or 0)).names()


def litres(pulses: int, pulse_weight: int, unit: int) -> float:
    return round(pulses * pulse_weight * Unit(unit).litres(1), 6)


def topic(prefix: str, kind: str, device_id: int) -> str:
    return f"{prefix}/{TOPIC_BY_KIND[kind]}/{device_id}"


def command_filter(prefix: str) -> str:
    """What the gateway subscribes to: commands from the central system, one level per
    device (so its own replies, a level below, do not come back to it)."""
    return f"{prefix}/commands/+"


def command_reply_topic(prefix: str, device: str) -> str:
    """Where the gateway answers a command sent on `commands/<device>`."""
    return f"{prefix}/commands/{device}/reply"


def command_reply(*, device: str, gateway_id: str, outcome: str, command: bytes,
                  error: str | None = None, **extra: Any) -> dict[str, Any]:
    """The reply to one command (docs/mqtt.md): what became of it and why. `id` and
    `type` are the command's own, when it is a JSON object that has them."""
    try:
        data = json.loads(command)
    except (ValueError, UnicodeDecodeError):
        data = None
    sent = data if isinstance(data, dict) else {}
    device_id: int | None = int(device) if device.isdigit() else None
    out: dict[str, Any] = {"device_id": device_id, "gateway_id": gateway_id,
                           "id": sent.get("id"), "type": sent.get("type"),
                           "outcome": outcome}
    if error is not None:
        out["error"] = error
    out.update(extra)
    out["at"] = iso(time.time())
    return out


def _reading(body: Reading, received_at: float) -> dict[str, Any]:
    weight, unit = body.pulse_weight, int(body.unit)
    newest_end = received_at - body.age_s
    intervals = []
    for k, pulses in enumerate(body.deltas):
        seq = body.interval_seq - k
        if seq < 0:
            break
        intervals.append({"seq": seq, "end": iso(newest_end - k * body.interval_s),
                          "pulses": pulses, "litres": litres(pulses, weight, unit)})
    return {"register": body.register, "volume_l": litres(body.register, weight, unit),
            "pulse_weight": weight, "unit": Unit(unit).symbol, "interval_s": body.interval_s,
            "interval_seq": body.interval_seq, "intervals": intervals,
            "alarms": alarm_names(body.alarms)}


def _alarm(body: Alarm, device: Device) -> dict[str, Any]:
    out: dict[str, Any] = {
        "register": body.register,
        "volume_l": litres(body.register, device.pulse_weight, device.unit),
        "pulse_weight": device.pulse_weight, "unit": Unit(device.unit).symbol,
        "interval_seq": body.interval_seq,
        "raised": alarm_names(body.raised), "active": alarm_names(body.alarms)}
    if body.reverse is not None:
        out["reverse"] = body.reverse
    return out


def _status(body: Status, device: Device) -> dict[str, Any]:
    out: dict[str, Any] = {
        "battery_pct": body.battery_pct,
        "fw_version": f"{body.fw_version >> 8}.{body.fw_version & 0xFF}",
        "resets": body.resets,
        "reason": STATUS_REASONS.get(body.reason, str(body.reason))}
    if body.register is not None:
        weight = body.pulse_weight if body.pulse_weight is not None else device.pulse_weight
        unit = int(body.unit) if body.unit is not None else device.unit
        out.update(register=body.register, volume_l=litres(body.register, weight, unit),
                   pulse_weight=weight, unit=Unit(unit).symbol)
    if body.interval_s is not None:
        out["interval_s"] = body.interval_s
    if body.alarms is not None:
        out["alarms"] = alarm_names(body.alarms)
    if body.reverse is not None:
        out["reverse"] = body.reverse
    for name in ("leak_intervals", "burst_pulses", "burst_intervals", "backflow_pulses"):
        value = getattr(body, name)  # the thresholds the module applies (protocol 4.4)
        if value is not None:
            out[name] = value
    if body.error is not None:
        out["error"] = SAFE_MODE_ERRORS.get(body.error, str(body.error))
    return out


def build_body(frame: Frame, device: Device, gateway_id: str,
               received_at: float) -> tuple[str, dict[str, Any]]:
    """(kind, payload without "rssi"/"receivers") for an accepted uplink frame."""
    kind = KIND_BY_TYPE[int(frame.frame_type)]
    payload: dict[str, Any] = {
        "key": f"{frame.device_id}:{frame.counter}",
        "device_id": frame.device_id,
        "counter": frame.counter,
        "meter_serial": device.meter_serial,
        "gateway_id": gateway_id,
    }
    body = frame.body
    if isinstance(body, Reading):
        payload.update(_reading(body, received_at))
    elif isinstance(body, Alarm):
        payload.update(_alarm(body, device))
    elif isinstance(body, Status):
        payload.update(_status(body, device))
    payload["received_at"] = iso(received_at)
    return kind, payload


def final_payload(body: str, rssi: int | None, receivers: str) -> bytes:
    """The published JSON: the stored body (a JSON object) plus the best signal and the
    receivers, spliced in without parsing the body again."""
    rssi_text = "null" if rssi is None else str(int(rssi))
    return f'{body[:-1]},"rssi":{rssi_text},"receivers":{receivers}}}'.encode()


def encode_body(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))
