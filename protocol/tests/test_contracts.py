"""Every part that uses a contract of meterlink.protocol agrees with it: the config
fields and limits (module_config), the key file (keyfile), units and alarm names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from meterlink.bundler import CONFIG_KEYS, _firmware_cfg, parse_config, render_config
from meterlink.edge.downlink import CommandError, parse_command
from meterlink.edge.messages import alarm_names
from meterlink.protocol import AlarmFlags, Config, Unit
from meterlink.protocol.keyfile import (
    KEY_FILE_FORMAT,
    KeyEntry,
    KeyFileError,
    key_file_document,
    parse_key_file,
)
from meterlink.protocol.module_config import COMMAND_FIELDS, CONFIG_FIELDS, INT_FIELDS
from meterlink.provisioning.exports import key_file_document as provisioning_key_file

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_the_firmware_checks_the_same_fields_and_limits() -> None:
    ints = _firmware_cfg().INTS
    assert [tuple(row) for row in ints] == [(f.name, f.low, f.high, f.default)
                                           for f in INT_FIELDS]
    assert CONFIG_KEYS == CONFIG_FIELDS


@pytest.mark.parametrize("field", INT_FIELDS, ids=lambda f: f.name)
def test_the_firmware_takes_each_limit_and_refuses_one_beyond(field) -> None:
    base = {"id": 7, "key": bytes(16), "gen": 1}
    for value in (field.low, field.high):
        text = render_config(**{**base, field.name: value})
        assert parse_config(text)[field.name] == value
    with pytest.raises(ValueError, match=field.name):
        render_config(**{**base, field.name: field.high + 1})


def test_the_config_command_is_the_config_downlink() -> None:
    downlink_fields = [f.name for f in Config.__dataclass_fields__.values()
                       if "key" in f.metadata]
    assert sorted(COMMAND_FIELDS) == sorted(downlink_fields)


@pytest.mark.parametrize("name", sorted(COMMAND_FIELDS))
def test_the_gateway_accepts_a_command_exactly_within_the_module_limits(name) -> None:
    spec = COMMAND_FIELDS[name]
    for ok in (spec.low, spec.high):
        assert parse_command(1, json.dumps({"type": "config", name: ok}).encode()) == (
            "config", {name: ok})
    for bad in (spec.low - 1, spec.high + 1):
        with pytest.raises(CommandError, match=f"{spec.low}..{spec.high}"):
            parse_command(1, json.dumps({"type": "config", name: bad}).encode())


def test_the_documented_table_is_the_table() -> None:
    rows = {}
    for line in ARCHITECTURE.read_text().splitlines():
        m = re.match(r"\| `(\w+)` \| [^|]+ \| (\d+)\.\.(\d+) \| (\w+) \|", line)
        if m:
            rows[m.group(1)] = (int(m.group(2)), int(m.group(3)), m.group(4))
    assert rows == {f.name: (f.low, f.high, "required" if f.default is None else str(f.default))
                    for f in INT_FIELDS}


def test_key_file_written_by_provisioning_reads_back_in_the_gateway_format(tmp_path) -> None:
    class Registered:  # the registry's row, as provisioning holds it
        device_id, key_hex, key_gen, meter_serial = 9, "ab" * 16, 3, "WM-9"
        pulse_weight, unit, interval_s = 10, 2, 600
        board, firmware_version = "nrf51", 256
        feature_set = frozenset({"tamper_alarm"})

    doc = provisioning_key_file([Registered()])
    assert doc["format"] == KEY_FILE_FORMAT
    entry = parse_key_file(json.loads(json.dumps(doc)))[9]
    assert entry == KeyEntry(9, bytes.fromhex("ab" * 16), 3, "WM-9", 10, Unit.M3, 600,
                             "nrf51", 256, frozenset({"tamper_alarm"}))
    assert key_file_document([entry]) == doc


@pytest.mark.parametrize(("change", "message"), [
    ({"key_gen": -1}, "devices[0].key_gen (device 5): expected an unsigned integer"),
    ({"key_gen": True}, "devices[0].key_gen (device 5)"),
    ({"meter_serial": 12}, "devices[0].meter_serial (device 5): expected a string"),
    ({"interval_s": 2**32}, "devices[0].interval_s (device 5)"),
], ids=["negative-gen", "bool-gen", "serial-not-string", "interval-too-big"])
def test_key_file_errors_name_the_entry_and_field(change, message) -> None:
    doc = {"format": KEY_FILE_FORMAT, "devices": [{"device_id": 5, "key": "00" * 16, **change}]}
    with pytest.raises(KeyFileError) as err:
        parse_key_file(doc)
    assert message in str(err.value)


def test_units_and_alarm_names_have_one_owner() -> None:
    assert [(u.symbol, u.millilitres) for u in Unit] == [("mL", 1), ("L", 1000),
                                                         ("m3", 1_000_000)]
    every = AlarmFlags(sum(AlarmFlags))
    assert alarm_names(int(every)) == every.names() == [
        "leak", "burst", "backflow", "tamper", "low_battery", "unexpected_reset"]
