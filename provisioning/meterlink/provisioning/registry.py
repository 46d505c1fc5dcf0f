"""The local device registry: one SQLite file on the installer's laptop.

It holds the per-device keys, so the file is created with mode 0600 in a 0700 folder.
Every change is one transaction; an interrupted provisioning leaves its row in state
`flashing` or `configured`, and the next run for that meter continues from there.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from meterlink.provisioning.errors import RegistryError

ENV_REGISTRY = "METERLINK_REGISTRY"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id        INTEGER PRIMARY KEY,
    meter_serial     TEXT NOT NULL UNIQUE,
    key_hex          TEXT NOT NULL,
    key_gen          INTEGER NOT NULL,
    config_gen       INTEGER NOT NULL,
    pulse_weight     INTEGER NOT NULL,
    unit             INTEGER NOT NULL,
    interval_s       INTEGER NOT NULL,
    initial_register INTEGER NOT NULL,
    reading_m3       TEXT NOT NULL,
    address          TEXT NOT NULL DEFAULT '',
    latitude         REAL,
    longitude        REAL,
    installer        TEXT NOT NULL DEFAULT '',
    provisioned_at   TEXT NOT NULL,
    firmware_version INTEGER NOT NULL,
    board            TEXT NOT NULL DEFAULT '',
    state            TEXT NOT NULL,
    selftest         TEXT NOT NULL DEFAULT '',
    rssi             INTEGER,
    features         TEXT
);
CREATE TABLE IF NOT EXISTS events (
    at        TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    event     TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT ''
);
"""
# Columns added since the first registries were written: (name, declaration). A registry
# without one gets it on open; its old rows hold NULL there (not recorded).
_ADDED_COLUMNS = (("features", "TEXT"),)

# Provisioning states, in order.
STATE_FLASHING = "flashing"  # firmware being written
STATE_CONFIGURED = "configured"  # firmware verified, config written
STATE_TESTED = "tested"  # self-test passed
STATE_UNTESTED = "untested"  # self-test skipped or failed


def default_registry_path() -> Path:
    """--registry, else $METERLINK_REGISTRY, else $XDG_DATA_HOME/meterlink/registry.db."""
    env = os.environ.get(ENV_REGISTRY)
    if env:
        return Path(env)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "meterlink" / "registry.db"


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class Device:
    device_id: int
    meter_serial: str
    key_hex: str
    key_gen: int
    config_gen: int
    pulse_weight: int
    unit: int
    interval_s: int
    initial_register: int
    reading_m3: str
    address: str
    latitude: float | None
    longitude: float | None
    installer: str
    provisioned_at: str
    firmware_version: int
    board: str
    state: str
    selftest: str
    rssi: int | None
    # the optional features (meterlink.protocol.features) of the firmware flashed, comma
    # separated; None: registered before the registry recorded them
    features: str | None = None

    @property
    def key(self) -> bytes:
        return bytes.fromhex(self.key_hex)

    @property
    def feature_set(self) -> frozenset[str] | None:
        """The recorded features; None when not recorded."""
        if self.features is None:
            return None
        return frozenset(name for name in self.features.split(",") if name)

    def __repr__(self) -> str:  # never show the key, even in a traceback
        return f"Device(device_id={self.device_id}, meter_serial={self.meter_serial!r}, ...)"


_COLUMNS = [f.name for f in fields(Device)]


class Registry:
    """The device registry file; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            have = {row["name"] for row in self._db.execute("PRAGMA table_info(devices)")}
            for name, declaration in _ADDED_COLUMNS:
                if name not in have:
                    self._db.execute(f"ALTER TABLE devices ADD COLUMN {name} {declaration}")
        except (OSError, sqlite3.Error) as exc:
            raise RegistryError(
                f"cannot open the device registry {self.path}: {exc}",
                f"check the path and its permissions, or choose another with --registry "
                f"or ${ENV_REGISTRY}",
            ) from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def get(self, device_id: int) -> Device | None:
        row = self._db.execute("SELECT * FROM devices WHERE device_id=?", (device_id,)).fetchone()
        return _device(row) if row else None

    def by_serial(self, meter_serial: str) -> Device | None:
        row = self._db.execute(
            "SELECT * FROM devices WHERE meter_serial=?", (meter_serial,)
        ).fetchone()
        return _device(row) if row else None

    def find(self, ref: str) -> Device | None:
        """A device by meter serial, decimal id or 0x-hex id."""
        dev = self.by_serial(ref.strip().upper())
        if dev is None:
            try:
                dev = self.get(int(ref, 0))
            except ValueError:
                return None
        return dev

    def all(self) -> list[Device]:
        rows = self._db.execute("SELECT * FROM devices ORDER BY provisioned_at, device_id")
        return [_device(r) for r in rows]

    def __iter__(self) -> Iterator[Device]:
        return iter(self.all())

    def save(self, device: Device, event: str, detail: str = "") -> None:
        """Insert or replace the device's row and log the event, in one transaction."""
        values = asdict(device)
        placeholders = ",".join("?" for _ in _COLUMNS)
        try:
            with self._transaction():
                # An upsert on the id, not INSERT OR REPLACE: that would silently delete
                # another meter's row holding the same serial.
                updates = ",".join(f"{c}=excluded.{c}" for c in _COLUMNS[1:])
                self._db.execute(
                    f"INSERT INTO devices ({','.join(_COLUMNS)}) VALUES ({placeholders}) "
                    f"ON CONFLICT(device_id) DO UPDATE SET {updates}",
                    [values[c] for c in _COLUMNS],
                )
                self._log(device.device_id, event, detail)
        except sqlite3.IntegrityError as exc:
            raise RegistryError(
                f"meter serial {device.meter_serial} is already registered under another "
                f"device id ({exc})",
                "remove the old entry with `meterlink devices remove` if the meter was "
                "replaced, or check the serial",
            ) from exc

    def set_state(self, device_id: int, state: str, detail: str = "", **extra: object) -> None:
        sets = ["state=?"] + [f"{k}=?" for k in extra if k in _COLUMNS]
        args = [state] + [v for k, v in extra.items() if k in _COLUMNS]
        with self._transaction():
            self._db.execute(
                f"UPDATE devices SET {','.join(sets)} WHERE device_id=?", [*args, device_id]
            )
            self._log(device_id, state, detail)

    def remove(self, device_id: int) -> bool:
        with self._transaction():
            cur = self._db.execute("DELETE FROM devices WHERE device_id=?", (device_id,))
            if cur.rowcount:
                self._log(device_id, "removed")
        return bool(cur.rowcount)

    def events(self, device_id: int) -> list[tuple[str, str, str]]:
        rows = self._db.execute(
            "SELECT at, event, detail FROM events WHERE device_id=? ORDER BY rowid",
            (device_id,),
        )
        return [(r["at"], r["event"], r["detail"]) for r in rows]

    def _log(self, device_id: int, event: str, detail: str = "") -> None:
        self._db.execute(
            "INSERT INTO events (at, device_id, event, detail) VALUES (?,?,?,?)",
            (utc_now(), device_id, event, detail),
        )

    def _transaction(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _device(row: sqlite3.Row) -> Device:
    return Device(**{c: row[c] for c in _COLUMNS})


def features_text(features: frozenset[str]) -> str:
    """How the registry stores a feature set."""
    return ",".join(sorted(features))
