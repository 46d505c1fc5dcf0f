"""Gateway configuration: a TOML file loaded into typed dataclasses.

Every error names the key (`mqtt.port`) and says what is wrong and what to write instead,
so an installer on site can fix the file without reading the code.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meterlink.protocol.lora import CODING_RATES, DataRate, LoRaParamError

OUTBOX_POLICIES = ("drop_oldest_readings", "refuse_readings")
MQTT_PROTOCOLS = ("5", "3.1.1")
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """The configuration file is missing, not TOML, or has a wrong value."""


@dataclass(frozen=True)
class SerialReceiverConfig:
    name: str
    port: str
    baudrate: int = 115200


@dataclass(frozen=True)
class UdpReceiverConfig:
    name: str
    host: str = "0.0.0.0"
    port: int = 1700


@dataclass(frozen=True)
class PacketForwarderConfig:
    """Concentrators running Semtech's packet forwarder (UDP protocol v2) send here."""

    name: str
    gateway_euis: tuple[str, ...]  # 16 lower-case hex digits each; others are refused
    host: str = "127.0.0.1"
    port: int = 1700
    rx_delay_ms: int = 1000  # downlink starts this long after the uplink's tmst
    tx_power_dbm: int = 14
    tx_freq_mhz: float | None = None  # None: the uplink's frequency
    tx_datr: str | None = None  # None: the uplink's data rate
    tx_codr: str = "4/5"
    tx_ipol: bool = False  # the modules listen with normal IQ (LoRa P2P)
    tx_rfch: int = 0
    pull_timeout_s: float = 30.0  # no PULL_DATA for this long: no downlink path
    tx_ack_timeout_s: float = 1.0


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    protocol: str = "5"
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    topic_prefix: str = "meterlink/v1"
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    backoff_min_s: float = 0.5
    backoff_max_s: float = 60.0
    max_inflight: int = 100
    publish_timeout_s: float = 30.0


@dataclass(frozen=True)
class OutboxConfig:
    path: str = "/var/lib/meterlink/gateway.sqlite"
    max_bytes: int = 256 * 1024 * 1024
    min_free_bytes: int = 64 * 1024 * 1024
    policy: str = "drop_oldest_readings"
    commit_interval_ms: int = 50
    commit_max_frames: int = 500


@dataclass(frozen=True)
class DedupeConfig:
    window_s: float = 60.0
    max_entries: int = 10000
    # A message is published once it is this old, with every receiver (concentrator)
    # that heard it by then: copies from other receivers come a little later.
    gather_ms: int = 200


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 9108


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    rejects_per_minute: int = 30


@dataclass(frozen=True)
class GatewayConfig:
    gateway_id: str
    keys_file: str
    serial: tuple[SerialReceiverConfig, ...] = ()
    udp: tuple[UdpReceiverConfig, ...] = ()
    packet_forwarder: tuple[PacketForwarderConfig, ...] = ()
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    dedupe: DedupeConfig = field(default_factory=DedupeConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    downlink_delay_ms: int = 0


class _Table:
    """Reads one TOML table, remembering its dotted name for error messages."""

    def __init__(self, data: dict[str, Any], name: str) -> None:
        self.data = data
        self.name = name
        self.used: set[str] = set()

    def key(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def _get(self, key: str, default: Any, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.key(key)}: required key is missing")
            return default
        return self.data[key]

    def get_str(self, key: str, default: str | None = None, *, required: bool = False) -> Any:
        value = self._get(key, default, required)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{self.key(key)}: expected a string in quotes, got {value!r}")
        if required and not value:
            raise ConfigError(f"{self.key(key)}: must not be empty")
        return value

    def get_int(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self._get(key, default, False)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.key(key)}: expected an integer, got {value!r}")
        if not lo <= value <= hi:
            raise ConfigError(f"{self.key(key)}: {value} is out of range, use {lo}..{hi}")
        return value

    def get_float(self, key: str, default: float, lo: float, hi: float) -> float:
        value = self._get(key, default, False)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self.key(key)}: expected a number, got {value!r}")
        if not lo <= value <= hi:
            raise ConfigError(f"{self.key(key)}: {value} is out of range, use {lo}..{hi}")
        return float(value)

    def get_bool(self, key: str, default: bool) -> bool:
        value = self._get(key, default, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(key)}: expected true or false, got {value!r}")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get_str(key, default)
        if value not in choices:
            raise ConfigError(
                f"{self.key(key)}: {value!r} is not one of {', '.join(map(repr, choices))}"
            )
        return str(value)

    def table(self, key: str) -> _Table:
        value = self._get(key, {}, False)
        if not isinstance(value, dict):
            raise ConfigError(f"{self.key(key)}: expected a table [{self.key(key)}]")
        return _Table(value, self.key(key))

    def tables(self, key: str) -> list[_Table]:
        value = self._get(key, [], False)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{self.key(key)}: expected an array of tables [[{self.key(key)}]]")
        return [_Table(v, f"{self.key(key)}[{i}]") for i, v in enumerate(value)]

    def check_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(
                f"{self.key(unknown[0])}: unknown key (misspelt?); "
                "`meterlink gateway example-config` lists every key"
            )


def _serial(t: _Table) -> SerialReceiverConfig:
    cfg = SerialReceiverConfig(
        name=t.get_str("name", required=True),
        port=t.get_str("port", required=True),
        baudrate=t.get_int("baudrate", 115200, 1200, 4_000_000),
    )
    t.check_unknown()
    return cfg


def _udp(t: _Table) -> UdpReceiverConfig:
    cfg = UdpReceiverConfig(
        name=t.get_str("name", required=True),
        host=t.get_str("host", "0.0.0.0"),
        port=t.get_int("port", 1700, 0, 65535),
    )
    t.check_unknown()
    return cfg


def _packet_forwarder(t: _Table) -> PacketForwarderConfig:
    d = PacketForwarderConfig(name="", gateway_euis=())
    name = t.get_str("name", required=True)
    euis_raw = t._get("gateway_euis", None, True)
    if not isinstance(euis_raw, list) or not euis_raw:
        raise ConfigError(f"{t.key('gateway_euis')}: list the EUIs of the concentrators "
                          'allowed to send, e.g. ["0016c001ff10a235"] (the packet forwarder '
                          "logs its gateway_ID at start)")
    euis = []
    for e in euis_raw:
        norm = e.lower().replace(":", "").replace("-", "") if isinstance(e, str) else ""
        if len(norm) != 16 or any(c not in "0123456789abcdef" for c in norm):
            raise ConfigError(f"{t.key('gateway_euis')}: {e!r} is not an EUI of 16 hex digits")
        euis.append(norm)
    if len(set(euis)) != len(euis):
        raise ConfigError(f"{t.key('gateway_euis')}: an EUI is listed twice")
    freq = t._get("tx_freq_mhz", None, False)
    if freq is not None:
        freq = t.get_float("tx_freq_mhz", 868.1, 150.0, 1020.0)
    datr = t.get_str("tx_datr")
    if datr is not None:
        try:
            DataRate.parse(datr)
        except LoRaParamError as exc:
            raise ConfigError(f"{t.key('tx_datr')}: {exc}") from None
    cfg = PacketForwarderConfig(
        name=name, gateway_euis=tuple(euis),
        host=t.get_str("host", d.host),
        port=t.get_int("port", d.port, 0, 65535),
        rx_delay_ms=t.get_int("rx_delay_ms", d.rx_delay_ms, 100, 10_000),
        tx_power_dbm=t.get_int("tx_power_dbm", d.tx_power_dbm, 0, 30),
        tx_freq_mhz=freq, tx_datr=datr,
        tx_codr=t.choice("tx_codr", d.tx_codr, CODING_RATES),
        tx_ipol=t.get_bool("tx_ipol", d.tx_ipol),
        tx_rfch=t.get_int("tx_rfch", d.tx_rfch, 0, 1),
        pull_timeout_s=t.get_float("pull_timeout_s", d.pull_timeout_s, 1, 3600),
        tx_ack_timeout_s=t.get_float("tx_ack_timeout_s", d.tx_ack_timeout_s, 0.05, 10),
    )
    t.check_unknown()
    return cfg


def _mqtt(t: _Table, gateway_id: str) -> MqttConfig:
    d = MqttConfig()
    cfg = MqttConfig(
        host=t.get_str("host", d.host),
        port=t.get_int("port", d.port, 1, 65535),
        protocol=t.choice("protocol", d.protocol, MQTT_PROTOCOLS),
        client_id=t.get_str("client_id", f"meterlink-gw-{gateway_id}"),
        username=t.get_str("username"),
        password=t.get_str("password"),
        tls=t.get_bool("tls", d.tls),
        ca_file=t.get_str("ca_file"),
        cert_file=t.get_str("cert_file"),
        key_file=t.get_str("key_file"),
        topic_prefix=t.get_str("topic_prefix", d.topic_prefix).rstrip("/"),
        keepalive_s=t.get_int("keepalive_s", d.keepalive_s, 5, 3600),
        session_expiry_s=t.get_int("session_expiry_s", d.session_expiry_s, 0, 2**32 - 1),
        backoff_min_s=t.get_float("backoff_min_s", d.backoff_min_s, 0.01, 600),
        backoff_max_s=t.get_float("backoff_max_s", d.backoff_max_s, 0.01, 3600),
        max_inflight=t.get_int("max_inflight", d.max_inflight, 1, 65535),
        publish_timeout_s=t.get_float("publish_timeout_s", d.publish_timeout_s, 1, 3600),
    )
    t.check_unknown()
    if cfg.password is not None and cfg.username is None:
        raise ConfigError(f"{t.key('password')}: set {t.key('username')} too")
    if (cfg.cert_file is None) != (cfg.key_file is None):
        raise ConfigError(f"{t.key('cert_file')}: a client certificate needs both cert_file "
                          "and key_file")
    if (cfg.cert_file or cfg.ca_file) and not cfg.tls:
        raise ConfigError(f"{t.key('tls')}: certificates are set, so set tls = true")
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(cfg, key)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{t.key(key)}: file {path!r} does not exist")
    if cfg.backoff_max_s < cfg.backoff_min_s:
        raise ConfigError(f"{t.key('backoff_max_s')}: must be >= backoff_min_s")
    return cfg


def _outbox(t: _Table) -> OutboxConfig:
    d = OutboxConfig()
    cfg = OutboxConfig(
        path=t.get_str("path", d.path),
        max_bytes=t.get_int("max_bytes", d.max_bytes, 4096, 2**50),
        min_free_bytes=t.get_int("min_free_bytes", d.min_free_bytes, 0, 2**50),
        policy=t.choice("policy", d.policy, OUTBOX_POLICIES),
        commit_interval_ms=t.get_int("commit_interval_ms", d.commit_interval_ms, 0, 1000),
        commit_max_frames=t.get_int("commit_max_frames", d.commit_max_frames, 1, 100_000),
    )
    t.check_unknown()
    parent = Path(cfg.path).parent
    if not parent.is_dir():
        raise ConfigError(f"{t.key('path')}: directory {str(parent)!r} does not exist; create "
                          "it (writable by the gateway user)")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{t.key('path')}: directory {str(parent)!r} is not writable")
    return cfg


def parse_config(data: dict[str, Any]) -> GatewayConfig:
    """Validates a parsed TOML document."""
    root = _Table(data, "")
    gw = root.table("gateway")
    gateway_id = gw.get_str("id", required=True)
    if not gateway_id.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"gateway.id: {gateway_id!r} may use only letters, digits, - and _ "
                          "(it is part of MQTT topics)")
    keys_file = gw.get_str("keys_file", required=True)
    if not Path(keys_file).is_file():
        raise ConfigError(f"gateway.keys_file: file {keys_file!r} does not exist; export it "
                          "with `meterlink devices export-keys`")
    downlink_delay_ms = gw.get_int("downlink_delay_ms", 0, 0, 1500)
    gw.check_unknown()
    serial = tuple(_serial(t) for t in root.tables("serial"))
    udp = tuple(_udp(t) for t in root.tables("udp"))
    pf = tuple(_packet_forwarder(t) for t in root.tables("packet_forwarder"))
    names = [r.name for r in serial] + [r.name for r in udp] + [r.name for r in pf]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"serial/udp/packet_forwarder name: receiver name "
                          f"{sorted(dupes)[0]!r} is used twice")
    if not names:
        raise ConfigError("serial: no receiver configured; add a [[serial]], [[udp]] or "
                          "[[packet_forwarder]] table")
    euis = [e for p in pf for e in p.gateway_euis]
    if len(set(euis)) != len(euis):
        raise ConfigError("packet_forwarder.gateway_euis: a concentrator EUI is listed in "
                          "two [[packet_forwarder]] tables")
    mqtt = _mqtt(root.table("mqtt"), gateway_id)
    outbox = _outbox(root.table("outbox"))
    dt = root.table("dedupe")
    dedupe = DedupeConfig(window_s=dt.get_float("window_s", 60.0, 0.1, 86400),
                          max_entries=dt.get_int("max_entries", 10000, 16, 10_000_000),
                          gather_ms=dt.get_int("gather_ms", 200, 0, 10_000))
    dt.check_unknown()
    ht = root.table("http")
    http = HttpConfig(host=ht.get_str("host", "127.0.0.1"), port=ht.get_int("port", 9108, 0, 65535))
    ht.check_unknown()
    lt = root.table("log")
    log = LogConfig(level=lt.choice("level", "info", LOG_LEVELS),
                    rejects_per_minute=lt.get_int("rejects_per_minute", 30, 0, 100000))
    lt.check_unknown()
    root.check_unknown()
    return GatewayConfig(gateway_id=gateway_id, keys_file=keys_file, serial=serial, udp=udp,
                         packet_forwarder=pf, mqtt=mqtt, outbox=outbox, dedupe=dedupe,
                         http=http, log=log,
                         downlink_delay_ms=downlink_delay_ms)


def load_config(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; `meterlink gateway example-config` prints "
                          "one to start from") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


EXAMPLE_CONFIG = """\
# meterlink gateway configuration (TOML). Check it with:
#   meterlink gateway check-config --config gateway.toml

[gateway]
id = "gw-01"                                  # letters, digits, - and _; used in MQTT topics
keys_file = "/etc/meterlink/keys.json"        # exported by provisioning; reloaded on SIGHUP
# downlink_delay_ms = 0                       # wait before answering in the receive window

# One table per radio receiver on a serial line (USB or UART).
[[serial]]
name = "rx-roof"
port = "/dev/ttyUSB0"
# baudrate = 115200

# Receivers that forward over the network: one link frame per UDP datagram.
# [[udp]]
# name = "rx-net"
# host = "0.0.0.0"
# port = 1700

# LoRa concentrators (SX1302/SX1303 HATs) running Semtech's packet forwarder: point its
# server_address here (serv_port_up = serv_port_down = port). docs/gateway.md explains.
# [[packet_forwarder]]
# name = "lora"
# host = "127.0.0.1"                          # loopback or a VPN address: no authentication
# port = 1700
# gateway_euis = ["0016c001ff10a235"]         # allow-list; other concentrators are refused
# rx_delay_ms = 1000                          # downlink at the uplink's tmst + this
# tx_power_dbm = 14
# tx_freq_mhz = 869.525                       # default: the uplink's frequency
# tx_datr = "SF12BW125"                       # default: the uplink's data rate
# tx_codr = "4/5"
# tx_ipol = false                             # modules in LoRa P2P mode listen non-inverted
# tx_rfch = 0
# pull_timeout_s = 30                         # no PULL_DATA for this long: no downlinks
# tx_ack_timeout_s = 1

[mqtt]
host = "mqtt.example.net"
port = 8883
# protocol = "5"                              # "5" or "3.1.1"
# client_id = "meterlink-gw-gw-01"            # stable: the broker keeps the session by it
# username = "gw-01"
# password = "secret"
tls = true
# ca_file = "/etc/meterlink/ca.pem"
# cert_file = "/etc/meterlink/gw-01.pem"      # client certificate (with key_file)
# key_file = "/etc/meterlink/gw-01.key"
# topic_prefix = "meterlink/v1"
# keepalive_s = 30
# session_expiry_s = 604800
# backoff_min_s = 0.5                         # reconnect backoff, jittered, doubling
# backoff_max_s = 60
# max_inflight = 100
# publish_timeout_s = 30

[outbox]
path = "/var/lib/meterlink/gateway.sqlite"    # readings waiting for the broker, replay state
# max_bytes = 268435456                       # cap on stored messages
# min_free_bytes = 67108864                   # keep this much free on the filesystem
# policy = "drop_oldest_readings"             # or "refuse_readings"; alarms are never dropped
# commit_interval_ms = 50                     # group commits to spare the SD card
# commit_max_frames = 500

# [dedupe]
# window_s = 60                               # same frame from several receivers
# max_entries = 10000
# gather_ms = 200                             # wait for copies before publishing

[http]
host = "0.0.0.0"                              # status page, /metrics, /healthz
port = 9108                                   # 0 picks a free port (logged)

# [log]
# level = "info"
# rejects_per_minute = 30                     # rejected frames logged at most this often
"""
