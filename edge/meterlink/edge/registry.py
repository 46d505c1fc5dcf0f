"""The device registry: the key file that provisioning exports (`meterlink-keys/1`,
defined in meterlink.protocol.keyfile).

Loaded at start and again on SIGHUP; a reload that fails keeps the registry in use, so a
half-written file never takes the gateway's keys away. A device whose `key_gen` (or key)
changed is re-keyed: its replay window starts again. A device whose entry records no
features (a file written before they were recorded) is taken as having none of the
optional ones (`keyfile.ASSUMED_FEATURES`): `unrecorded` lists them for the one log line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from meterlink.protocol import DeviceKeys
from meterlink.protocol.keyfile import KeyEntry, KeyFileError, load_key_file

Device = KeyEntry
RegistryError = KeyFileError


class DeviceRegistry:
    """Device id -> key and meter facts, from the key file; and the derived session keys
    (cached per device, derived again when its key changes), which the pipeline verifies
    uplinks with and the downlink seals with."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.devices: dict[int, Device] = {}
        self.warnings: list[str] = []
        self.rekeyed: set[int] = set()  # devices the last load gave a new key
        self.unrecorded: list[int] = []  # devices whose entry records no features
        self._keys: dict[int, tuple[bytes, DeviceKeys]] = {}

    def load(self) -> int:
        """(Re)loads the file; on any error raises RegistryError and keeps the old devices."""
        devices = load_key_file(self.path)
        try:
            mode = os.stat(self.path).st_mode
        except OSError as exc:
            raise RegistryError(f"{self.path}: cannot read: {exc.strerror}") from None
        warnings = []
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.append(f"{self.path}: readable by others (mode "
                            f"{stat.S_IMODE(mode):o}); run chmod 600 on it")
        rekeyed = set()
        for dev, new in devices.items():
            old = self.devices.get(dev)
            if old is None or (old.key, old.key_gen) == (new.key, new.key_gen):
                continue
            rekeyed.add(dev)
            if old.key != new.key and new.key_gen <= old.key_gen:
                warnings.append(f"{self.path}: device {dev} has a new key but key_gen "
                                f"{new.key_gen} (was {old.key_gen}); export the key file "
                                "again from the device registry")
        self.warnings, self.rekeyed, self.devices = warnings, rekeyed, devices
        self.unrecorded = sorted(d for d, e in devices.items() if e.features is None)
        return len(devices)

    def get(self, device_id: int) -> Device | None:
        return self.devices.get(device_id)

    def keys(self, device_id: int) -> DeviceKeys | None:
        """The device's derived keys; None when it is not in the key file."""
        device = self.devices.get(device_id)
        if device is None:
            return None
        cached = self._keys.get(device_id)
        if cached is None or cached[0] != device.key:
            cached = self._keys[device_id] = (device.key, DeviceKeys.derive(device.key))
        return cached[1]

    def __len__(self) -> int:
        return len(self.devices)
