"""The durable outbox and the gateway's persistent state, in one SQLite file (WAL mode).

Holds the messages waiting for the broker, the replay windows, the digests of recently
accepted frames, downlink counters and queued commands. One writer: every method runs on
the gateway's single database thread (or directly in tests). Commits are grouped by the
caller (`commit(batch)`), with `synchronous=FULL` so that a committed batch survives a
power cut: only then are confirmed frames acknowledged.

Size policy: the stored messages are capped at `max_bytes`, and the filesystem must keep
`min_free_bytes` free. Past either limit, `drop_oldest_readings` deletes the oldest
non-alarm messages to make room, `refuse_readings` refuses new non-alarm messages.
Alarms are always stored.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from meterlink.edge.replay import SEEN_KEEP

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  device_id INTEGER NOT NULL,
  counter INTEGER NOT NULL,
  topic TEXT NOT NULL,
  body TEXT NOT NULL,
  rssi INTEGER,
  receivers TEXT NOT NULL,
  received_at REAL NOT NULL,
  size INTEGER NOT NULL,
  UNIQUE(device_id, counter)
);
CREATE TABLE IF NOT EXISTS replay(
  device_id INTEGER PRIMARY KEY, highest INTEGER NOT NULL, bitmap TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen(
  device_id INTEGER NOT NULL, counter INTEGER NOT NULL, digest BLOB NOT NULL,
  PRIMARY KEY(device_id, counter)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS downlink_counter(
  device_id INTEGER PRIMARY KEY, counter INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS commands(
  id INTEGER PRIMARY KEY AUTOINCREMENT, device_id INTEGER NOT NULL, kind TEXT NOT NULL,
  body TEXT NOT NULL, created_at REAL NOT NULL);
"""



class OutboxError(RuntimeError):
    """The state file cannot be opened or written."""


@dataclass
class Message:
    kind: str  # reading | alarm | status
    device_id: int
    counter: int
    topic: str
    body: str  # JSON object without "rssi" and "receivers" (added at publish time)
    rssi: int | None
    receivers: str  # JSON list
    received_at: float
    id: int = 0

    @property
    def size(self) -> int:
        return len(self.body) + len(self.receivers) + len(self.topic) + 64


@dataclass
class Batch:
    """Everything one grouped commit writes."""

    messages: list[Message] = field(default_factory=list)
    receiver_updates: list[tuple[int, int, int | None, str]] = field(default_factory=list)
    replay: dict[int, tuple[int, int]] = field(default_factory=dict)
    seen: list[tuple[int, int, bytes]] = field(default_factory=list)


@dataclass
class CommitResult:
    stored: list[int]  # outbox id per message, 0 when refused
    dropped: int  # older readings deleted to make room
    refused: int  # new readings refused
    full: bool  # at the cap or the disk is nearly full


@dataclass
class Backlog:
    messages: int
    bytes: int
    oldest_received_at: float | None


class Outbox:
    def __init__(self, path: str | Path, *, max_bytes: int, min_free_bytes: int,
                 policy: str) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.policy = policy
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.executescript(SCHEMA)
            row = self.db.execute("SELECT count(*), coalesce(sum(size), 0) FROM outbox").fetchone()
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"{self.path}: cannot open the state database: {exc}; if the "
                              "file is not a meterlink database, move it away") from None
        self.count: int = row[0]
        self.bytes: int = row[1]
        self._disk_checked = 0.0
        self._disk_low = False
        self._last_dropped = 0
        self.full = False

    def close(self) -> None:
        self.db.close()

    # -- size policy ------------------------------------------------------------------------

    def disk_low(self) -> bool:
        now = time.monotonic()
        if now - self._disk_checked > 1.0:
            self._disk_checked = now
            try:
                free = shutil.disk_usage(self.path.parent).free
            except OSError:
                free = 0
            self._disk_low = free < self.min_free_bytes
        return self._disk_low

    def _make_room(self, size: int) -> bool:
        """Within the open transaction: True when a non-alarm message of `size` may be
        stored (after deleting older readings if the policy allows)."""
        over_cap = self.bytes + size > self.max_bytes
        if not over_cap and not self.disk_low():
            return True
        self.full = True
        if self.policy == "refuse_readings":
            return False
        need = max(self.bytes + size - self.max_bytes, size)
        freed = 0
        cur = self.db.execute(
            "SELECT id, size FROM outbox WHERE kind != 'alarm' ORDER BY id LIMIT 1000")
        victims = []
        for row_id, row_size in cur:
            victims.append(row_id)
            freed += row_size
            if freed >= need:
                break
        if freed < need and self.bytes - freed + size > self.max_bytes:
            return False
        self.db.executemany("DELETE FROM outbox WHERE id = ?", [(v,) for v in victims])
        self.count -= len(victims)
        self.bytes -= freed
        self._last_dropped += len(victims)
        return True

    # -- writes -----------------------------------------------------------------------------

    def commit(self, batch: Batch) -> CommitResult:
        """Writes a batch in one transaction; raises OutboxError (nothing written) when
        SQLite cannot write it."""
        self._last_dropped = 0
        self.full = False
        count, nbytes = self.count, self.bytes
        stored: list[int] = []
        refused = 0
        try:
            self.db.execute("BEGIN IMMEDIATE")
            for m in batch.messages:
                if m.kind != "alarm" and not self._make_room(m.size):
                    refused += 1
                    stored.append(0)
                    continue
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO outbox(kind, device_id, counter, topic, body, rssi,"
                    " receivers, received_at, size) VALUES (?,?,?,?,?,?,?,?,?)",
                    (m.kind, m.device_id, m.counter, m.topic, m.body, m.rssi, m.receivers,
                     m.received_at, m.size))
                if cur.rowcount:
                    m.id = int(cur.lastrowid or 0)
                    self.count += 1
                    self.bytes += m.size
                    if m.kind == "alarm" and self.bytes > self.max_bytes:
                        self.full = True
                else:  # already stored (same device and counter): keep the first
                    row = self.db.execute(
                        "SELECT id FROM outbox WHERE device_id=? AND counter=?",
                        (m.device_id, m.counter)).fetchone()
                    m.id = row[0] if row else -1
                stored.append(m.id)
            self.db.executemany(
                "UPDATE outbox SET rssi=?, receivers=? WHERE device_id=? AND counter=?",
                [(rssi, rx, dev, ctr) for dev, ctr, rssi, rx in batch.receiver_updates])
            self.db.executemany(
                "INSERT OR REPLACE INTO replay(device_id, highest, bitmap) VALUES (?,?,?)",
                [(dev, hi, format(bm, "x")) for dev, (hi, bm) in batch.replay.items()])
            self.db.executemany(
                "INSERT OR REPLACE INTO seen(device_id, counter, digest) VALUES (?,?,?)",
                batch.seen)
            for dev, (hi, _) in batch.replay.items():
                self.db.execute("DELETE FROM seen WHERE device_id=? AND counter<?",
                                (dev, hi - SEEN_KEEP))
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self.count, self.bytes = count, nbytes
            raise OutboxError(f"{self.path}: commit failed: {exc}") from exc
        return CommitResult(stored=stored, dropped=self._last_dropped, refused=refused,
                            full=self.full or self.disk_low())

    def delete(self, ids: list[int]) -> None:
        """Removes published messages (after their PUBACK)."""
        if not ids:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            freed = 0
            removed = 0
            for i in ids:
                row = self.db.execute("DELETE FROM outbox WHERE id=? RETURNING size",
                                      (i,)).fetchone()
                if row:
                    freed += row[0]
                    removed += 1
            self.db.execute("COMMIT")
        except sqlite3.Error:
            self.db.execute("ROLLBACK")
            raise
        self.count -= removed
        self.bytes -= freed

    # -- reads ------------------------------------------------------------------------------

    def fetch(self, after_id: int, limit: int) -> list[Message]:
        rows = self.db.execute(
            "SELECT id, kind, device_id, counter, topic, body, rssi, receivers, received_at "
            "FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)).fetchall()
        return [Message(id=r[0], kind=r[1], device_id=r[2], counter=r[3], topic=r[4],
                        body=r[5], rssi=r[6], receivers=r[7], received_at=r[8])
                for r in rows]

    def backlog(self) -> Backlog:
        row = self.db.execute("SELECT min(received_at) FROM outbox").fetchone()
        return Backlog(messages=self.count, bytes=self.bytes, oldest_received_at=row[0])

    def load_replay(self) -> dict[int, tuple[int, int]]:
        return {dev: (hi, int(bm, 16)) for dev, hi, bm in
                self.db.execute("SELECT device_id, highest, bitmap FROM replay")}

    def forget_replay(self, device_id: int) -> None:
        """Drops a device's replay window and digests (its key changed: counters under
        the new key are checked afresh)."""
        with self.db:
            self.db.execute("DELETE FROM replay WHERE device_id=?", (device_id,))
            self.db.execute("DELETE FROM seen WHERE device_id=?", (device_id,))

    def load_seen(self) -> dict[int, dict[int, bytes]]:
        out: dict[int, dict[int, bytes]] = {}
        for dev, ctr, digest in self.db.execute("SELECT device_id, counter, digest FROM seen"):
            out.setdefault(dev, {})[ctr] = bytes(digest)
        return out

    # -- downlink ---------------------------------------------------------------------------

    def next_downlink_counter(self, device_id: int) -> int:
        """Reserves and durably records the next downlink counter of a device, so that a
        counter is never used twice, even across a crash."""
        self.db.execute("BEGIN IMMEDIATE")
        row = self.db.execute("SELECT counter FROM downlink_counter WHERE device_id=?",
                              (device_id,)).fetchone()
        counter = (row[0] + 1) if row else 1
        self.db.execute("INSERT OR REPLACE INTO downlink_counter(device_id, counter) "
                        "VALUES (?,?)", (device_id, counter))
        self.db.execute("COMMIT")
        return counter

    def add_command(self, device_id: int, kind: str, body: str) -> int:
        cur = self.db.execute(
            "INSERT INTO commands(device_id, kind, body, created_at) VALUES (?,?,?,?)",
            (device_id, kind, body, time.time()))
        return int(cur.lastrowid or 0)

    def pending_commands(self) -> list[tuple[int, int, str, str]]:
        """(id, device_id, kind, body), oldest first."""
        return [(r[0], r[1], r[2], r[3]) for r in self.db.execute(
            "SELECT id, device_id, kind, body FROM commands ORDER BY id")]

    def delete_command(self, command_id: int) -> None:
        self.db.execute("DELETE FROM commands WHERE id=?", (command_id,))
