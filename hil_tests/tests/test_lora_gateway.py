"""The real LoRa path without QEMU: a module played by the test drives an emulated RAK3172
(RUI3 P2P AT commands) on a pty, frames cross the LoRa medium to emulated concentrators,
which speak the packet-forwarder protocol over loopback UDP to the gateway process; the
gateway acks alarms with PULL_RESP timed for the module's receive window."""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meterlink.hil.concentrator import EmulatedConcentrator
from meterlink.hil.lora_medium import LoRaMedium, RealtimeMedium
from meterlink.hil.lora_modem import AtModem
from meterlink.hil.pty_board import PtyBoard
from meterlink.protocol import Alarm, AlarmFlags, FrameType, decode_frame, encode_frame

KEY = secrets.token_bytes(16)
DEV = 0x0A0B0C0D
EUI_NEAR, EUI_FAR = "aa555a0000000001", "aa555a0000000002"


def write_config(tmp_path: Path, broker_port: int, euis: list[str], *, key: bytes = KEY,
                 device_id: int = DEV, interval_s: int = 900) -> Path:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"format": "meterlink-keys/1", "devices": [
        {"device_id": device_id, "key": key.hex(), "meter_serial": "WM-LORA",
         "pulse_weight": 1, "unit": 1, "interval_s": interval_s}]}))
    keys.chmod(0o600)
    cfg = tmp_path / "gateway.toml"
    listed = ", ".join(f'"{e}"' for e in euis)
    cfg.write_text(f"""
[gateway]
id = "gw-lora"
keys_file = "{keys}"
[[packet_forwarder]]
name = "lora"
host = "127.0.0.1"
port = 0
gateway_euis = [{listed}]
pull_timeout_s = 5
[mqtt]
host = "127.0.0.1"
port = {broker_port}
[outbox]
path = "{tmp_path / 'gw.sqlite'}"
[http]
host = "127.0.0.1"
port = 0
""")
    return cfg


def ready(gw: Any) -> dict[str, Any]:
    return gw.wait_ready()  # type: ignore[no-any-return]


class Module:
    """The firmware's side of the AT modem, on the pty."""

    def __init__(self, board: PtyBoard) -> None:
        self.board = board
        self.buf = b""

    def line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.buf += self.board.receive(min(left, 0.05))
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode()

    def at(self, cmd: str) -> str:
        self.board.send(cmd.encode() + b"\r\n")
        reply = self.line(2.0)
        assert reply is not None, f"no reply to {cmd}"
        return reply

    def wait(self, prefix: str, timeout: float) -> tuple[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(0.0, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"no {prefix!r} within {timeout} s")
            if line.startswith(prefix):
                return line, time.monotonic()


@pytest.fixture
def medium() -> Iterator[RealtimeMedium]:
    m = RealtimeMedium(LoRaMedium(seed=15)).start()
    yield m
    m.close()


def alarm_frame(counter: int) -> bytes:
    body = Alarm(register=10, interval_seq=3, alarms=AlarmFlags.LEAK, raised=AlarmFlags.LEAK)
    return encode_frame(FrameType.ALARM, DEV, counter, body, KEY)


def send_and_listen(mod: Module, frame: bytes, window_ms: int) -> tuple[str, float, float]:
    assert mod.at(f"AT+PSEND={frame.hex()}") == "OK"
    _, done = mod.wait("+EVT:TXP2P DONE", 5)
    assert mod.at(f"AT+PRECV={window_ms}") == "OK"  # the window opens on TX done
    line, at = mod.wait("+EVT:RXP2P", window_ms / 1000 + 3)
    return line, done, at


def metrics(snapshot_port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{snapshot_port}/metrics", timeout=5) as r:
        return r.read().decode()


def test_alarm_over_at_modem_and_concentrator_is_acked_inside_the_window(
        tmp_path, broker, central, gateway, medium):
    gw = gateway(write_config(tmp_path, broker.port, [EUI_NEAR, EUI_FAR]))
    info = ready(gw)
    port = info["udp_ports"]["lora"]
    near = EmulatedConcentrator(medium, EUI_NEAR, ("127.0.0.1", port), position=(300, 0),
                                keepalive_s=1).start()
    far = EmulatedConcentrator(medium, EUI_FAR, ("127.0.0.1", port), position=(2500, 0),
                               keepalive_s=1).start()
    board = PtyBoard("mod0")
    modem = AtModem(board, medium, position=(0, 0))
    try:
        mod = Module(board)
        assert mod.at("AT+PSEND=00") == "AT_MODE_NO_SUPPORT"  # RUI3 boots in LoRaWAN mode
        assert mod.at("AT+NWM=0") == "OK"
        assert mod.at("AT+P2P=868100000:9:125:0:8:14") == "OK"
        assert mod.at("AT+P2P=?") == "AT+P2P=868100000:9:125:0:8:14"
        assert mod.line(1) == "OK"
        assert mod.at("AT+PSEND=0") == "AT_PARAM_ERROR"
        time.sleep(1.5)  # both concentrators have sent PULL_DATA
        frame = alarm_frame(1)
        line, done, at = send_and_listen(mod, frame, 3000)
        _, _, rssi, snr, data = line.split(":")
        ack = decode_frame(bytes.fromhex(data), KEY)
        assert ack.frame_type == FrameType.ACK and ack.counter == 1
        # on the air: the ack began rx_delay_ms (1 s) after the end of the uplink, inside
        # the 3 s window the module opened on TX done
        up = modem.sent[-1]
        [down] = [r.tx for r in modem.heard if r.outcome == "received"]
        assert down.start - up.end == pytest.approx(1.0, abs=0.005)
        assert 0.9 < at - done < 3.0, at - done
        assert -130 < int(rssi) < -40 and -25 < int(snr) <= 20
        downs_near, pushed_near = near.snapshot()
        downs_far, pushed_far = far.snapshot()
        # both heard the uplink; the far one also hears the near one's ack (P2P downlinks
        # are not IQ-inverted), which the gateway rejects as a downlink
        ups = [[p for p in pushed if base64.b64decode(p["data"]) == frame]
               for pushed in (pushed_near, pushed_far)]
        assert [len(u) for u in ups] == [1, 1]
        assert pushed_near[0]["rssi"] > pushed_far[0]["rssi"]
        assert [(d.error, d.sent) for d in downs_near] == [("NONE", True)]
        assert downs_far == []  # the ack went through the one that heard best
        txpk = downs_near[0].txpk
        assert txpk["tmst"] == (pushed_near[0]["tmst"] + 1_000_000) & 0xFFFFFFFF
        assert txpk["datr"] == "SF9BW125" and txpk["freq"] == 868.1 and not txpk["imme"]
        msg = central.wait_for(lambda m: m.topic == f"meterlink/v1/alarms/{DEV}").json()
        assert sorted(msg["receivers"]) == [EUI_NEAR, EUI_FAR]
        text = metrics(info["http_port"])
        assert f'meterlink_pf_downlinks_total{{concentrator="{EUI_NEAR}",result="scheduled"}} 1' \
            in text
    finally:
        modem.close()
        board.close()
        near.close()
        far.close()


@pytest.mark.parametrize(("error", "options"), [("TOO_LATE", {"tx_margin_s": 1.5}),
                                                ("TOO_EARLY", {"max_advance_s": 0.5})])
def test_tx_ack_errors_from_the_concentrator_are_counted_and_the_window_passes(
        tmp_path, broker, gateway, medium, error, options):
    gw = gateway(write_config(tmp_path, broker.port, [EUI_NEAR]))
    info = ready(gw)
    conc = EmulatedConcentrator(medium, EUI_NEAR, ("127.0.0.1", info["udp_ports"]["lora"]),
                                position=(300, 0), keepalive_s=1, **options).start()
    board = PtyBoard("mod0")
    modem = AtModem(board, medium)
    try:
        mod = Module(board)
        assert mod.at("AT+NWM=0") == "OK" and mod.at("AT+P2P=868100000:7:125:0:8:14") == "OK"
        time.sleep(1.2)
        frame = alarm_frame(1)
        line, _, _ = send_and_listen(mod, frame, 2000)
        assert line == "+EVT:RXP2P RECEIVE TIMEOUT"
        downs, _ = conc.snapshot()
        assert [d.error for d in downs] == [error]
        text = metrics(info["http_port"])
        assert (f'meterlink_pf_tx_ack_errors_total{{concentrator="{EUI_NEAR}",error="{error}"}}'
                f" 1") in text
        assert "meterlink_acks_sent_total 1" not in text
    finally:
        modem.close()
        board.close()
        conc.close()
