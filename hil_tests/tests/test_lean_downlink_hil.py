"""Config and time downlinks of the one on-board source (mp/lean/: ack.py, downlink.py)
on an emulated board through the real gateway: bundle("rp2") (with both downlinks) on
the emulated RP2040 with MicroPython v1.27.0, its UART0 modem on the radio channel, the
gateway and Mosquitto. A config command published on MQTT reaches the module in the
receive window after one of its uplinks; the module applies it and answers with a
status frame reporting the thresholds, which the gateway publishes; the readings follow
the new interval; a time command is delivered in a later window.
The nRF51 has no room for these features (docs/firmware.md, "Downlinks"), so its
bundle is not flashed here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt import publish

from meterlink.bundler import FIRMWARE_VERSION, bundle, render_config
from meterlink.bundler.features import BOARD_FEATURES
from meterlink.hil.pico import EmulatedPico
from meterlink.hil.pytest_plugin import serial_gateway_config
from meterlink.protocol.keyfile import KeyEntry, key_file_document

pytestmark = pytest.mark.hil

KEY = bytes(range(16))
DEV = 0x0A0B0C0F


def test_a_config_command_is_applied_and_reported_by_the_lean_build(
    tmp_path: Path, pico: EmulatedPico, channel: Any, broker: Any, central: Any,
    gateway: Any,
) -> None:  # fmt: skip
    keys = tmp_path / "keys.json"
    entry = KeyEntry(device_id=DEV, key=KEY, interval_s=3, board="rp2",
                     firmware_version=FIRMWARE_VERSION, features=BOARD_FEATURES["rp2"])
    keys.write_text(json.dumps(key_file_document([entry])))
    gateway(serial_gateway_config(tmp_path, keys, channel, broker))
    channel.attach_board(pico, rssi=-95)
    text = render_config(board="rp2", id=DEV, key=KEY, gen=1, register=100, interval=3,
                         rx_window_ms=2000, pin_pulse="16", backflow_pulses=10)  # fmt: skip
    pico.flash({**bundle("rp2"), "config.txt": text.encode()})
    pico.reset()
    did = DEV

    def status(pred: Any, timeout: float = 120) -> dict[str, Any]:
        msg = central.wait_for(
            lambda m: m.topic == f"meterlink/v1/status/{did}" and pred(m.json()),
            timeout=timeout)  # fmt: skip
        return dict(msg.json())

    boot = status(lambda j: j["reason"] == "boot")
    assert boot["interval_s"] == 3 and boot["backflow_pulses"] == 10, boot

    def command(body: dict[str, Any]) -> None:
        publish.single(f"meterlink/v1/commands/{did}", json.dumps(body), qos=1,
                       hostname=broker.host, port=broker.port)  # fmt: skip

    command({"type": "config", "interval_s": 5, "backflow_pulses": 7})
    answer = status(lambda j: j["reason"] != "boot")
    assert answer["interval_s"] == 5 and answer["backflow_pulses"] == 7, answer
    reading = central.wait_for(
        lambda m: m.topic == f"meterlink/v1/readings/{did}" and m.json()["interval_s"] == 5,
        timeout=120)  # fmt: skip
    assert reading.json()["device_id"] == did
    # a time command reaches it in a later window (no answer: protocol 4.6)
    command({"type": "time"})
    channel.wait_for(lambda e: e.direction == "down" and e.outcome == "delivered"
                     and e.payload_hex[:2] == "2a", timeout=120)  # fmt: skip
