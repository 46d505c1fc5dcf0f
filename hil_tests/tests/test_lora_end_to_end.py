"""The shipped nRF51 firmware on an emulated micro:bit through the LoRa path: its UART
modem on the LoRa medium, an emulated concentrator, the packet-forwarder protocol to the
gateway process, Mosquitto. A backflow alarm is acked by PULL_RESP inside the module's
receive window, so the module sends it once."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from meterlink.bundler import bundle, render_config
from meterlink.hil import EmulatedBoard
from meterlink.hil.concentrator import EmulatedConcentrator
from meterlink.hil.lora_medium import LoRaMedium, RadioParams, RealtimeMedium
from meterlink.hil.lora_modem import TransparentModem
from meterlink.protocol import FrameType, Header

_spec = importlib.util.spec_from_file_location(
    "lora_gateway_helpers", Path(__file__).with_name("test_lora_gateway.py"))
assert _spec is not None and _spec.loader is not None
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

KEY = bytes(range(16))
DEV = 0x01020304
EUI = helpers.EUI_NEAR

pytestmark = pytest.mark.hil


def test_alarm_is_acked_by_pull_resp_inside_the_window(board: EmulatedBoard, tmp_path,
                                                       broker, central, gateway) -> None:
    gw = gateway(helpers.write_config(tmp_path, broker.port, [EUI], key=KEY, device_id=DEV,
                                      interval_s=5))
    port = gw.wait_ready()["udp_ports"]["lora"]
    medium = RealtimeMedium(LoRaMedium(seed=7)).start()
    conc = EmulatedConcentrator(medium, EUI, ("127.0.0.1", port), position=(0, 0),
                                keepalive_s=2).start()
    modem = TransparentModem(board, medium, position=(400, 0),
                             params=RadioParams(freq_mhz=868.1, sf=7))
    try:
        text = render_config(id=DEV, key=KEY, gen=1, register=5000, interval=5,
                             backflow_pulses=3, pin_pulse="pin0", pin_dir="pin1")
        board.flash({**bundle("nrf51"), "config.txt": text.encode()})
        board.reset()
        central.wait_for(lambda m: m.topic == f"meterlink/v1/status/{DEV}", timeout=60)
        board.set_pin("pin1", 1)
        board.pulse("pin0", 4, 40, 40)  # reverse flow: the backflow alarm
        board.set_pin("pin1", 0)
        msg = central.wait_for(lambda m: m.topic == f"meterlink/v1/alarms/{DEV}", timeout=40)
        assert "backflow" in msg.json()["raised"] and msg.json()["receivers"] == [EUI]
        time.sleep(12)  # unacked, the alarm would be resent after 2 s, 4 s, 8 s
        alarms = [tx for tx in modem.sent
                  if Header.parse(tx.payload).frame_type == FrameType.ALARM]
        assert len(alarms) == 1, [tx.start for tx in alarms]
        downs, _ = conc.snapshot()
        acks = [d for d in downs if d.sent]
        assert acks and all(d.error == "NONE" for d in downs)
        # the ack went out rx_delay (1 s) after the end of the alarm frame
        assert acks[0].txpk["tmst"] == (conc.tmst_at(alarms[0].end) + 1_000_000) & 0xFFFFFFFF
        readings = central.on_topic(f"meterlink/v1/readings/{DEV}")
        assert readings and readings[-1].json()["register"] == 5000
    finally:
        modem.close()
        conc.close()
        medium.close()
