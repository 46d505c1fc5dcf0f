"""What leaves the registry: the gateway key file (`meterlink-keys/1`, mode 0600) and the
device list for the central system (CSV or JSON, without keys)."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from meterlink.protocol import keyfile
from meterlink.protocol.keyfile import KEY_FILE_FORMAT, KeyEntry
from meterlink.provisioning.registry import Device

__all__ = ["KEY_FILE_FORMAT", "central_csv", "central_json", "device_features",
           "export_key_file", "key_file_document", "write_private_file"]

CENTRAL_FIELDS = (
    "device_id",
    "meter_serial",
    "address",
    "latitude",
    "longitude",
    "installer",
    "provisioned_at",
    "firmware_version",
    "pulse_weight",
    "unit",
    "interval_s",
    "initial_register",
    "reading_m3",
    "state",
    "selftest",
    "rssi",
)


def key_file_document(devices: Iterable[Device]) -> Mapping[str, Any]:
    """The gateway key file's content (format: meterlink.protocol.keyfile). `key_gen`
    counts rekeys of the device: a gateway that sees it change for a device restarts
    that device's replay window (the module may start its frame counter again under the
    new key). `board`, `firmware_version` and `features` tell the gateway which commands
    the module can take."""
    return keyfile.key_file_document(
        KeyEntry(device_id=d.device_id, key=bytes.fromhex(d.key_hex), key_gen=d.key_gen,
                 meter_serial=d.meter_serial, pulse_weight=d.pulse_weight, unit=d.unit,
                 interval_s=d.interval_s, board=d.board,
                 firmware_version=d.firmware_version, features=device_features(d))
        for d in devices)


def device_features(d: Device) -> frozenset[str] | None:
    """The module's features: as recorded at provisioning; for a module registered before
    they were recorded, what its firmware version's bundle for its board shipped
    (meterlink.bundler.features.RELEASED_FEATURES); None if that is not known either
    (the gateway then assumes none)."""
    recorded = d.feature_set
    if recorded is not None:
        return recorded
    from meterlink.bundler.features import released_features

    return released_features(d.board, d.firmware_version)


def write_private_file(path: Path, data: bytes) -> None:
    """Writes `data` to `path` with mode 0600, atomically: the file is created 0600 from
    the start (never readable by others, not even briefly) and replaces the old one by
    rename, so a gateway reloading it never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_key_file(devices: Iterable[Device], path: Path) -> int:
    """Writes the gateway key file; returns the number of devices in it."""
    doc = key_file_document(devices)
    write_private_file(path, (json.dumps(doc, indent=1) + "\n").encode("ascii"))
    return len(doc["devices"])


def central_records(devices: Iterable[Device]) -> list[dict[str, Any]]:
    return [{f: getattr(d, f) for f in CENTRAL_FIELDS} for d in devices]


def central_csv(devices: Iterable[Device]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CENTRAL_FIELDS, lineterminator="\n")
    writer.writeheader()
    for rec in central_records(devices):
        writer.writerow({k: "" if v is None else v for k, v in rec.items()})
    return out.getvalue()


def central_json(devices: Iterable[Device]) -> str:
    return json.dumps({"devices": central_records(devices)}, indent=1) + "\n"
