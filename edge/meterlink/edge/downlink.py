"""Downlinks in a module's receive window: the ack of a confirmed uplink, then at most one
queued `config` or `time` command (protocol 3.4, 6.3 and 7).

Commands arrive from the central system as JSON on `commands/<device_id>` and wait in the
database until the device's next uplink. A downlink counter is reserved durably before it
is used, so it is never reused, even across a crash.

A command the module cannot take (its key-file entry lacks a feature the command needs,
meterlink.protocol.features) is refused when it arrives, and one already queued is
dropped when the gateway starts or reloads the key file: logged (`command_refused`),
counted (`meterlink_commands_total{outcome="refused_unsupported"}`) and answered on
`commands/<device_id>/reply`; it is never sent into a window where it would be ignored.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meterlink.edge.database import Database
from meterlink.edge.dedupe import Sighting
from meterlink.edge.ingress import Receiver
from meterlink.edge.logs import Logger
from meterlink.edge.messages import command_reply
from meterlink.edge.metrics import GatewayMetrics
from meterlink.edge.outbox import OutboxError
from meterlink.edge.packet_forwarder import Concentrator
from meterlink.edge.registry import Device, DeviceRegistry
from meterlink.edge.replies import CommandReplies
from meterlink.protocol import Ack, Config, FrameType, TimeSync, encode_frame
from meterlink.protocol.features import missing_features
from meterlink.protocol.module_config import COMMAND_FIELDS

Sender = Receiver | Concentrator  # a concentrator schedules in the window (PULL_RESP)


class CommandError(ValueError):
    """A command from the central system that cannot be queued."""


class CommandRefused(CommandError):
    """A valid command the module cannot take: its firmware lacks `missing`."""

    def __init__(self, message: str, missing: tuple[str, ...]) -> None:
        super().__init__(message)
        self.missing = missing


def refusal(device: Device, kind: str, fields: list[str] | dict[str, int]
            ) -> CommandRefused | None:
    """Why `device` cannot take this command, or None when it can."""
    missing = missing_features(kind, fields, device.known_features)
    if not missing:
        return None
    firmware = device.board or "board unknown"
    if device.firmware_version:
        v = device.firmware_version
        firmware += f", firmware {v >> 8}.{v & 0xFF}"
    what = f"{kind} command" + (f" ({', '.join(fields)})" if fields else "")
    text = (f"device {device.device_id}: refused, the module cannot take this {what}: "
            f"its firmware ({firmware}) has no {', '.join(missing)}; nothing is sent")
    if device.features is None:
        text += ("; the key file records no features for it (written before they were "
                 "recorded), so none are assumed: export the key file again from the "
                 "device registry (meterlink devices export-keys) and reload the gateway")
    return CommandRefused(text, missing)


@dataclass
class Command:
    id: int
    device_id: int
    kind: str  # config | time
    body: str  # JSON of the config fields ({} for time)
    sender_id: str | None = None  # the command's own "id", as JSON (for its replies)

    def as_sent(self) -> bytes:
        """The command as the central system sent it (for its replies)."""
        out: dict[str, Any] = {"type": self.kind, **json.loads(self.body)}
        if self.sender_id is not None:
            out["id"] = json.loads(self.sender_id)
        return json.dumps(out).encode()


def sender_id(raw: bytes) -> str | None:
    """The "id" a command carries (any JSON value), as JSON; None without one."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return json.dumps(data["id"]) if isinstance(data, dict) and "id" in data else None


def parse_command(device_id: int, raw: bytes) -> tuple[str, dict[str, int]]:
    """Validates a command message; returns (kind, fields)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CommandError(f"device {device_id}: command is not JSON") from None
    if not isinstance(data, dict):
        raise CommandError(f"device {device_id}: command must be a JSON object")
    kind = data.get("type")
    if kind == "time":
        return "time", {}
    if kind != "config":
        raise CommandError(f'device {device_id}: "type" must be "config" or "time", '
                           f"got {kind!r}")
    fields: dict[str, int] = {}
    for name, value in data.items():
        if name in ("type", "id"):
            continue
        spec = COMMAND_FIELDS.get(name)
        if spec is None:
            raise CommandError(f"device {device_id}: unknown config field {name!r}; "
                               f"use {', '.join(COMMAND_FIELDS)}")
        if isinstance(value, bool) or not isinstance(value, int) or not (
                spec.low <= value <= spec.high):
            raise CommandError(f"device {device_id}: {name} must be an integer "
                               f"{spec.low}..{spec.high}, got {value!r}")
        fields[name] = value
    if not fields:
        raise CommandError(f"device {device_id}: config command has no field to set")
    return "config", fields


class Downlink:
    def __init__(self, db: Database, registry: DeviceRegistry,
                 receivers: Mapping[str, Sender], metrics: GatewayMetrics, log: Logger,
                 delay_s: float = 0.0, gateway_id: str = "",
                 replies: CommandReplies | None = None) -> None:
        self.db = db
        self.gateway_id = gateway_id
        self.replies = replies if replies is not None else CommandReplies()
        self.registry = registry
        self.receivers = receivers
        self.metrics = metrics
        self.log = log
        self.delay_s = delay_s
        self.queues: dict[int, deque[Command]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def load(self) -> None:
        for cid, dev, kind, body, ref in await self.db.call(self.db.outbox.pending_commands):
            self.queues.setdefault(dev, deque()).append(Command(cid, dev, kind, body, ref))
        await self.drop_unsupported()

    async def drop_unsupported(self) -> int:
        """Drops queued commands the key file now says their module cannot take (queued
        before it said so); returns how many. At start and after each key-file reload."""
        dropped = 0
        for dev in list(self.queues):
            dropped += await self._drop_refused(dev)
        return dropped

    async def _drop_refused(self, dev: int) -> int:
        """Drops the commands queued for `dev` that its module cannot take."""
        device = self.registry.get(dev)
        queue = self.queues.get(dev)
        if device is None or not queue:
            return 0  # not in the key file: kept, and sent once it is
        dropped = 0
        for cmd in list(queue):
            fields = list(json.loads(cmd.body)) if cmd.kind == "config" else []
            refused = refusal(device, cmd.kind, fields)
            if refused is None:
                continue
            if cmd in queue:
                queue.remove(cmd)
            try:
                await self.db.call(self.db.outbox.delete_command, cmd.id)
            except OutboxError as exc:  # kept on disk; dropped again at the next load
                self.log.error("command_delete_failed", device_id=dev, error=str(exc))
            dropped += 1
            self.refused(str(dev), cmd.as_sent(), refused, queued=True)
        return dropped

    def refused(self, device: str, raw: bytes, exc: CommandRefused, *,
                queued: bool = False) -> None:
        """Logs, counts and answers a refused command (`queued`: it was dropped from the
        queue, not refused on arrival)."""
        self.metrics.commands.inc(outcome="refused_unsupported")
        self.log.warning("command_refused", device_id=int(device), error=str(exc),
                         missing_features=list(exc.missing), was_queued=queued)
        self.reply(device, raw, "refused_unsupported", error=str(exc),
                   missing_features=list(exc.missing))

    def reply(self, device: str, raw: bytes, outcome: str, error: str | None = None,
              **extra: Any) -> None:
        """Answers a command on `commands/<device>/reply` (once the broker is connected)."""
        self.replies.post(device, command_reply(device=device, gateway_id=self.gateway_id,
                                                outcome=outcome, command=raw, error=error,
                                                **extra))

    def pending(self, device_id: int) -> int:
        return len(self.queues.get(device_id, ()))

    async def add_command(self, device_id: int, raw: bytes) -> Command:
        """Validates and queues a command; CommandError (CommandRefused: the module cannot
        take it) when it is not queued."""
        device = self.registry.get(device_id)
        if device is None:
            raise CommandError(f"device {device_id}: not in the key file, so no downlink "
                               "can be sent to it")
        kind, fields = parse_command(device_id, raw)
        refused = refusal(device, kind, fields)
        if refused is not None:
            raise refused
        body = json.dumps(fields)
        ref = sender_id(raw)
        cid = await self.db.call(self.db.outbox.add_command, device_id, kind, body, ref)
        cmd = Command(cid, device_id, kind, body, ref)
        self.queues.setdefault(device_id, deque()).append(cmd)
        return cmd

    def answer(self, sighting: Sighting, *, ack: bool) -> None:
        """Schedules the answer to an uplink: ack if asked, then one queued command."""
        if not ack and not self.queues.get(sighting.device_id):
            return
        task = asyncio.get_running_loop().create_task(self._answer(sighting, ack))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, receiver: str, payload: bytes) -> bool:
        rx = self.receivers.get(receiver)
        if isinstance(rx, Concentrator):  # timed for the window; waits for the TX_ACK
            return await rx.transmit(payload)
        return rx is not None and rx.send(payload)

    async def _answer(self, s: Sighting, ack: bool) -> None:
        keys = self.registry.keys(s.device_id)
        if keys is None:
            return
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if ack:
            frame = encode_frame(FrameType.ACK, s.device_id, s.counter, Ack(), keys)
            if await self._send(s.best_receiver, frame):
                self.metrics.acks_sent.inc()
            else:
                self.log.warning("ack_not_sent", device_id=s.device_id, counter=s.counter,
                                 receiver=s.best_receiver,
                                 why="receiver line is down or the window was missed")
        # the key file may have changed since the command was queued (a reload drops
        # such commands too, in a task of its own): never send one the module cannot take
        await self._drop_refused(s.device_id)
        queue = self.queues.get(s.device_id)
        if not queue:
            return
        cmd = queue.popleft()
        body: Any
        if cmd.kind == "time":
            body, ftype = TimeSync(unix_time=int(time.time())), FrameType.TIME
        else:
            body, ftype = Config(**json.loads(cmd.body)), FrameType.CONFIG
        try:
            counter = await self.db.call(self.db.outbox.next_downlink_counter, s.device_id)
            frame = encode_frame(ftype, s.device_id, counter, body, keys)
        except Exception as exc:  # keep the command for the next window
            queue.appendleft(cmd)
            self.log.error("downlink_failed", device_id=s.device_id, error=str(exc))
            return
        if not await self._send(s.best_receiver, frame):
            queue.appendleft(cmd)  # the counter is skipped, never reused
            return
        try:
            await self.db.call(self.db.outbox.delete_command, cmd.id)
        except Exception as exc:  # OutboxError: sent once; it stays queued after a restart
            self.log.error("command_delete_failed", device_id=s.device_id, error=str(exc))
        self.metrics.downlinks_sent.inc(kind=cmd.kind)
        self.log.info("downlink_sent", device_id=s.device_id, kind=cmd.kind,
                      counter=counter, receiver=s.best_receiver)
        self.reply(str(s.device_id), cmd.as_sent(), "sent", counter=counter,
                   receiver=s.best_receiver)

    async def wait_idle(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
