"""The provisioning flow: identify -> check space -> register -> flash -> verify ->
export keys -> reset -> self-test. Each step prints one line; errors are
ProvisioningError with what to do. Re-running is safe (see flasher and registry)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from meterlink.protocol.module_config import config_field
from meterlink.provisioning import registry as reg
from meterlink.provisioning.board import BoardSession, check_space
from meterlink.provisioning.errors import BadValue, ProvisioningError, SelfTestFailed
from meterlink.provisioning.exports import export_key_file
from meterlink.provisioning.flasher import flash_image
from meterlink.provisioning.image import CONFIG_NAME, firmware_files
from meterlink.provisioning.ports import choose_port
from meterlink.provisioning.progress import ProgressBar
from meterlink.provisioning.selftest import (
    MqttWatcher,
    ReceiverWatcher,
    SelfTestResult,
    Watcher,
    run_selftest,
)
from meterlink.provisioning.values import (
    PulseWeight,
    derive_device_id,
    register_from_reading,
)

if TYPE_CHECKING:
    from meterlink.boardlink.transport import MaintenanceCable

Say = Callable[[str], None]


def _default(name: str) -> int:
    value = config_field(name).default
    assert value is not None, name
    return value


@dataclass
class Alarms:
    leak_intervals: int = _default("leak_intervals")
    burst_pulses: int = _default("burst_pulses")
    burst_intervals: int = _default("burst_intervals")
    backflow_pulses: int = _default("backflow_pulses")


@dataclass
class ProvisionRequest:
    meter_serial: str  # normalised
    reading_m3: Decimal
    pulse_weight: PulseWeight
    registry_path: Path
    port: str | None = None
    board: str | None = None  # expected board family
    device_id: int | None = None
    interval_s: int = _default("interval")
    alarms: Alarms = field(default_factory=Alarms)
    pin_pulse: str = "pin0"
    pin_dir: str = ""  # flow-direction input; empty: none
    pin_tamper: str = ""  # tamper loop input; empty: none
    # the LoRa modem (docs/firmware.md): 0 transparent UART modem, 1 AT modem (RUI3 P2P)
    modem: int = 0
    lora_freq: int = 868_100_000  # module_config's defaults
    lora_sf: int = 9
    lora_power: int = 14
    address: str = ""
    gps: tuple[float, float] | None = None
    installer: str = ""
    rekey: bool = False
    erase_other_files: bool = False
    keys_out: Path | None = None
    receiver: str | None = None
    mqtt: tuple[str, int] | None = None
    selftest_timeout: float = 60.0
    wait_reading: bool = False
    # drives the module's maintenance input and reset; None: the port's DTR and RTS
    # lines (meterlink.boardlink.transport.SerialLinesCable)
    cable: MaintenanceCable | None = None


@dataclass
class ProvisionResult:
    device: reg.Device
    selftest: SelfTestResult | None
    resumed: bool


def plan_device(
    r: ProvisionRequest,
    registry: reg.Registry,
    fw_version: int,
    board: str,
    features: frozenset[str] | None = None,
) -> tuple[reg.Device, bool]:
    """The registry row for this run: same key and id as before for a known meter unless
    --rekey; a fresh config generation, so the module restarts from the dial reading.
    `features`: those of the bundle flashed (default: `bundle_features(board)`)."""
    if features is None:
        from meterlink.bundler import bundle_features

        features = bundle_features(board)
    old = registry.by_serial(r.meter_serial)
    device_id = r.device_id or (old.device_id if old else derive_device_id(r.meter_serial))
    other = registry.get(device_id)
    if other is not None and other.meter_serial != r.meter_serial:
        raise BadValue(
            f"device id {device_id} is already used by meter {other.meter_serial}",
            "give this module another id with --device-id, or remove the old entry with "
            "`meterlink devices remove` if that meter was replaced",
        )
    if old is not None and old.device_id != device_id:
        raise BadValue(
            f"meter {r.meter_serial} is registered with device id {old.device_id}, not {device_id}",
            "leave out --device-id to keep the registered id, or remove the old entry first",
        )
    keep_key = old is not None and not r.rekey
    key_hex = old.key_hex if (old and keep_key) else secrets.token_bytes(16).hex()
    key_gen = (old.key_gen if keep_key else old.key_gen + 1) if old else 1
    config_gen = secrets.randbelow(2**31 - 2) + 1
    if old is not None and config_gen == old.config_gen:
        config_gen = config_gen % (2**31 - 2) + 1
    initial = register_from_reading(r.reading_m3, r.pulse_weight)
    lat, lon = r.gps if r.gps else (None, None)
    device = reg.Device(
        device_id=device_id,
        meter_serial=r.meter_serial,
        key_hex=key_hex,
        key_gen=key_gen,
        config_gen=config_gen,
        pulse_weight=r.pulse_weight.amount,
        unit=r.pulse_weight.unit,
        interval_s=r.interval_s,
        initial_register=initial.pulses,
        reading_m3=str(r.reading_m3),
        address=r.address or (old.address if old else ""),
        latitude=lat if lat is not None else (old.latitude if old else None),
        longitude=lon if lon is not None else (old.longitude if old else None),
        installer=r.installer or (old.installer if old else ""),
        provisioned_at=reg.utc_now(),
        firmware_version=fw_version,
        board=board,
        state=reg.STATE_FLASHING,
        selftest="",
        rssi=None,
        features=reg.features_text(features),
    )
    resumed = old is not None and old.state == reg.STATE_FLASHING
    return device, resumed


def config_text(device: reg.Device, r: ProvisionRequest) -> str:
    from meterlink.bundler import render_config

    text: str = render_config(
        board=device.board or None,  # a pin the module lacks is refused here, not on it
        id=device.device_id,
        key=device.key_hex,
        weight=device.pulse_weight,
        unit=device.unit,
        register=device.initial_register,
        gen=device.config_gen,
        interval=device.interval_s,
        leak_intervals=r.alarms.leak_intervals,
        burst_pulses=r.alarms.burst_pulses,
        burst_intervals=r.alarms.burst_intervals,
        backflow_pulses=r.alarms.backflow_pulses,
        pin_pulse=r.pin_pulse,
        pin_dir=r.pin_dir,
        pin_tamper=r.pin_tamper,
        # written only when not the firmware's defaults (the nRF51 filesystem is small)
        **{k: v for k, v in (("modem", r.modem), ("lora_freq", r.lora_freq),
                             ("lora_sf", r.lora_sf), ("lora_power", r.lora_power))
           if v != config_field(k).default},
    )
    return text


@dataclass
class Flashed:
    """A module flashed, configured and restarted; its self-test listener (if any) was
    started before the restart, so the boot frames are not missed."""

    request: ProvisionRequest
    device: reg.Device
    watcher: Watcher | None
    resumed: bool


def provision(r: ProvisionRequest, say: Say, *, show_progress: bool = True) -> ProvisionResult:
    """The whole flow: flash_and_restart, then self_test."""
    return self_test(flash_and_restart(r, say, show_progress=show_progress), say)


def flash_and_restart(r: ProvisionRequest, say: Say, *, show_progress: bool = True) -> Flashed:
    """Every step that needs the module's serial port; the port is released on return."""
    port = choose_port(r.port)
    say(f"module port: {port}")
    with reg.Registry(r.registry_path) as registry, BoardSession(port, cable=r.cable) as session:
        info = session.identify(r.board)
        say(f"board: {info.family} ({info.machine}), MicroPython {info.micropython_str}")
        from meterlink.bundler import FIRMWARE_VERSION, bundle_features

        features = bundle_features(info.family)
        device, resumed = plan_device(r, registry, FIRMWARE_VERSION, info.family, features)
        if resumed:
            say("an earlier provisioning of this meter was interrupted: continuing it")
        files = firmware_files(info)
        files[CONFIG_NAME] = config_text(device, r).encode("ascii")
        current = session.file_sizes()
        if r.erase_other_files:
            from meterlink.boardlink import files as board_files

            for name in sorted(set(current) - set(files)):
                board_files.remove_file(session.transport, name)
                say(f"removed {name} from the module")
                current.pop(name)
        sizes = {n: len(d) for n, d in files.items()}
        check_space(info, session.free_bytes(info), current, sizes)
        # The key is in the registry before it is on the module: a key never exists only
        # on a board.
        registry.save(device, reg.STATE_FLASHING, f"port {port}")
        total = sum(sizes.values())
        bar = ProgressBar(total, "flashing") if show_progress else None
        report = flash_image(session, files, bar=bar)
        say(
            f"firmware v{FIRMWARE_VERSION >> 8}.{FIRMWARE_VERSION & 0xFF} and config written "
            f"and verified ({len(report.written)} files written, {len(report.kept)} already "
            f"correct)"
        )
        say(f"features: {', '.join(sorted(features)) or 'none of the optional ones'} "
            f"(recorded for the gateway, which refuses commands the module cannot take)")
        registry.set_state(device.device_id, reg.STATE_CONFIGURED, "flashed and verified")
        if r.keys_out is not None:
            n = export_key_file(registry.all(), r.keys_out)
            say(f"gateway key file {r.keys_out} updated ({n} devices, mode 0600)")
        watcher = _open_watcher(r, device)
        session.reset()
    say(
        f"device {device.device_id} (0x{device.device_id:08x}) for meter "
        f"{device.meter_serial}: register {device.initial_register} pulses at "
        f"{r.pulse_weight} per pulse; module restarted"
    )
    return Flashed(r, device, watcher, resumed)


def self_test(f: Flashed, say: Say) -> ProvisionResult:
    """Waits for the module's frames (if a listener was asked for) and records the result."""
    r, device = f.request, f.device
    result = None
    try:
        if f.watcher is not None:
            say(f"self-test: waiting up to {r.selftest_timeout:.0f} s for the module's frames")
            result = run_selftest(
                f.watcher,
                initial_register=device.initial_register,
                timeout=r.selftest_timeout,
                want_reading=r.wait_reading,
            )
    finally:
        if f.watcher is not None:
            f.watcher.close()
    with reg.Registry(r.registry_path) as registry:
        if result is None:
            registry.set_state(device.device_id, reg.STATE_UNTESTED, "self-test skipped")
        else:
            rssi = next((h.rssi for h in reversed(result.heard) if h.rssi is not None), None)
            state = reg.STATE_TESTED if result.passed else reg.STATE_UNTESTED
            registry.set_state(
                device.device_id,
                state,
                result.message,
                selftest="PASS" if result.passed else "FAIL",
                rssi=rssi,
            )
        saved = registry.get(device.device_id)
    if result is not None:
        say(result.message)
        if not result.passed:
            raise SelfTestFailed(
                result.message,
                "check that the gateway runs and has loaded the new key file (send it "
                "SIGHUP), that the antenna is fitted, then run `meterlink provision` "
                "again with the same meter serial (the module keeps its key)",
            )
    assert saved is not None
    return ProvisionResult(saved, result, f.resumed)


def _open_watcher(r: ProvisionRequest, device: reg.Device) -> Watcher | None:
    try:
        if r.receiver:
            return ReceiverWatcher(r.receiver, device.device_id, device.key)
        if r.mqtt:
            return MqttWatcher(r.mqtt[0], r.mqtt[1], device.device_id)
    except OSError as exc:
        raise ProvisioningError(
            f"cannot start the self-test listener: {exc}",
            "check the --receiver port or the --mqtt broker address, or leave them out to "
            "skip the self-test",
        ) from exc
    return None
