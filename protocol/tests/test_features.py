"""The feature contract (meterlink.protocol.features) and what the key file records of a
module's firmware (board, firmware version, features)."""

from __future__ import annotations

import json

import pytest

from meterlink.protocol.features import (
    ALL_FEATURES,
    COMMAND_FEATURES,
    FEATURE_NAME,
    FEATURES,
    FIELD_FEATURES,
    missing_features,
)
from meterlink.protocol.keyfile import (
    ASSUMED_FEATURES,
    KEY_FILE_FORMAT,
    KeyEntry,
    KeyFileError,
    key_file_document,
    parse_key_file,
)
from meterlink.protocol.module_config import COMMAND_FIELDS


def test_every_name_the_contract_uses_is_a_feature_and_a_command_field() -> None:
    assert len(ALL_FEATURES) == len(FEATURES)
    assert all(FEATURE_NAME.fullmatch(f.name) for f in FEATURES)
    assert set(COMMAND_FEATURES.values()) <= ALL_FEATURES
    assert set(COMMAND_FEATURES) == {"config", "time"}  # the command kinds (docs/mqtt.md)
    assert set(FIELD_FEATURES.values()) <= ALL_FEATURES
    assert set(FIELD_FEATURES) <= set(COMMAND_FIELDS)


@pytest.mark.parametrize(("kind", "fields", "have", "missing"), [
    ("config", ["interval_s"], ALL_FEATURES, ()),
    ("config", ["interval_s"], frozenset(), ("config_downlink",)),
    ("time", [], {"config_downlink"}, ("time_downlink",)),
    ("time", [], {"time_downlink"}, ()),
    ("config", ["burst_pulses", "leak_intervals"], {"config_downlink"}, ("burst_alarm",)),
    ("config", ["burst_intervals"], frozenset(), ("burst_alarm", "config_downlink")),
    ("config", ["backflow_pulses"], {"config_downlink", "some_future_feature"}, ()),
])
def test_missing_features(kind, fields, have, missing) -> None:
    assert missing_features(kind, fields, have) == missing


def _doc(**entry: object) -> dict:
    return {"format": KEY_FILE_FORMAT,
            "devices": [{"device_id": 5, "key": "00" * 16, **entry}]}


def test_an_entry_records_board_firmware_and_features_and_reads_back() -> None:
    doc = _doc(board="nrf51", firmware_version=256, features=["tamper_alarm", "at_modem"])
    entry = parse_key_file(doc)[5]
    assert (entry.board, entry.firmware_version) == ("nrf51", 256)
    assert entry.features == entry.known_features == {"tamper_alarm", "at_modem"}
    out = key_file_document([entry])
    assert out["devices"][0]["features"] == ["at_modem", "tamper_alarm"]  # sorted
    assert parse_key_file(json.loads(json.dumps(out)))[5] == entry
    none = parse_key_file(_doc(board="nrf51", firmware_version=256, features=[]))[5]
    assert none.features == frozenset() and none.known_features == frozenset()


def test_an_old_entry_still_loads_and_assumes_no_feature() -> None:
    entry = parse_key_file(_doc(key_gen=2, meter_serial="WM-5"))[5]
    assert (entry.board, entry.firmware_version, entry.features) == ("", 0, None)
    assert entry.known_features == ASSUMED_FEATURES == frozenset()
    # written again, it still says "not recorded", not "none"
    written = key_file_document([entry])["devices"][0]
    assert "features" not in written
    assert parse_key_file({"format": KEY_FILE_FORMAT, "devices": [written]})[5] == entry


def test_a_feature_this_reader_does_not_know_is_kept() -> None:
    entry = parse_key_file(_doc(features=["config_downlink", "holographic_display"]))[5]
    assert entry.known_features == {"config_downlink", "holographic_display"}
    assert missing_features("config", ["interval_s"], entry.known_features) == ()


@pytest.mark.parametrize(("change", "message"), [
    ({"board": 51}, "devices[0].board (device 5): expected a board name"),
    ({"board": "nRF 51"}, "devices[0].board (device 5)"),
    ({"firmware_version": -1}, "devices[0].firmware_version (device 5): expected major"),
    ({"firmware_version": 65536}, "devices[0].firmware_version (device 5)"),
    ({"firmware_version": "1.0"}, "devices[0].firmware_version (device 5)"),
    ({"features": "config_downlink"}, "devices[0].features (device 5): expected a list"),
    ({"features": ["Config-Downlink"]}, "'Config-Downlink' is not a feature name"),
    ({"features": [3]}, "3 is not a feature name"),
    ({"features": ["at_modem", "at_modem"]}, "a feature is listed twice"),
], ids=["board-int", "board-spaces", "fw-negative", "fw-too-big", "fw-text",
        "features-string", "feature-spelling", "feature-int", "feature-twice"])
def test_errors_name_the_entry_and_field(change, message) -> None:
    with pytest.raises(KeyFileError) as err:
        parse_key_file(_doc(**change))
    assert message in str(err.value)


def test_key_entry_defaults_are_an_old_entry() -> None:
    entry = KeyEntry(5, bytes(16))
    assert entry.features is None and entry.known_features == ASSUMED_FEATURES
