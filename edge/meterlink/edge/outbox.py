"""The durable outbox and the gateway's persistent state, in one SQLite file (WAL mode).

Holds the messages waiting for the broker, the replay windows, the digests of recently
accepted frames, downlink counters and queued commands. One writer: every method runs on
the gateway's single database thread (or directly in tests). Commits are grouped by the
caller (`commit(batch)`), with `synchronous=FULL` so that a committed batch survives a
power cut: only then are confirmed frames acknowledged.

Size policy: the stored messages are capped at `max_bytes`, and the filesystem must keep
`min_free_bytes` free. Free space is judged on what the database can actually use: the
filesystem's free bytes plus the pages SQLite keeps for reuse (`freelist_count`), since
deleting rows does not shrink the file. Past either limit, `drop_oldest_readings` deletes
just enough of the oldest non-alarm messages to get back under it, `refuse_readings`
refuses new non-alarm messages. Alarms are always stored.

Every write raises `OutboxError` (never a bare sqlite3 error) when SQLite cannot write:
disk full (SQLITE_FULL), I/O error, read-only file. Callers stay up and retry.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
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
  body TEXT NOT NULL, created_at REAL NOT NULL, sender_id TEXT);
"""
# Columns added since the first state files were written: (table, column, declaration).
# An older file gets them on open; its rows hold NULL there.
ADDED_COLUMNS = (("commands", "sender_id", "TEXT"),)  # the command's own "id", as JSON



class OutboxError(RuntimeError):
    """The state file cannot be opened or written."""


def fs_free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


MIB = 1024 * 1024
MIN_USEFUL_BYTES = 1 * MIB  # below this an outbox keeps only a few hundred messages
WAL_CHECKPOINT_PAGES = 512  # checkpoint past 2 MiB of WAL (SQLite's default: 1000 pages)
WAL_RESERVE_BYTES = 3 * MIB  # the WAL at its largest: 512 pages plus one commit group


def fs_total_bytes(path: Path) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_blocks * st.f_frsize


def effective_floor(path: Path, min_free_bytes: int) -> int:
    """The free-space floor the size policy keeps: `min_free_bytes`, or a tenth of the
    filesystem when `min_free_bytes` cannot ever be free there (a floor that is never
    met would make `drop_oldest_readings` keep only the newest reading)."""
    total = fs_total_bytes(path.parent)
    if total and min_free_bytes >= total:
        return total // 10
    return min_free_bytes


def space_check(path: str | Path, max_bytes: int, min_free_bytes: int
                ) -> tuple[list[str], list[str]]:
    """(errors, warnings) about size limits that the filesystem holding the outbox at
    `path` cannot meet. Stored messages take about 1.25 to 2 times their size on disk
    (pages, index), plus the WAL; the figures here assume 1.25."""
    path = Path(path)
    try:
        st = os.statvfs(path.parent)
    except OSError as exc:
        return [f"outbox.path: cannot inspect the filesystem of {path.parent}: {exc}"], []
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    own = sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal"))
              if p.exists())
    room = free + own - min_free_bytes - WAL_RESERVE_BYTES  # what the outbox may grow to
    errors: list[str] = []
    warnings: list[str] = []
    fs = f"the filesystem of {path.parent} ({total / MIB:.1f} MiB, {free / MIB:.1f} MiB free)"
    if min_free_bytes >= total:
        errors.append(f"outbox.min_free_bytes: {min_free_bytes} bytes can never be free on "
                      f"{fs}; set it to about 10% of the filesystem, e.g. {total // 10} (the "
                      "gateway uses that when it runs with this configuration)")
    elif room < MIN_USEFUL_BYTES:
        errors.append(f"outbox.min_free_bytes: keeping {min_free_bytes} bytes free on {fs} "
                      f"leaves the outbox {max(room, 0) / MIB:.1f} MiB (after an "
                      f"{WAL_RESERVE_BYTES // MIB} MiB reserve for its journal): it would "
                      "drop or refuse almost every reading; lower min_free_bytes or move "
                      "outbox.path to a larger filesystem")
    elif max_bytes * 5 // 4 > room:
        fits = room * 4 // 5
        warnings.append(f"outbox.max_bytes: {max_bytes} bytes of messages take about "
                        f"{max_bytes * 5 / 4 / MIB:.0f} MiB on disk, but {fs} leaves the "
                        f"outbox {room / MIB:.0f} MiB above min_free_bytes: the free-space "
                        f"floor, not max_bytes, will limit the backlog (to about "
                        f"{fits / MIB:.0f} MiB of messages); set max_bytes to {fits} or "
                        "less to make the cap the limit")
    return errors, warnings


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
    disk_low: bool = False  # usable space under min_free_bytes
    usable_bytes: int = 0  # filesystem free + reusable database pages


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
        self.floor = effective_floor(self.path, min_free_bytes)
        self.policy = policy
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.executescript(SCHEMA)
            for table, column, declaration in ADDED_COLUMNS:
                have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            row = self.db.execute("SELECT count(*), coalesce(sum(size), 0) FROM outbox").fetchone()
            self.page_size: int = self.db.execute("PRAGMA page_size").fetchone()[0]
            first = self.db.execute(
                "SELECT received_at FROM outbox ORDER BY id LIMIT 1").fetchone()
            self.oldest_received_at: float | None = first[0] if first else None
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"{self.path}: cannot open the state database: {exc}; if the "
                              "file is not a meterlink database, move it away") from None
        self.count: int = row[0]
        self.bytes: int = row[1]
        self._room = 0  # bytes that may still be written before min_free_bytes (estimate)
        self.disk_low = False  # as of the last commit
        self.usable_bytes = 0
        self._last_dropped = 0
        self.full = False

    def close(self) -> None:
        self.db.close()

    # -- size policy ------------------------------------------------------------------------

    def usable(self) -> int:
        """Bytes the database can still grow into: free on the filesystem plus its own
        free pages (kept by SQLite for reuse after deletes), less what the WAL may still
        grow by before it is reused from its start."""
        pages, free_pages = (int(self.db.execute(f"PRAGMA {p}").fetchone()[0])
                             for p in ("page_count", "freelist_count"))
        sizes = []
        for name in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                sizes.append(name.stat().st_size)
            except OSError:
                sizes.append(0)
        db_growth = max(0, pages * self.page_size - sizes[0])  # pages still in the WAL
        return (fs_free_bytes(self.path.parent) + free_pages * self.page_size - db_growth
                - max(0, WAL_RESERVE_BYTES - sizes[1]))

    def disk_cost(self) -> float:
        """Bytes of database pages per byte of stored message (pages are never full,
        and the unique index and the replay state take room too)."""
        if self.bytes < 256 * 1024:
            return 2.0
        pages, free_pages = (int(self.db.execute(f"PRAGMA {p}").fetchone()[0])
                             for p in ("page_count", "freelist_count"))
        return min(4.0, max(1.2, (pages - free_pages) * self.page_size / self.bytes))

    def _make_room(self, size: int) -> bool:
        """Within the open transaction: True when a non-alarm message of `size` may be
        stored (after deleting just enough older readings if the policy allows)."""
        over_cap = self.bytes + size - self.max_bytes
        short = size - self._room  # how far below the free-space floor this would go
        if over_cap <= 0 and short <= 0:
            self._room -= size
            return True
        self.full = True
        if self.policy == "refuse_readings":
            return False
        need = max(over_cap, short)
        freed = 0
        victims = []
        last = 0
        while freed < need:
            rows = self.db.execute(
                "SELECT id, size FROM outbox WHERE kind != 'alarm' AND id > ? ORDER BY id "
                "LIMIT 256", (last,)).fetchall()
            if not rows:
                break
            for row_id, row_size in rows:
                victims.append(row_id)
                freed += row_size
                last = row_id
                if freed >= need:
                    break
        if freed < need:
            return False
        self.db.executemany("DELETE FROM outbox WHERE id = ?", [(v,) for v in victims])
        self.count -= len(victims)
        self.bytes -= freed
        self._room += freed - size
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
            self.usable_bytes = self.usable()
            room = self.usable_bytes - self.floor
            # the budget in message bytes (_make_room counts in those)
            self._room = int(room / self.disk_cost()) if room > 0 else room
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
                    if m.kind == "alarm":
                        self._room -= m.size
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
            self._rollback()
            self.count, self.bytes = count, nbytes
            raise OutboxError(f"{self.path}: commit failed: {exc}") from exc
        if self._last_dropped or (self.oldest_received_at is None and self.count):
            self._update_oldest()
        self.disk_low = self._room < 0
        return CommitResult(stored=stored, dropped=self._last_dropped, refused=refused,
                            full=self.full or self.disk_low, disk_low=self.disk_low,
                            usable_bytes=self.usable_bytes)

    def probe(self) -> None:
        """A small real write (the header's user_version), to learn whether writing works
        again after a failure without waiting for new frames; raises OutboxError."""
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            self.db.execute(f"PRAGMA user_version = {(int(version) + 1) % 1_000_000}")
        except sqlite3.Error as exc:
            self._rollback()
            raise OutboxError(f"{self.path}: still cannot write: {exc}") from exc

    def _rollback(self) -> None:
        """After a failed statement: SQLite may already have rolled back by itself (it
        does on SQLITE_FULL), and ROLLBACK itself can fail on a broken card."""
        if self.db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")

    def _update_oldest(self) -> None:
        """The first message by id (ids follow reception): an index lookup, where
        min(received_at) would read the whole table on every delete."""
        row = self.db.execute(
            "SELECT received_at FROM outbox ORDER BY id LIMIT 1").fetchone()
        self.oldest_received_at = row[0] if row else None

    def delete(self, ids: list[int]) -> None:
        """Removes published messages (after their PUBACK); raises OutboxError when the
        delete cannot be written (the messages stay and are published again later)."""
        if not ids:
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
            freed = 0
            removed = 0
            for i in ids:
                row = self.db.execute("DELETE FROM outbox WHERE id=? RETURNING size",
                                      (i,)).fetchone()
                if row:
                    freed += row[0]
                    removed += 1
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise OutboxError(f"{self.path}: delete of published messages failed: "
                              f"{exc}") from exc
        self.count -= removed
        self.bytes -= freed
        self._update_oldest()

    # -- reads ------------------------------------------------------------------------------

    def fetch(self, after_id: int, limit: int) -> list[Message]:
        rows = self.db.execute(
            "SELECT id, kind, device_id, counter, topic, body, rssi, receivers, received_at "
            "FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)).fetchall()
        return [Message(id=r[0], kind=r[1], device_id=r[2], counter=r[3], topic=r[4],
                        body=r[5], rssi=r[6], receivers=r[7], received_at=r[8])
                for r in rows]

    def backlog(self) -> Backlog:
        """Cached figures (updated by commit and delete): safe to read from any thread."""
        return Backlog(messages=self.count, bytes=self.bytes,
                       oldest_received_at=self.oldest_received_at)

    def load_replay(self) -> dict[int, tuple[int, int]]:
        return {dev: (hi, int(bm, 16)) for dev, hi, bm in
                self.db.execute("SELECT device_id, highest, bitmap FROM replay")}

    def forget_replay(self, device_id: int) -> None:
        """Drops a device's replay window and digests (its key changed: counters under
        the new key are checked afresh)."""
        try:
            with self.db:
                self.db.execute("DELETE FROM replay WHERE device_id=?", (device_id,))
                self.db.execute("DELETE FROM seen WHERE device_id=?", (device_id,))
        except sqlite3.Error as exc:
            self._rollback()
            raise OutboxError(f"{self.path}: cannot reset replay state: {exc}") from exc

    def load_seen(self) -> dict[int, dict[int, bytes]]:
        out: dict[int, dict[int, bytes]] = {}
        for dev, ctr, digest in self.iter_seen():
            out.setdefault(dev, {})[ctr] = digest
        return out

    def iter_seen(self) -> Iterator[tuple[int, int, bytes]]:
        """The digests as (device, counter, digest) rows, one at a time: the replay guard
        is filled from them without the whole table in memory at once."""
        for dev, ctr, digest in self.db.execute("SELECT device_id, counter, digest FROM seen"):
            yield dev, ctr, bytes(digest)

    # -- downlink ---------------------------------------------------------------------------

    def next_downlink_counter(self, device_id: int) -> int:
        """Reserves and durably records the next downlink counter of a device, so that a
        counter is never used twice, even across a crash."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT counter FROM downlink_counter WHERE device_id=?",
                                  (device_id,)).fetchone()
            counter = (row[0] + 1) if row else 1
            self.db.execute("INSERT OR REPLACE INTO downlink_counter(device_id, counter) "
                            "VALUES (?,?)", (device_id, counter))
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise OutboxError(f"{self.path}: cannot reserve a downlink counter: "
                              f"{exc}") from exc
        return counter

    def add_command(self, device_id: int, kind: str, body: str,
                    sender_id: str | None = None) -> int:
        """Stores a command; `sender_id`: the command's own "id" as JSON, if it had one."""
        try:
            cur = self.db.execute(
                "INSERT INTO commands(device_id, kind, body, created_at, sender_id) "
                "VALUES (?,?,?,?,?)", (device_id, kind, body, time.time(), sender_id))
        except sqlite3.Error as exc:
            self._rollback()
            raise OutboxError(f"{self.path}: cannot store the command: {exc}") from exc
        return int(cur.lastrowid or 0)

    def pending_commands(self) -> list[tuple[int, int, str, str, str | None]]:
        """(id, device_id, kind, body, sender_id), oldest first."""
        return [(r[0], r[1], r[2], r[3], r[4]) for r in self.db.execute(
            "SELECT id, device_id, kind, body, sender_id FROM commands ORDER BY id")]

    def delete_command(self, command_id: int) -> None:
        try:
            self.db.execute("DELETE FROM commands WHERE id=?", (command_id,))
        except sqlite3.Error as exc:
            self._rollback()
            raise OutboxError(f"{self.path}: cannot remove a sent command: {exc}") from exc
