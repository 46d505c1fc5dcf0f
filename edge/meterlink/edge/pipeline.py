"""Verify, deduplicate and store: from a heard radio payload to a durable outbox message.

`handle()` runs synchronously in the receiver's callback (parse, key lookup, MIC, decrypt,
replay check: well under a millisecond) and adds verified frames to the open batch.
`run_committer()` writes batches in grouped transactions of at most `commit_max` frames;
only after a batch is durable are its frames counted accepted, its confirmed frames acked
and the forwarder woken.

Backpressure: a full batch is sealed and waits behind the commit in flight; while one is
waiting, `gate` is closed and the receivers stop reading (the kernel's socket buffer or
the serial driver holds the input, and drops what does not fit, which is measured). So
memory is bounded by `commit_max`, never by the input rate, and a kill -9 loses at most
the frames of the batches not yet committed, none of them acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meterlink.edge.database import Database
from meterlink.edge.dedupe import Deduplicator, Sighting
from meterlink.edge.downlink import Downlink
from meterlink.edge.ingress import Gate, Heard
from meterlink.edge.logs import Logger, RateLimitedLog
from meterlink.edge.messages import build_body, encode_body, topic
from meterlink.edge.metrics import GatewayMetrics
from meterlink.edge.outbox import Batch, Message, OutboxError
from meterlink.edge.registry import DeviceRegistry
from meterlink.edge.replay import ReplayGuard
from meterlink.edge.status import LiveStatus
from meterlink.protocol import (
    AuthenticationError,
    FrameType,
    Header,
    ProtocolError,
    decode_frame,
)


@dataclass(frozen=True)
class Verdict:
    """What became of one heard frame: `accepted` (reason: its kind; durable once the
    batch commits), `duplicate`, or `rejected` (reason: the code)."""

    outcome: str
    reason: str
    device_id: int | None = None
    counter: int | None = None
    layer: str = "frame"
    body: dict[str, Any] | None = None  # accepted: the message body (for the status)
    sighting: Sighting | None = None
    new_receiver: bool = False  # duplicate: heard by a receiver that had not heard it
    answer: bool = False  # send `sighting` its downlink now (ack: an ACK frame)
    ack: bool = False


class Pipeline:
    def __init__(self, *, gateway_id: str, topic_prefix: str, registry: DeviceRegistry,
                 guard: ReplayGuard, dedupe: Deduplicator, db: Database,
                 downlink: Downlink, metrics: GatewayMetrics, status: LiveStatus,
                 log: Logger, reject_log: RateLimitedLog, commit_interval_s: float,
                 commit_max: int, on_durable: Callable[[], None]) -> None:
        self.gateway_id = gateway_id
        self.topic_prefix = topic_prefix
        self.registry = registry
        self.guard = guard
        self.dedupe = dedupe
        self.db = db
        self.downlink = downlink
        self.metrics = metrics
        self.status = status
        self.log = log
        self.reject_log = reject_log
        self.commit_interval_s = commit_interval_s
        self.commit_max = commit_max
        self.on_durable = on_durable
        self._batch = Batch()
        self._sightings: list[Sighting] = []
        self._sealed: deque[tuple[Batch, list[Sighting]]] = deque()
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._urgent = False  # a confirmed frame waits: commit without the grouping delay
        self._commit_lock = asyncio.Lock()
        self._committing = False  # _sealed[0] is being written
        self.probe_interval_s = 1.0
        self.gate = Gate()
        self.commit_ok = True
        self.last_commit_error: str | None = None

    # -- verification -----------------------------------------------------------------------

    def handle(self, heard: Heard) -> Verdict:
        """Verifies one heard payload in the order of protocol 2.3 and returns the verdict;
        the counts and the reject log of every verdict are written in one place
        (`_record`). Never raises for bad input."""
        verdict = self._verify(heard)
        self._record(heard, verdict)
        return verdict

    def link_error(self, receiver: str, reason: str) -> Verdict:
        """A receiver could not make a frame of what it read (bad CRC, link type, ...)."""
        verdict = Verdict("rejected", reason, layer="link")
        self.metrics.link_errors.inc(receiver=receiver, reason=reason)
        self._record(None, verdict, receiver)
        return verdict

    def _record(self, heard: Heard | None, v: Verdict, receiver: str = "") -> None:
        """The side effects of a verdict, in one place: counts, the reject log, the live
        status, and the downlink (an unconfirmed frame's receive window; an alarm already
        durable acked again). A new alarm is acked after its commit (`_after_commit`)."""
        if v.outcome == "rejected":
            self.metrics.frames.inc(outcome="rejected", reason=v.reason)
            if heard is None:
                self.reject_log.log("warning", "frame_rejected", reason=v.reason,
                                    receiver=receiver, layer=v.layer)
            else:
                self.reject_log.log("warning", "frame_rejected", reason=v.reason,
                                    receiver=heard.receiver, device_id=v.device_id,
                                    counter=v.counter, bytes=len(heard.payload))
            return
        assert heard is not None
        if v.outcome == "accepted":  # counted when the commit makes it durable
            assert v.body is not None
            self.status.on_message(v.reason, v.body, heard.rssi, heard.receiver)
        else:
            # counted apart from `replay` (a rejection): a copy from another receiver, or a
            # retransmission of a confirmed frame whose ack was lost, acked again
            self.metrics.frames.inc(outcome="duplicate", reason="duplicate")
            self.metrics.duplicates.inc(receiver=heard.receiver)
            if v.new_receiver and v.sighting is not None:
                self.status.on_duplicate(v.sighting.device_id, heard.receiver,
                                         v.sighting.best_rssi)
        if v.answer and v.sighting is not None:  # an unconfirmed frame's receive window,
            self.downlink.answer(v.sighting, ack=v.ack)  # or a durable alarm's ack again

    def _verify(self, heard: Heard) -> Verdict:
        try:
            header = Header.parse(heard.payload, uplink=True)
        except ProtocolError as exc:
            return Verdict("rejected", exc.code)
        dev = header.device_id
        keys = self.registry.keys(dev)
        if keys is None:
            return Verdict("rejected", "unknown_device", dev, header.counter)
        candidates = self.guard.candidates(dev, header.counter)
        ctr = candidates[0]
        if self.guard.check(dev, ctr, heard.payload) == "duplicate":
            # byte-identical to a frame already authenticated and stored
            return self._duplicate(heard, dev, ctr, FrameType(header.frame_type).confirmed)
        frame = None
        failure: ProtocolError | None = None
        for ctr in candidates:  # the first whose MIC verifies (protocol 3.4)
            try:
                frame = decode_frame(heard.payload, keys, counter=ctr, uplink=True)
                break
            except AuthenticationError as exc:
                failure = failure or exc
            except ProtocolError as exc:
                return Verdict("rejected", exc.code, dev, ctr)
        if frame is None:
            return Verdict("rejected", failure.code if failure else "bad_mic", dev,
                           candidates[0])
        if self.guard.check(dev, ctr, heard.payload) == "replay":
            return Verdict("rejected", "replay", dev, ctr)
        device = self.registry.get(dev)
        assert device is not None
        hi, bitmap, digest = self.guard.accept(dev, ctr, heard.payload)
        kind, body = build_body(frame, device, self.gateway_id, heard.received_at)
        confirmed = frame.frame_type.confirmed
        sighting = self.dedupe.new(dev, ctr, confirmed, heard.receiver, heard.rssi)
        self._batch.messages.append(Message(
            kind=kind, device_id=dev, counter=ctr, topic=topic(self.topic_prefix, kind, dev),
            body=encode_body(body), rssi=heard.rssi, receivers=json.dumps([heard.receiver]),
            received_at=heard.received_at))
        self._batch.replay[dev] = (hi, bitmap)
        self._batch.seen.append((dev, ctr, digest))
        self._sightings.append(sighting)
        if confirmed:  # acked once durable (`_after_commit`), so commit soon
            self._urgent = True
            self._full.set()
        self._wake.set()
        if len(self._batch.messages) >= self.commit_max:
            self._seal()
        return Verdict("accepted", kind, dev, ctr, body=body, sighting=sighting,
                       answer=not confirmed)

    def _seal(self) -> None:
        """Closes the open batch; if it must wait behind the commit in flight, ingress
        pauses until that commit is done."""
        self._sealed.append((self._batch, self._sightings))
        self._batch, self._sightings = Batch(), []
        if len(self._sealed) > (1 if self._committing else 0):
            self.gate.close()
        self._full.set()

    @property
    def pending_frames(self) -> int:
        """Verified frames not yet committed (bounded by about 2 x commit_max)."""
        return len(self._batch.messages) + sum(len(b.messages) for b, _ in self._sealed)

    def _duplicate(self, heard: Heard, dev: int, ctr: int, confirmed: bool) -> Verdict:
        """A copy of an accepted frame: the receivers it was heard by, the ack again."""
        s = self.dedupe.get(dev, ctr)
        if s is None:
            if not confirmed:
                return Verdict("duplicate", "duplicate", dev, ctr)
            # stored before (its digest is durable): ack it again
            again = Sighting(dev, ctr, True, heard.receiver, heard.rssi, [heard.receiver],
                             durable=True)
            return Verdict("duplicate", "duplicate", dev, ctr, sighting=again, answer=True,
                           ack=True)
        new_receiver = s.add(heard.receiver, heard.rssi)
        if new_receiver:
            self._batch.receiver_updates.append(
                (dev, ctr, s.best_rssi, json.dumps(s.receivers)))
            self._wake.set()
        return Verdict("duplicate", "duplicate", dev, ctr, sighting=s,
                       new_receiver=new_receiver, answer=confirmed and s.durable, ack=True)

    # -- grouped commits --------------------------------------------------------------------

    async def run_committer(self) -> None:
        while True:
            if not self.commit_ok:  # find out by itself when writing works again
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.probe_interval_s)
                if not self._wake.is_set():
                    await self._probe()
                    continue
            await self._wake.wait()
            if self.commit_interval_s > 0 and not self._sealed and not self._urgent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.commit_interval_s)
            await self._commit_next()

    async def flush(self) -> None:
        """Commits everything pending now (also called on shutdown)."""
        while self._sealed or self._has_open_batch():
            await self._commit_next()

    def _has_open_batch(self) -> bool:
        b = self._batch
        return bool(b.messages or b.receiver_updates or b.replay)

    async def _commit_next(self) -> None:
        """Commits the oldest sealed batch, or the open one when none is sealed."""
        async with self._commit_lock:
            self._full.clear()
            self._urgent = False
            if not self._sealed:
                self._wake.clear()
                if not self._has_open_batch():
                    return
                self._sealed.append((self._batch, self._sightings))
                self._batch, self._sightings = Batch(), []
            batch, sightings = self._sealed[0]
            self._committing = True
            if len(self._sealed) == 1:  # nothing waits behind this one: read on
                self.gate.open()
            try:
                result = await self.db.call(self.db.outbox.commit, batch)
            except OutboxError as exc:
                self._sealed.popleft()
                self._committing = False
                await self._commit_failed(batch, sightings, str(exc))
                self._after_commit()
                return
            finally:
                self._committing = False
            self._sealed.popleft()
            self._after_commit()
        if not self.commit_ok:
            self.log.info("outbox_recovered")
        self.commit_ok, self.last_commit_error = True, None
        self.metrics.commit_batch.observe(len(batch.messages))
        for m, stored in zip(batch.messages, result.stored, strict=True):
            if stored:
                self.metrics.frames.inc(outcome="accepted", reason=m.kind)
            else:
                self.metrics.frames.inc(outcome="rejected", reason="outbox_full")
        for s in sightings:
            s.durable = True
            if s.confirmed:
                self.downlink.answer(s, ack=True)
        if result.dropped:
            self.metrics.dropped.inc(result.dropped, reason="dropped_oldest")
        if result.refused:
            self.metrics.dropped.inc(result.refused, reason="refused")
        self.metrics.outbox_full.set(1 if result.full else 0)
        if result.full != self.status.outbox_full or result.dropped or result.refused:
            self.log.critical("outbox_full" if result.full else "outbox_space_ok",
                              policy=self.db.outbox.policy, dropped_oldest=result.dropped,
                              refused=result.refused, backlog_bytes=self.db.outbox.bytes,
                              max_bytes=self.db.outbox.max_bytes,
                              disk_low=result.disk_low, usable_bytes=result.usable_bytes,
                              min_free_bytes=self.db.outbox.min_free_bytes)
        self.status.outbox_full = result.full
        self.on_durable()

    async def _probe(self) -> None:
        try:
            await self.db.call(self.db.outbox.probe)
        except OutboxError as exc:
            self.last_commit_error = str(exc)
            return
        self.log.info("outbox_recovered", by="probe")
        self.commit_ok, self.last_commit_error = True, None

    def _after_commit(self) -> None:
        if self._sealed:  # the next one is committed at once (the gate opens then)
            self._full.set()
            self._wake.set()
        else:
            self.gate.open()

    async def _commit_failed(self, batch: Batch, sightings: list[Sighting],
                             error: str) -> None:
        """Nothing of the batch is durable: forget it was accepted, so that the module's
        retransmissions of confirmed frames are accepted (and acked) once writing works."""
        self.commit_ok, self.last_commit_error = False, error
        self.metrics.dropped.inc(len(batch.messages), reason="commit_failed")
        self.log.critical("outbox_commit_failed", error=error, frames_lost=len(batch.messages),
                          hint="check free space and the SD card; alarms are retried by "
                               "the modules and will be stored when writing works again")
        for s in sightings:
            self.dedupe.entries.pop((s.device_id, s.counter), None)
        try:
            ob = self.db.outbox
            guard = await self.db.call(lambda: ReplayGuard(ob.load_replay(), rows=ob.iter_seen()))
        except Exception as exc:  # sqlite3.Error: the card cannot even be read
            self.log.critical("outbox_read_failed", error=str(exc))
            return
        for later, _ in self._sealed:  # verified since the failed batch was taken
            for dev, ctr, digest in later.seen:
                guard.accept_digest(dev, ctr, digest)
        for dev, ctr, digest in self._batch.seen:
            guard.accept_digest(dev, ctr, digest)
        self.guard = guard
