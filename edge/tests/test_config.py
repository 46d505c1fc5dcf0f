"""Configuration: the example is valid, and every mistake names its key."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from meterlink.edge.config import EXAMPLE_CONFIG, ConfigError, load_config, parse_config

METERLINK = str(Path(sys.executable).with_name("meterlink"))


def _example(tmp_path: Path, keys_file: Path) -> dict:
    data = tomllib.loads(EXAMPLE_CONFIG)
    data["gateway"]["keys_file"] = str(keys_file)
    data["outbox"]["path"] = str(tmp_path / "gw.sqlite")
    data["mqtt"]["tls"] = False
    return data


def test_example_config_is_valid_and_documented(tmp_path, keys_file):
    cfg = parse_config(_example(tmp_path, keys_file))
    assert cfg.gateway_id == "gw-01" and cfg.serial[0].port == "/dev/ttyUSB0"
    assert cfg.outbox.policy == "drop_oldest_readings" and cfg.mqtt.protocol == "5"
    assert cfg.mqtt.client_id == "meterlink-gw-gw-01"
    # every key the parser knows appears in the example (commented or not)
    for key in ("commit_interval_ms", "min_free_bytes", "session_expiry_s", "rejects_per_minute",
                "backoff_max_s", "cert_file", "downlink_delay_ms", "max_entries"):
        assert key in EXAMPLE_CONFIG


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("mqtt", "port", 70000, "mqtt.port: 70000 is out of range"),
    ("mqtt", "port", "1883", "mqtt.port: expected an integer"),
    ("mqtt", "protocol", "4", "mqtt.protocol: '4' is not one of"),
    ("mqtt", "hostname", "x", "mqtt.hostname: unknown key"),
    ("outbox", "policy", "drop_alarms", "outbox.policy: 'drop_alarms' is not one of"),
    ("outbox", "path", "/nonexistent/dir/gw.sqlite", "outbox.path: directory '/nonexistent/dir'"),
    ("mqtt", "ca_file", "/nonexistent/ca.pem", "mqtt.tls: certificates are set"),
    ("gateway", "id", "gw 01", "gateway.id: 'gw 01' may use only"),
    ("gateway", "keys_file", "/nonexistent/keys.json", "gateway.keys_file: file"),
    ("http", "port", -1, "http.port: -1 is out of range"),
    ("log", "level", "loud", "log.level: 'loud' is not one of"),
], ids=["port-range", "port-type", "protocol", "unknown-key", "policy", "outbox-dir",
        "ca-without-tls", "gateway-id", "keys-file", "http-port", "log-level"])
def test_errors_name_the_key(tmp_path, keys_file, section, key, value, message):
    data = _example(tmp_path, keys_file)
    data.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert message in str(err.value)


def test_serial_receiver_needs_a_port_and_unique_names(tmp_path, keys_file):
    data = _example(tmp_path, keys_file)
    data["serial"] = [{"name": "a"}]
    with pytest.raises(ConfigError, match=r"serial\[0\].port: required key is missing"):
        parse_config(data)
    data["serial"] = [{"name": "a", "port": "/dev/x"}, {"name": "a", "port": "/dev/y"}]
    with pytest.raises(ConfigError, match="'a' is used twice"):
        parse_config(data)
    data["serial"] = []
    with pytest.raises(ConfigError, match="no receiver configured"):
        parse_config(data)


def test_load_config_reports_file_problems(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway\nid=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_cli_check_config_and_example(tmp_path, write_config):
    ok = subprocess.run([METERLINK, "gateway", "check-config", "--config",
                         str(write_config())], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "ok: gateway gw-test, 3 devices" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(write_config().read_text().replace("port = 0", "port = 99999", 1))
    res = subprocess.run([METERLINK, "gateway", "check-config", "--config", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "port: 99999 is out of range" in res.stderr
    ex = subprocess.run([METERLINK, "gateway", "example-config"], capture_output=True,
                        text=True, timeout=60)
    assert ex.returncode == 0 and tomllib.loads(ex.stdout)["gateway"]["id"] == "gw-01"
