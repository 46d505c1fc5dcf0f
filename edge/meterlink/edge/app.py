"""The gateway service: wires the parts in its constructor and runs them as named tasks in
one TaskGroup; every receiver (`meterlink.edge.ingress.Ingress`) runs in a nested one.

Signals: SIGTERM/SIGINT drain and stop (datagrams already queued on the UDP sockets read
and committed, ingress closed, pending frames committed, the backlog given `drain_s` to
reach the broker, status set offline); SIGHUP reloads the key file. The systemd watchdog
is fed only while the outbox can be written.

All SQLite access goes through the database thread (`Database.call`); the event loop only
reads figures the outbox caches on commit and delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

from meterlink.edge import systemd
from meterlink.edge.config import GatewayConfig
from meterlink.edge.database import Database
from meterlink.edge.dedupe import Deduplicator
from meterlink.edge.downlink import Downlink, Sender
from meterlink.edge.forwarder import Forwarder
from meterlink.edge.http import HttpServer, json_response, status_page
from meterlink.edge.ingress import Heard, Ingress, Receiver, SerialReceiver, UdpReceiver
from meterlink.edge.logs import Logger, RateLimitedLog
from meterlink.edge.metrics import GatewayMetrics
from meterlink.edge.outbox import Outbox, OutboxError, space_check
from meterlink.edge.packet_forwarder import PacketForwarder, PfMetrics
from meterlink.edge.pipeline import Pipeline
from meterlink.edge.registry import DeviceRegistry, RegistryError
from meterlink.edge.replay import ReplayGuard
from meterlink.edge.status import LiveStatus
from meterlink.protocol.keyfile import ASSUMED_FEATURES


class Gateway:
    def __init__(self, cfg: GatewayConfig, log: Logger | None = None,
                 drain_s: float = 5.0) -> None:
        self.cfg = cfg
        self.log = log or Logger()
        self.drain_s = drain_s
        self.metrics = GatewayMetrics()
        self.status = LiveStatus(cfg.gateway_id)
        self.registry = DeviceRegistry(cfg.keys_file)
        self.receivers: dict[str, Receiver] = {}
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self.http_port = 0
        self.udp_ports: dict[str, int] = {}
        self.packet_forwarders: dict[str, PacketForwarder] = {}
        self.ingress: dict[str, Ingress] = {}  # every receiver, as it is run
        self._background: set[asyncio.Task[None]] = set()
        self._unrecorded_logged: list[int] = []
        self._setup()

    # -- wiring -----------------------------------------------------------------------------

    def _setup(self) -> None:
        """Builds every part (opens the key file and the outbox), so that the views work
        before `run()`; nothing runs yet."""
        cfg = self.cfg
        n = self.registry.load()
        for w in self.registry.warnings:
            self.log.warning("keys_file_permissions", detail=w)
        self._note_unrecorded()
        self.metrics.registry_devices.set(n)
        errors, warnings = space_check(cfg.outbox.path, cfg.outbox.max_bytes,
                                       cfg.outbox.min_free_bytes)
        for text in errors + warnings:  # check-config refuses the errors; here: say it
            self.log.critical("outbox_limits_unreachable", detail=text)
        outbox = Outbox(cfg.outbox.path, max_bytes=cfg.outbox.max_bytes,
                        min_free_bytes=cfg.outbox.min_free_bytes, policy=cfg.outbox.policy)
        self.db = Database(outbox)
        self.metrics.backlog.func = lambda: float(outbox.count)
        self.metrics.backlog_bytes.func = lambda: float(outbox.bytes)
        self.metrics.backlog_age.func = self._backlog_age
        self.metrics.outbox_writable.func = lambda: float(self.writable)
        guard = ReplayGuard(outbox.load_replay(), rows=outbox.iter_seen())
        self.reject_log = RateLimitedLog(self.log, cfg.log.rejects_per_minute)
        # Where downlinks can go: receivers by name, concentrators by EUI (filled below).
        self.senders: dict[str, Sender] = {}
        self.downlink = Downlink(self.db, self.registry, self.senders, self.metrics, self.log,
                                 cfg.downlink_delay_ms / 1000, gateway_id=cfg.gateway_id)
        self.forwarder = Forwarder(cfg=cfg.mqtt, gateway_id=cfg.gateway_id, db=self.db,
                                   downlink=self.downlink, metrics=self.metrics,
                                   status=self.status, log=self.log,
                                   gather_s=cfg.dedupe.gather_ms / 1000)
        self.pipeline = Pipeline(
            gateway_id=cfg.gateway_id, topic_prefix=cfg.mqtt.topic_prefix,
            registry=self.registry, guard=guard,
            dedupe=Deduplicator(cfg.dedupe.window_s, cfg.dedupe.max_entries), db=self.db,
            downlink=self.downlink, metrics=self.metrics, status=self.status, log=self.log,
            reject_log=self.reject_log,
            commit_interval_s=cfg.outbox.commit_interval_ms / 1000,
            commit_max=cfg.outbox.commit_max_frames, on_durable=self.forwarder.notify)
        self.metrics.pending_frames.func = lambda: float(self.pipeline.pending_frames)
        gate = self.pipeline.gate
        gate.watch(lambda is_open: None if is_open else self.metrics.ingress_pauses.inc())
        for rc in cfg.serial:
            self.receivers[rc.name] = SerialReceiver(rc.name, rc.port, rc.baudrate,
                                                     self._on_heard, self._on_link_error,
                                                     gate, self.log)
        for uc in cfg.udp:
            self.receivers[uc.name] = UdpReceiver(uc.name, uc.host, uc.port, self._on_heard,
                                                  self._on_link_error, gate)
        self.senders.update(self.receivers)
        if cfg.packet_forwarder:
            pf_metrics = PfMetrics(self.metrics.registry)
            for pc in cfg.packet_forwarder:
                pf = PacketForwarder(pc, self._on_heard, self._on_link_error, pf_metrics,
                                     self.log, self.reject_log, gate)
                self.packet_forwarders[pc.name] = pf
                self.senders.update(pf.concentrators)  # downlinks go through the EUI that heard
        self.ingress.update(self.receivers)
        self.ingress.update(self.packet_forwarders)
        self.http = HttpServer(cfg.http.host, cfg.http.port, {
            "/": lambda: (200, "text/html; charset=utf-8", status_page()),
            "/api/status": lambda: json_response(self.snapshot()),
            "/metrics": self._metrics,
            "/healthz": self._health,
        })

    def _on_heard(self, heard: Heard) -> None:
        self.pipeline.handle(heard)

    def _on_link_error(self, receiver: str, reason: str) -> None:
        self.pipeline.link_error(receiver, reason)

    def _link_errors(self, receiver: str) -> int:
        """Counted once, in `meterlink_link_errors_total{receiver, reason}`."""
        return int(sum(v for labels, v in self.metrics.link_errors.values.items()
                       if dict(labels).get("receiver") == receiver))

    def _backlog_age(self) -> float:
        oldest = self.db.outbox.oldest_received_at  # cached by the outbox, no query
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    @property
    def writable(self) -> bool:
        return self.pipeline.commit_ok and self.forwarder.delete_ok

    def _metrics(self) -> tuple[int, str, bytes]:
        for rx in self.ingress.values():
            rx.export(self.metrics)
        return 200, "text/plain; version=0.0.4", self.metrics.render().encode()

    # -- views ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        frames = self.metrics.frames
        by_outcome: dict[str, float] = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for labels, value in frames.values.items():
            outcome = dict(labels)["outcome"]
            by_outcome[outcome] = by_outcome.get(outcome, 0) + value
        snap = self.status.snapshot({
            "backlog": {"messages": self.db.outbox.count, "bytes": self.db.outbox.bytes,
                        "oldest_age_s": round(self._backlog_age(), 1)},
            "frames": {k: int(v) for k, v in by_outcome.items()},
            "receivers": [{"name": name, "connected": rx.connected, "frames": rx.frames,
                           "link_errors": self._link_errors(name)}
                          for name, rx in self.receivers.items()],
            "concentrators": [v for pf in self.packet_forwarders.values() for v in pf.views()],
            "devices_registered": len(self.registry),
            "outbox_full": self.status.outbox_full,
        })
        for m in snap["modules"]:
            m["lora"] = [pf_radio for pf in self.packet_forwarders.values()
                         for pf_radio in pf.radio(m["device_id"])]
            device = self.registry.get(m["device_id"])  # what the key file says it takes
            m["board"] = device.board if device else ""
            m["firmware_version"] = device.firmware_version if device else 0
            m["features"] = (None if device is None or device.features is None
                             else sorted(device.features))
        return snap

    def _health(self) -> tuple[int, str, bytes]:
        ok = self.writable
        error = self.pipeline.last_commit_error or self.forwarder.delete_error
        return json_response({"status": "ok" if ok else "failing",
                              "outbox_writable": ok, "error": error,
                              "broker_connected": self.status.broker_connected,
                              "backlog": self.db.outbox.count}, 200 if ok else 503)

    def close(self) -> None:
        """Closes the outbox of a gateway that was built but not run (`run` closes it on
        its way out)."""
        self.db.close()

    # -- signals ----------------------------------------------------------------------------

    def reload_keys(self) -> None:
        try:
            n = self.registry.load()
        except RegistryError as exc:
            self.metrics.registry_reloads.inc(outcome="failed")
            self.log.error("keys_reload_failed", error=str(exc),
                           kept_devices=len(self.registry))
            return
        self.metrics.registry_reloads.inc(outcome="ok")
        self.metrics.registry_devices.set(n)
        self.log.info("keys_reloaded", devices=n, rekeyed=sorted(self.registry.rekeyed))
        self._note_unrecorded()
        for dev in self.registry.rekeyed:
            self.pipeline.guard.forget(dev)
            self._spawn(self._forget_replay(dev), f"forget-replay-{dev}")
        # commands queued for a module the file now says cannot take them
        self._spawn(self.downlink.drop_unsupported(), "drop-unsupported-commands")

    def _note_unrecorded(self) -> None:
        """One log line for the devices whose key-file entry records no features: when
        the key file is first loaded, and again only when that list changes."""
        ids = self.registry.unrecorded
        if ids and ids != self._unrecorded_logged:
            self.log.warning(
                "keys_without_features", devices=len(ids), device_ids=ids[:20],
                assumed_features=sorted(ASSUMED_FEATURES),
                detail="the key file records no board, firmware version or features for "
                       "these devices (written before they were recorded); the gateway "
                       "assumes none of the optional features, so config and time "
                       "commands for them are refused",
                hint="export the key file again from the device registry (meterlink "
                     "devices export-keys) and reload the gateway")
        self._unrecorded_logged = ids

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _forget_replay(self, dev: int) -> None:
        try:
            await self.db.call(self.db.outbox.forget_replay, dev)
        except OutboxError as exc:
            self.log.error("replay_reset_failed", device_id=dev, error=str(exc),
                           hint="the old window stays on disk until writing works; "
                                "reload the keys again then")

    # -- running ----------------------------------------------------------------------------

    async def _watchdog(self, interval: float) -> None:
        while True:
            if self.writable:
                systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_keys)
        await self.downlink.load()
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self.pipeline.run_committer(), name="committer"),
                         tg.create_task(self.forwarder.run(), name="forwarder")]
                for name, rx in self.ingress.items():
                    port = await rx.start()
                    if port is not None:
                        self.udp_ports[name] = port
                receivers = tg.create_task(self._run_receivers(), name="receivers")
                tasks.append(receivers)
                self.http_port = await self.http.start()
                interval = systemd.watchdog_interval_s()
                if interval:
                    tasks.append(tg.create_task(self._watchdog(interval), name="watchdog"))
                self.log.info("ready", msg="gateway ready", gateway_id=self.cfg.gateway_id,
                              http_port=self.http_port, udp_ports=self.udp_ports,
                              devices=len(self.registry), backlog=self.db.outbox.count)
                systemd.notify("READY=1")
                self.ready.set()
                await self.stopping.wait()
                systemd.notify("STOPPING=1")
                self.log.info("stopping", backlog=self.db.outbox.count)
                await self._shutdown(receivers, tasks)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            self.db.close()
        self.log.info("stopped", backlog=self.db.outbox.count)
        return 0

    async def _run_receivers(self) -> None:
        """Every receiver in one nested TaskGroup: cancelling this task stops them all,
        each closing its own socket or line."""
        async with asyncio.TaskGroup() as tg:
            for name, rx in self.ingress.items():
                tg.create_task(rx.run(), name=f"rx-{name}")

    async def _shutdown(self, receivers: asyncio.Task[None],
                        tasks: list[asyncio.Task[None]]) -> None:
        drained = 0
        for rx in self.ingress.values():  # what the kernel already holds is ours
            drained += await rx.drain(self.pipeline.flush, self.cfg.outbox.commit_max_frames)
        receivers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receivers
        if drained:
            self.log.info("drained_socket_queue", datagrams=drained)
        await self.http.close()
        await self.pipeline.flush()
        await self.downlink.wait_idle()
        await self.forwarder.goodbye(self.drain_s)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
