"""The full-profile firmware's AT-modem driver against the emulated RAK3172 on the real
LoRa path: the firmware core runs under CPython on the fake board with a real clock
(the production board, rp2, has no emulator here yet), its UART wired to an `AtModem` on
the LoRa medium, an emulated concentrator, the packet-forwarder protocol to the gateway
process, Mosquitto. At boot it sets P2P mode and parameters; its tamper alarm goes out
with AT+PSEND and the ack comes back by PULL_RESP inside the window it opens on TX done."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from meterlink.firmware import SHARED_MODULES, shared_source
from meterlink.hil.concentrator import EmulatedConcentrator
from meterlink.hil.lora_medium import LoRaMedium, RealtimeMedium
from meterlink.hil.lora_modem import AtModem
from meterlink.protocol import FrameType, Header

REPO = Path(__file__).resolve().parents[2]
FW = REPO / "firmware"
_spec = importlib.util.spec_from_file_location(
    "lora_gateway_helpers", Path(__file__).with_name("test_lora_gateway.py"))
assert _spec is not None and _spec.loader is not None
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

KEY = bytes(range(16))
DEV = 0x0B0C0D0E
EUI = helpers.EUI_NEAR


class FirmwareUart:
    """The fake board's UART as the modem's side sees it (a UartEndpoint)."""

    name = "fw-module"

    def __init__(self) -> None:
        self.listeners: list[Callable[[bytes], None]] = []
        self.inbox: list[bytes] = []
        self.lock = threading.Lock()

    def add_uart_listener(self, listener: Callable[[bytes], None]) -> None:
        self.listeners.append(listener)

    def remove_uart_listener(self, listener: Callable[[bytes], None]) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def try_write(self, data: bytes) -> bool:  # modem -> firmware
        with self.lock:
            self.inbox.append(bytes(data))
        return True

    def read(self) -> bytes | None:  # the firmware's board.read()
        with self.lock:
            return self.inbox.pop(0) if self.inbox else None

    def write(self, data: bytes) -> None:  # the firmware's board.write()
        for listener in list(self.listeners):
            listener(bytes(data))


@pytest.fixture
def fw_board(tmp_path):
    shared = tmp_path / "shared"  # the rp2 modules the bundler makes from mp/lean/
    shared.mkdir()
    for name in SHARED_MODULES:
        (shared / name).write_text(shared_source(name))
    for p in (FW / "meterlink" / "firmware" / "mp", shared, FW / "tests" / "fake",
              FW / "tests" / "cpython"):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    import board

    saved = {k: getattr(board, k) for k in ("ticks_ms", "sleep_ms", "write", "read")}
    cwd = os.getcwd()
    (tmp_path / "fs").mkdir()
    board.reset_all(str(tmp_path / "fs") + "/")  # goes into that folder
    uart = FirmwareUart()
    board.ticks_ms = lambda: int(time.monotonic() * 1000)
    board.sleep_ms = lambda ms: time.sleep(ms / 1000)
    board.write = uart.write
    board.read = uart.read
    for m in [m for m in sys.modules if m.startswith("ml_")]:
        del sys.modules[m]
    yield board, uart
    for k, v in saved.items():
        setattr(board, k, v)
    board.reset_all("")
    os.chdir(cwd)
    sys.path.remove(str(shared))


def test_at_firmware_alarm_acked_by_pull_resp(fw_board, tmp_path, broker, central, gateway):
    board, uart = fw_board
    gw = gateway(helpers.write_config(tmp_path, broker.port, [EUI], key=KEY, device_id=DEV,
                                      interval_s=30))
    port = gw.wait_ready()["udp_ports"]["lora"]
    medium = RealtimeMedium(LoRaMedium(seed=11)).start()
    conc = EmulatedConcentrator(medium, EUI, ("127.0.0.1", port), keepalive_s=2).start()
    modem = AtModem(uart, medium, position=(600, 0))  # RUI3 boots in LoRaWAN mode
    stop = threading.Event()
    errors: list[BaseException] = []
    try:
        Path(board.FS, "config.txt").write_text(
            f"id={DEV}\nkey={KEY.hex()}\ngen=1\ninterval=30\nrx_window_ms=2000\n"
            "pin_tamper=pin2\nmodem=1\nlora_freq=868300000\nlora_sf=8\n")
        board.pins["pin0"] = 0
        board.pins["pin2"] = 0

        def run() -> None:
            try:
                import ml_boot
                import ml_core
                import ml_main

                c = ml_core.Core()
                ml_boot.boot(c)
                while not stop.is_set():
                    ml_main.step(c)
                    time.sleep(0.001)
            except BaseException as exc:
                errors.append(exc)

        time.sleep(2.5)  # the concentrator's first PULL_DATA opened the downlink route
        fw = threading.Thread(target=run, daemon=True)
        fw.start()
        central.wait_for(lambda m: m.topic == f"meterlink/v1/status/{DEV}", timeout=20)
        assert modem.commands[:2] == ["AT+NWM=0", "AT+P2P=868300000:8:125:0:8:14"]
        board.pins["pin2"] = 1  # the tamper loop opens
        msg = central.wait_for(lambda m: m.topic == f"meterlink/v1/alarms/{DEV}", timeout=20)
        assert "tamper" in msg.json()["raised"] and msg.json()["receivers"] == [EUI]
        time.sleep(8)  # unacked, it would be resent after 2 s and 4 s
        assert not errors, errors
        alarms = [tx for tx in modem.sent
                  if Header.parse(tx.payload).frame_type == FrameType.ALARM]
        assert len(alarms) == 1, [round(tx.start, 2) for tx in alarms]
        assert alarms[0].params.sf == 8 and alarms[0].params.freq_mhz == 868.3
        heard = [r for r in modem.heard if r.outcome == "received"
                 and Header.parse(r.tx.payload).frame_type == FrameType.ACK]
        assert len(heard) == 1
        # the ack started rx_delay (1 s) after the alarm ended, inside the 2 s window
        assert heard[0].tx.start - alarms[0].end == pytest.approx(1.0, abs=0.01)
        precv = [c for c in modem.commands if c.startswith("AT+PRECV=")]
        assert precv and 1500 <= int(precv[0][9:]) <= 2000  # the rest of the 2 s window
    finally:
        stop.set()
        modem.close()
        conc.close()
        medium.close()
