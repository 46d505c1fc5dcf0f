"""MQTT forwarder: drains the outbox to the broker in order, QoS 1, persistent session.

A message leaves the outbox only after its PUBACK. On any connection error the forwarder
reconnects with jittered exponential backoff and starts again from the oldest message
still stored; a message may then be published twice, always with the same idempotency
key. Also: the retained gateway status (with a Last Will), the command subscription and
the replies to commands (`commands/<id>/reply`, published as they come while connected).

The backlog is read in pages of `max_inflight` messages, so memory does not grow with it.
When the delete after PUBACK cannot be written (disk full, card failing), the forwarder
stays connected, keeps the published ids and retries the delete every second without
publishing anything new; the messages are republished only after a reconnection (once),
never in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import time
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from meterlink.edge.config import MqttConfig
from meterlink.edge.database import Database
from meterlink.edge.downlink import CommandError, CommandRefused, Downlink
from meterlink.edge.logs import MQTT, Logger
from meterlink.edge.messages import (
    command_filter,
    command_reply_topic,
    encode_body,
    final_payload,
    iso,
)
from meterlink.edge.metrics import GatewayMetrics
from meterlink.edge.outbox import Message, OutboxError
from meterlink.edge.status import LiveStatus


def backoff_delays(lo: float, hi: float, rng: random.Random | None = None) -> Any:
    """Full-jitter exponential backoff: uniform(lo, min(hi, lo * 2**n))."""
    rng = rng or random.Random()
    n = 0
    while True:
        yield rng.uniform(lo, min(hi, lo * 2**n))
        n = min(n + 1, 30)


def tls_context(cfg: MqttConfig) -> ssl.SSLContext | None:
    if not cfg.tls:
        return None
    ctx = ssl.create_default_context(cafile=cfg.ca_file)
    if cfg.cert_file and cfg.key_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ctx


def _received_by(rows: list[Message], cutoff: float) -> list[Message]:
    """The leading rows received at or before `cutoff`."""
    n = 0
    while n < len(rows) and rows[n].received_at <= cutoff:
        n += 1
    return rows[:n]


class Forwarder:
    def __init__(self, *, cfg: MqttConfig, gateway_id: str, db: Database, downlink: Downlink,
                 metrics: GatewayMetrics, status: LiveStatus, log: Logger,
                 gather_s: float = 0.0) -> None:
        self.cfg = cfg
        self.gather_s = gather_s
        self.gateway_id = gateway_id
        self.db = db
        self.downlink = downlink
        self.metrics = metrics
        self.status = status
        self.log = log
        # aiomqtt's own warnings (publish queue full, pending calls above the threshold)
        # go through a child logger at WARNING; connection events the forwarder logs itself
        self.client_log = log.child(MQTT, level="warning").std
        self.status_topic = f"{cfg.topic_prefix}/gateways/{gateway_id}/status"
        self.command_filter = command_filter(cfg.topic_prefix)
        self._new = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self.published = 0
        self.delete_ok = True
        self.delete_error: str | None = None
        self.delete_retry_s = 1.0

    def notify(self) -> None:
        """New messages are durable in the outbox."""
        self._new.set()

    def _status_payload(self, state: str, reason: str) -> bytes:
        return json.dumps({"gateway_id": self.gateway_id, "state": state, "reason": reason,
                           "at": iso(time.time())}).encode()

    def _client_for(self) -> aiomqtt.Client:
        cfg = self.cfg
        v5 = cfg.protocol == "5"
        will = aiomqtt.Will(self.status_topic,
                            self._status_payload("offline", "connection lost"), qos=1,
                            retain=True)
        kwargs: dict[str, Any] = {}
        if v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = cfg.session_expiry_s
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V5, clean_start=False,
                          properties=props)
        else:
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V311, clean_session=False)
        client = aiomqtt.Client(
            cfg.host, cfg.port, username=cfg.username, password=cfg.password,
            identifier=cfg.client_id, will=will, keepalive=cfg.keepalive_s,
            tls_context=tls_context(cfg), max_inflight_messages=cfg.max_inflight,
            timeout=10, logger=self.client_log, **kwargs)
        client.pending_calls_threshold = cfg.max_inflight * 4  # warns above this
        return client

    async def run(self) -> None:
        delays = backoff_delays(self.cfg.backoff_min_s, self.cfg.backoff_max_s)
        while True:
            try:
                async with self._client_for() as client:
                    self._client = client
                    delays = backoff_delays(self.cfg.backoff_min_s, self.cfg.backoff_max_s)
                    self.metrics.broker_connects.inc()
                    self.metrics.broker_connected.set(1)
                    self.status.set_broker(True)
                    self.log.info("broker_connected", host=self.cfg.host, port=self.cfg.port,
                                  protocol=self.cfg.protocol)
                    await client.publish(self.status_topic,
                                         self._status_payload("online", "started"), qos=1,
                                         retain=True)
                    await client.subscribe(self.command_filter, qos=1)
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._drain(client), name="mqtt-drain")
                        tg.create_task(self._commands(client), name="mqtt-commands")
                        tg.create_task(self._replies(client), name="mqtt-replies")
            except* (aiomqtt.MqttError, OSError, TimeoutError) as group:
                error = "; ".join(str(e) for e in group.exceptions)[:300]
                self._client = None
                self.metrics.broker_connected.set(0)
                self.status.set_broker(False, error)
                delay = next(delays)
                self.log.warning("broker_disconnected", error=error, retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)

    async def _drain(self, client: aiomqtt.Client) -> None:
        outbox = self.db.outbox
        after = 0
        timeout = self.cfg.publish_timeout_s
        while True:
            self._new.clear()
            rows = await self.db.call(outbox.fetch, after, self.cfg.max_inflight)
            if not rows:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new.wait(), 5.0)
                continue
            # Copies heard by other receivers come a little later and add themselves to
            # the stored message: publish only what is gather_s old (a prefix, so the
            # order holds), and read the rest again once it is.
            cutoff = time.time() - self.gather_s
            ready = _received_by(rows, cutoff)
            if not ready:
                await asyncio.sleep(rows[0].received_at - cutoff)
                continue
            rows = ready
            # Published in order: paho sends in call order and the broker acks in order.
            results = await asyncio.gather(
                *(client.publish(m.topic, final_payload(m.body, m.rssi, m.receivers), qos=1,
                                 timeout=timeout) for m in rows),
                return_exceptions=True)
            done = [m for m, r in zip(rows, results, strict=True) if r is None]
            if done:
                await self._delete([m.id for m in done])
                now = time.time()
                for m in done:
                    self.metrics.published.inc(kind=m.kind)
                    self.metrics.publish_latency.observe(max(0.0, now - m.received_at))
                self.published += len(done)
            failed = [r for r in results if r is not None]
            if failed:
                err = failed[0]
                raise err if isinstance(err, Exception) else aiomqtt.MqttError(str(err))
            after = rows[-1].id

    async def _delete(self, ids: list[int]) -> None:
        """Deletes published messages; while that fails, retries (publishing nothing new:
        the connection stays up, the broker has them, nothing is published twice)."""
        while True:
            try:
                await self.db.call(self.db.outbox.delete, ids)
            except OutboxError as exc:
                if self.delete_ok:
                    self.log.critical("outbox_delete_failed", error=str(exc),
                                      published_not_deleted=len(ids),
                                      retry_s=self.delete_retry_s,
                                      hint="free space on the outbox's filesystem; "
                                           "publishing pauses until the delete works")
                self.delete_ok, self.delete_error = False, str(exc)
                await asyncio.sleep(self.delete_retry_s)
                continue
            if not self.delete_ok:
                self.log.info("outbox_delete_recovered", deleted=len(ids))
            self.delete_ok, self.delete_error = True, None
            return

    async def _commands(self, client: aiomqtt.Client) -> None:
        prefix = self.command_filter[:-1]
        async for message in client.messages:
            name = str(message.topic)
            raw = message.payload if isinstance(message.payload, bytes) else str(
                message.payload).encode()
            device = name[len(prefix):]
            try:
                device_id = int(device)
                cmd = await self.downlink.add_command(device_id, raw)
            except CommandRefused as exc:
                self.downlink.refused(device, raw, exc)
                continue
            except (ValueError, CommandError) as exc:
                error = str(exc) if isinstance(exc, CommandError) else (
                    f"{device!r} is not a device id; send commands to "
                    f"{prefix}<device id in decimal>")
                self.metrics.commands.inc(outcome="invalid")
                self.log.warning("command_rejected", topic=name, error=error)
                self.downlink.reply(device, raw, "invalid", error=error)
                continue
            except OutboxError as exc:
                self.metrics.commands.inc(outcome="not_stored")
                hint = "the outbox cannot be written; send the command again once /healthz is ok"
                self.log.error("command_not_stored", topic=name, error=str(exc), hint=hint)
                self.downlink.reply(device, raw, "not_stored", error=f"{exc}; {hint}")
                continue
            self.metrics.commands.inc(outcome="queued")
            queued = self.downlink.pending(cmd.device_id)
            self.log.info("command_queued", device_id=cmd.device_id, kind=cmd.kind,
                          queued=queued)
            self.downlink.reply(device, raw, "queued", queued=queued)

    async def _replies(self, client: aiomqtt.Client) -> None:
        """Publishes the replies to commands, oldest first; one that fails stays for the
        next connection."""
        replies = self.downlink.replies
        while True:
            await replies.wait()
            device, payload = replies.peek()
            await client.publish(command_reply_topic(self.cfg.topic_prefix, device),
                                 encode_body(payload).encode(), qos=1,
                                 timeout=self.cfg.publish_timeout_s)
            replies.pop()

    async def goodbye(self, drain_s: float) -> None:
        """On shutdown: give the backlog a moment, then mark the gateway offline."""
        client = self._client
        if client is None:
            return
        deadline = time.monotonic() + drain_s
        while self.db.outbox.count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await client.publish(self.status_topic, self._status_payload("offline", "shutdown"),
                                 qos=1, retain=True, timeout=2)
