"""Downlinks in a module's receive window: the ack of a confirmed uplink, then at most one
queued `config` or `time` command (protocol 3.4, 6.3 and 7).

Commands arrive from the central system as JSON on `commands/<device_id>` and wait in the
database until the device's next uplink. A downlink counter is reserved durably before it
is used, so it is never reused, even across a crash.
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
from meterlink.edge.metrics import GatewayMetrics
from meterlink.edge.packet_forwarder import Concentrator
from meterlink.edge.registry import DeviceRegistry
from meterlink.protocol import Ack, Config, FrameType, TimeSync, encode_frame
from meterlink.protocol.module_config import COMMAND_FIELDS

Sender = Receiver | Concentrator  # a concentrator schedules in the window (PULL_RESP)


class CommandError(ValueError):
    """A command from the central system that cannot be queued."""


@dataclass
class Command:
    id: int
    device_id: int
    kind: str  # config | time
    body: str  # JSON of the config fields ({} for time)


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
                 delay_s: float = 0.0) -> None:
        self.db = db
        self.registry = registry
        self.receivers = receivers
        self.metrics = metrics
        self.log = log
        self.delay_s = delay_s
        self.queues: dict[int, deque[Command]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def load(self) -> None:
        for cid, dev, kind, body in await self.db.call(self.db.outbox.pending_commands):
            self.queues.setdefault(dev, deque()).append(Command(cid, dev, kind, body))

    def pending(self, device_id: int) -> int:
        return len(self.queues.get(device_id, ()))

    async def add_command(self, device_id: int, raw: bytes) -> Command:
        if self.registry.keys(device_id) is None:
            raise CommandError(f"device {device_id}: not in the key file, so no downlink "
                               "can be sent to it")
        kind, fields = parse_command(device_id, raw)
        body = json.dumps(fields)
        cid = await self.db.call(self.db.outbox.add_command, device_id, kind, body)
        cmd = Command(cid, device_id, kind, body)
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

    async def wait_idle(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
